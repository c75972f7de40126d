//! Shared helpers for the integration tests: start a server on a free port, and a small blocking
//! WebSocket client built on volley's own protocol code (masking, framing, handshake).
#![allow(dead_code)]

#[cfg(feature = "redis")]
pub mod redis_server;
pub mod topic_commands;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use volley::protocol::frame::{Frame, OpCode};
use volley::protocol::handshake;
use volley::protocol::reader::{Event, Reader, ReaderConfig, Role};
use volley::{
    CloseCode, CloseFrame, Config, Factory, Message, Server, ServerBuilder, ServerHandle,
};

/// A server running on its own thread; shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start<F: Factory>(config: Config, factory: F) -> TestServer {
        TestServer::start_with(Server::builder().config(config), factory)
    }

    /// Start from a builder (bound to a free loopback port here).
    pub fn start_with<F: Factory>(builder: ServerBuilder, factory: F) -> TestServer {
        let server = builder.bind("127.0.0.1:0").start(factory).expect("start");
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = std::thread::spawn(move || server.run().expect("run"));
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Shut down and wait for `run` to return.
    pub fn stop(mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A test config: 2 workers, short timeouts.
pub fn config() -> Config {
    Config::default()
        .workers(2)
        .close_timeout(Duration::from_secs(2))
}

/// Wait until `f` is true (polling), or panic after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// What a client read.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Msg(Message),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<CloseFrame>),
    /// The server closed the TCP connection.
    Eof,
}

pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
    reader: Reader,
    cfg: ReaderConfig,
    /// The 101 response head.
    pub response: String,
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Send raw bytes and read the HTTP response head (for rejection tests).
pub fn raw_request(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, "/", &[]).expect("upgrade")
    }

    /// Upgrade with extra headers; Err(response head) if the server did not answer 101.
    pub fn connect_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, String> {
        Client::over_with(TcpStream::connect(addr).unwrap(), path, headers)
    }

    /// Upgrade over a stream already connected (after bytes the test wrote itself).
    #[allow(dead_code)] // not every test file uses it
    pub fn over(stream: TcpStream, path: &str) -> Result<Client, String> {
        Client::over_with(stream, path, &[])
    }

    fn over_with(
        mut stream: TcpStream,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, String> {
        let addr = stream.peer_addr().unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let key = handshake::generate_key();
        let extra: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = Vec::new();
        handshake::write_client_request(&mut req, &addr.to_string(), path, &key, &extra);
        stream.write_all(&req).unwrap();
        Client::read_101(stream, &key)
    }

    /// The 101 to `upgrade_request`'s key, after the test wrote the request (and maybe frames)
    /// itself.
    pub fn over_response(stream: TcpStream) -> Client {
        Client::read_101(stream, "dGhlIHNhbXBsZSBub25jZQ==").expect("upgrade")
    }

    fn read_101(mut stream: TcpStream, key: &str) -> Result<Client, String> {
        let mut buf = BytesMut::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            match handshake::parse_response(&buf, key) {
                Ok(Some((n, _))) => {
                    let response = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let _ = buf.split_to(n);
                    let cfg = ReaderConfig {
                        role: Role::Client,
                        max_frame_size: 1 << 30,
                        max_message_size: 1 << 30,
                    };
                    return Ok(Client {
                        stream,
                        buf,
                        reader: Reader::new(),
                        cfg,
                        response,
                    });
                }
                Ok(None) => {}
                Err(_) => {
                    let _ = stream.read_to_end(&mut buf.to_vec());
                    return Err(String::from_utf8_lossy(&buf).into_owned());
                }
            }
            let n = stream.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                return Err(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn send_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let f = Frame::new(opcode, payload)
            .with_fin(fin)
            .masked(MASK)
            .encode();
        self.stream.write_all(&f).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(OpCode::Text, true, text.as_bytes());
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(OpCode::Binary, true, data);
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(OpCode::Close, true, &p);
    }

    /// Read the next event (pings included).
    pub fn next(&mut self) -> Got {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.reader.read(&mut self.buf, &self.cfg) {
                Ok(Some(Event::Message(m))) => return Got::Msg(m),
                Ok(Some(Event::Ping(p))) => return Got::Ping(p.to_vec()),
                Ok(Some(Event::Pong(p))) => return Got::Pong(p.to_vec()),
                Ok(Some(Event::Close(c))) => return Got::Close(c),
                Ok(Some(
                    Event::Compressed { .. } | Event::Chunk(_) | Event::CompressedChunk { .. },
                )) => panic!("unexpected compressed message"),
                Ok(None) => {}
                Err(e) => panic!("server sent an invalid frame: {e}"),
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Got::Eof,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next data message, answering/skipping pings and pongs.
    pub fn recv(&mut self) -> Message {
        loop {
            match self.next() {
                Got::Msg(m) => return m,
                Got::Ping(p) => self.send_frame(OpCode::Pong, true, &p),
                Got::Pong(_) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    pub fn recv_text(&mut self) -> String {
        match self.recv() {
            Message::Text(t) => t.to_string(),
            m => panic!("expected text, got {m:?}"),
        }
    }

    /// The server's close frame (skipping messages and pings).
    pub fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next() {
                Got::Close(c) => return c,
                Got::Eof => panic!("EOF before a close frame"),
                _ => {}
            }
        }
    }

    pub fn expect_close_code(&mut self, code: CloseCode) {
        let c = self.expect_close();
        assert_eq!(c.map(|c| c.code), Some(code));
    }

    /// After the close handshake, the server must close TCP.
    pub fn expect_eof(&mut self) {
        loop {
            match self.next() {
                Got::Eof => return,
                Got::Msg(_) | Got::Ping(_) | Got::Pong(_) => {}
                Got::Close(_) => {}
            }
        }
    }

    /// Whether nothing arrives for `ms` milliseconds.
    pub fn silent_for(&mut self, ms: u64) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
        let mut b = [0u8; 1];
        let r = matches!(
            self.stream.peek(&mut b),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut
        );
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        r && self.buf.is_empty()
    }
}

impl Client {
    /// Like [`Client::next`], but `None` if the read timeout passes first.
    pub fn next_timeout(&mut self) -> Option<Got> {
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match self.reader.read(&mut self.buf, &self.cfg) {
                Ok(Some(Event::Message(m))) => return Some(Got::Msg(m)),
                Ok(Some(Event::Ping(p))) => return Some(Got::Ping(p.to_vec())),
                Ok(Some(Event::Pong(p))) => return Some(Got::Pong(p.to_vec())),
                Ok(Some(Event::Close(c))) => return Some(Got::Close(c)),
                Ok(Some(
                    Event::Compressed { .. } | Event::Chunk(_) | Event::CompressedChunk { .. },
                )) => panic!("unexpected compressed message"),
                Ok(None) => {}
                Err(e) => panic!("server sent an invalid frame: {e}"),
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(Got::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}
