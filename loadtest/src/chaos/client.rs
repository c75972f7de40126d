//! A small blocking WebSocket client for the chaos scenario, built on volley's protocol code:
//! the healthy clients use it whole, the abusive ones take it apart.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use volley::protocol::frame::{Frame, OpCode};
use volley::protocol::handshake;
use volley::protocol::reader::{Event, Reader, ReaderConfig, Role};

/// The masking key every chaos frame uses (any key will do for a test client).
pub const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x02];

/// An upgraded connection.
pub struct Ws {
    pub stream: TcpStream,
    buf: BytesMut,
    reader: Reader,
    cfg: ReaderConfig,
}

/// What a read brought.
#[derive(Debug)]
pub enum Got {
    Text(String),
    Binary(Vec<u8>),
    Close,
    Other,
}

/// The request head for `path` with `extra` headers, and its key.
pub fn request(addr: SocketAddr, path: &str, extra: &[(String, String)]) -> (Vec<u8>, String) {
    let key = handshake::generate_key();
    let mut req = Vec::new();
    handshake::write_client_request(&mut req, &addr.to_string(), path, &key, extra);
    (req, key)
}

impl Ws {
    /// Connect and upgrade (`extra`: more request headers).
    pub fn connect(addr: SocketAddr, path: &str, extra: &[(String, String)]) -> io::Result<Ws> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Ws::upgrade(stream, addr, path, extra)
    }

    /// Upgrade a connected stream.
    pub fn upgrade(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        extra: &[(String, String)],
    ) -> io::Result<Ws> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let (req, key) = request(addr, path, extra);
        stream.write_all(&req)?;
        let mut buf = BytesMut::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            match handshake::parse_response(&buf, &key) {
                Ok(Some((n, _))) => {
                    let _ = buf.split_to(n);
                    break;
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::other(format!("upgrade refused: {e}"))),
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::other("eof during the upgrade"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(Ws {
            stream,
            buf,
            reader: Reader::new(),
            cfg: ReaderConfig {
                role: Role::Client,
                max_frame_size: 64 << 20,
                max_message_size: 64 << 20,
            },
        })
    }

    pub fn send(&mut self, op: OpCode, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        Frame::new(op, payload).masked(MASK).encode_into(&mut out);
        self.stream.write_all(&out)
    }

    /// The next data message or close (pings are answered, pongs skipped).
    pub fn recv(&mut self) -> io::Result<Got> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            match self.reader.read(&mut self.buf, &self.cfg) {
                Ok(Some(Event::Message(m))) => {
                    return Ok(match m.as_text() {
                        Some(t) => Got::Text(t.to_string()),
                        None => Got::Binary(m.as_bytes().to_vec()),
                    })
                }
                Ok(Some(Event::Ping(p))) => self.send(OpCode::Pong, &p)?,
                Ok(Some(Event::Close(_))) => return Ok(Got::Close),
                Ok(Some(_)) => return Ok(Got::Other),
                Ok(None) => {}
                Err(e) => return Err(io::Error::other(format!("bad frame from the server: {e}"))),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A clean close: our close frame, then wait (briefly) for the server's.
    pub fn close(mut self) {
        let _ = self.send(OpCode::Close, &[0x03, 0xe8]);
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        for _ in 0..64 {
            match self.recv() {
                Ok(Got::Close) | Err(_) => break,
                _ => {}
            }
        }
    }
}
