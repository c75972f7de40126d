//! One client connection: its socket, buffers and per-scenario state, and the masked frames it
//! writes. Frames are encoded with the library's `FrameHeader` and masked with its `apply_mask`
//! straight into the connection's reusable write buffer: no allocation per message.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::BytesMut;
use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use volley::protocol::deflate::{InflateState, Negotiated};
use volley::protocol::frame::{FrameHeader, OpCode};
use volley::protocol::reader::Reader;

use crate::payload::Rng;

/// Linux `EINPROGRESS`: a non-blocking connect has started.
const EINPROGRESS: i32 = 115;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for the 101.
    Handshaking,
    /// WebSocket open.
    Open,
    /// We sent a close frame and wait for the server's.
    Closing,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub sock: TcpStream,
    /// State.
    pub state: State,
    /// When the TCP connect started.
    pub started: Instant,
    /// `Sec-WebSocket-Key` sent (cleared once open).
    pub key: String,
    /// Bytes read and not yet consumed.
    pub rbuf: BytesMut,
    /// Bytes queued for the socket; `wpos` of them already written.
    pub wbuf: Vec<u8>,
    /// Written prefix of `wbuf`.
    pub wpos: usize,
    /// Frame reader (the library's).
    pub reader: Reader,
    /// Echo: send times of requests in flight, oldest first.
    pub in_flight: VecDeque<Instant>,
    /// Echo: sequence number of the next request.
    pub next_seq: u64,
    /// Echo: sequence number of the next expected reply.
    pub recv_seq: u64,
    /// Broadcast: this connection's publisher id, if it publishes.
    pub publisher: Option<u32>,
    /// Which target it connected to (`Options::target_of`).
    pub target: u8,
    /// Broadcast: messages published by this connection.
    pub pub_sent: u64,
    /// Broadcast: own messages not yet received back.
    pub own_in_flight: u64,
    /// Broadcast: next expected sequence number per publisher.
    pub expect: Vec<u64>,
    /// Broadcast: already in the thread's publisher list.
    pub listed: bool,
    /// permessage-deflate as agreed with the server, if it was.
    pub deflate: Option<Box<Negotiated>>,
    /// The receiving side of permessage-deflate (the library picks the thread's shared
    /// decompressor or this connection's own).
    pub inflate: Option<Box<InflateState>>,
    /// wss://: the TLS state (everything in `wbuf` and `rbuf` is plaintext).
    pub tls: Option<Box<rustls::ClientConnection>>,
}

impl Conn {
    /// Start a non-blocking connect to `addr`, bound to `source` first if given.
    pub fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Conn> {
        let started = Instant::now();
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        if let Some(src) = source {
            s.bind(&SocketAddr::new(src, 0).into())?;
        }
        match s.connect(&addr.into()) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let sock = TcpStream::from_std(std::net::TcpStream::from(s));
        Ok(Conn {
            sock,
            state: State::Connecting,
            started,
            key: String::new(),
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            wpos: 0,
            reader: Reader::new(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            recv_seq: 0,
            publisher: None,
            target: 0,
            pub_sent: 0,
            own_in_flight: 0,
            expect: Vec::new(),
            listed: false,
            deflate: None,
            inflate: None,
            tls: None,
        })
    }

    /// Write queued bytes until done or the socket would block. `Err` on a socket error.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            super::tls::write(tls, &mut self.sock, &self.wbuf[self.wpos..])?;
            self.wbuf.clear();
            self.wpos = 0;
            return Ok(());
        }
        while self.wpos < self.wbuf.len() {
            match self.sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    /// Queue one masked control frame with `payload`.
    pub fn push_control(&mut self, opcode: OpCode, payload: &[u8], rng: &mut Rng) {
        push_frame(
            &mut self.wbuf,
            FrameHeader::new(opcode, payload.len() as u64),
            rng.mask(),
            |o| o.extend_from_slice(payload),
        );
    }
}

/// Append a masked frame to `out`: the library encodes the header, `fill` writes the payload
/// straight into the buffer, and it is masked in place.
pub fn push_frame(
    out: &mut Vec<u8>,
    header: FrameHeader,
    mask: [u8; 4],
    fill: impl FnOnce(&mut Vec<u8>),
) {
    header.masked(mask).write_frame(out, fill);
}
