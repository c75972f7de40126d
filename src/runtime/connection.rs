//! Per-connection state: `Handshake -> Open -> Closing -> Draining`, the outbound queue, the
//! partial-input buffer. Kept small because every idle connection holds one (see
//! docs/ARCHITECTURE.md for the byte count): rarely used state lives behind one `Option<Box<_>>`.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;

use crate::protocol::deflate::InflateStream;
use crate::protocol::reader::{Reader, Streaming};
use crate::runtime::compress::ConnDeflate;
use crate::runtime::pubsub::Membership;
use crate::runtime::timer::TimerKey;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the HTTP upgrade request.
    Handshake,
    /// The request is read and the application deferred its decision (`Upgrade::Defer`): the
    /// connection waits, parked, for `Command::Decided`.
    Deciding,
    /// WebSocket open.
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// Done: flush what is queued, shut down our side, wait for EOF (bounded), then drop.
    Draining,
}

/// Flag bits in [`ConnCore::flags`].
pub(crate) mod flags {
    /// In the worker's dirty list (flush at the end of the loop turn).
    pub const DIRTY: u8 = 1;
    /// A flush hit WouldBlock: the socket is registered for writable events, and `on_drain`
    /// runs when the queue empties.
    pub const WANT_DRAIN: u8 = 2;
    /// `on_close` has been called (or the connection never opened).
    pub const CLOSE_REPORTED: u8 = 4;
    /// We sent a ping and have not seen traffic since.
    pub const PING_OUTSTANDING: u8 = 8;
    /// Our write side is shut down.
    pub const WRITE_SHUT: u8 = 16;
    /// permessage-deflate was negotiated.
    pub const DEFLATE: u8 = 32;
    /// A PROXY protocol header is expected before the request.
    pub const PROXY_PENDING: u8 = 64;
    /// Counted in the per-IP table (released when the connection ends).
    pub const IP_COUNTED: u8 = 128;
}

/// A connection's inbound token buckets (`Config::message_rate`, `Config::byte_rate`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateState {
    pub messages: f64,
    pub bytes: f64,
    /// When the buckets were last refilled (the worker's millisecond clock).
    pub at_ms: u32,
    /// Messages refused in a row.
    pub refused: u32,
}

/// A fragmented message under way (`Context::send_*_fragment`): its kind, and the frames of
/// whole messages queued meanwhile, sent after its last fragment (RFC 6455 §5.4: the fragments
/// of a message are not interleaved with another data message; control frames may be).
#[derive(Debug, Default)]
pub(crate) struct Fragmenting {
    pub text: bool,
    /// The message is compressed (RSV1 on its first fragment; permessage-deflate).
    pub compressed: bool,
    pub held: Vec<Bytes>,
    /// Bytes in `held` (counted against `max_outbound_bytes` like the queue).
    pub held_bytes: usize,
}

/// State needed by few connections, boxed so idle connections don't pay for it.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// Negotiated subprotocol.
    pub protocol: Option<Box<str>>,
    /// Message and byte rate buckets, when `Config::message_rate` / `byte_rate` are set.
    pub rate: Option<Box<RateState>>,
    /// The client's address when it is not the socket's peer (a PROXY header, or a trusted
    /// proxy's forwarding headers).
    pub client_addr: Option<SocketAddr>,
    /// Topic memberships.
    pub topics: Vec<Membership>,
    /// A deferred upgrade's decision cell and prepared response, while `Phase::Deciding`.
    pub parked: Option<Box<dyn crate::runtime::deferred::Parked>>,
    /// Handler-set timers: (id, key).
    pub user_timers: Vec<(u64, TimerKey)>,
    /// permessage-deflate state, when negotiated.
    pub deflate: Option<Box<ConnDeflate>>,
    /// A message being sent in fragments, and the whole messages held back until it ends.
    pub fragmenting: Option<Box<Fragmenting>>,
    /// The application asked for `on_drain` once the queue has been written.
    pub drain_requested: bool,
    /// Which messages this connection receives in chunks ([`Config::streaming`] at the start).
    ///
    /// [`Config::streaming`]: crate::Config::streaming
    pub streaming: Option<Streaming>,
    /// The compressed message being streamed, inflating chunk by chunk.
    pub inflating: Option<Box<InflateStream>>,
    /// The streamed message in progress was refused by the rate limit: its chunks are dropped.
    pub stream_refused: bool,
    /// When the outbound queue last failed to empty (the socket was full): the start of the
    /// wait the queue-wait histogram records when it drains.
    #[cfg(feature = "metrics")]
    pub blocked_since: Option<std::time::Instant>,
}

/// The I/O side of a connection (the handler lives beside it).
#[derive(Debug)]
pub(crate) struct ConnCore {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Bytes of an incomplete request or frame; `None` (8 bytes, no allocation) when idle.
    pub rbuf: Option<Box<BytesMut>>,
    /// Frames waiting for the socket.
    pub out: OutQueue,
    pub reader: Reader,
    pub timer: Option<TimerKey>,
    pub extra: Option<Box<Extra>>,
    pub slot: u32,
    pub generation: u32,
    /// Last time anything arrived, in ms since the worker started (heartbeats).
    pub last_rx_ms: u32,
    /// Last time a data message arrived (idle timeout).
    pub last_msg_ms: u32,
    pub phase: Phase,
    pub flags: u8,
    /// The length of the last frame if it was large (64 KiB to 1 MiB) and this connection had
    /// no partial frame when it began, else 0: the next read then goes straight into a frame
    /// buffer of that size (`worker/inbound.rs`). In what was padding: `ConnCore` does not grow.
    pub bulk: u32,
    /// The TLS state of a connection from a TLS listener.
    #[cfg(feature = "tls")]
    pub tls: Option<Box<crate::runtime::tls::TlsConn>>,
}

/// Most buffers handed to one `writev` (Linux's IOV_MAX). A busy broadcast subscriber can get
/// hundreds of frames in one loop turn; one system call takes them all.
const MAX_IOVECS: usize = 1024;
/// The common case, with a smaller array to fill.
const SMALL_IOVECS: usize = 64;

impl ConnCore {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        slot: u32,
        generation: u32,
        now_ms: u32,
    ) -> Self {
        ConnCore {
            stream,
            peer,
            rbuf: None,
            out: OutQueue::default(),
            reader: Reader::new(),
            timer: None,
            extra: None,
            slot,
            generation,
            last_rx_ms: now_ms,
            last_msg_ms: now_ms,
            phase: Phase::Handshake,
            flags: 0,
            bulk: 0,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Whether this connection speaks TLS.
    #[inline]
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Read from the connection like `Read::read` on its socket: plaintext, through TLS where
    /// it has it.
    #[inline]
    pub fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            let stream = &mut self.stream;
            return contain(|| tls.read(stream, buf));
        }
        io::Read::read(&mut self.stream, buf)
    }

    /// Bytes waiting for the socket: queued frames plus, on a TLS connection, encrypted
    /// records not yet written (what backpressure and `buffered_amount` count).
    #[inline]
    pub fn queued(&self) -> usize {
        let held = self
            .extra
            .as_ref()
            .and_then(|x| x.fragmenting.as_ref())
            .map_or(0, |f| f.held_bytes);
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return self.out.bytes() + tls.pending_output() + held;
        }
        self.out.bytes() + held
    }

    /// Whether anything waits to be written (queued frames, or TLS records).
    #[inline]
    pub fn has_output(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return tls.has_output(&self.out);
        }
        !self.out.is_empty()
    }

    /// Before our side shuts down: queue TLS's close_notify once. `true` if one was queued now
    /// (then flush again before shutting down).
    pub fn close_notify(&mut self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls.close_notify();
        }
        false
    }

    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub fn set(&mut self, f: u8) {
        self.flags |= f;
    }

    #[inline]
    pub fn clear(&mut self, f: u8) {
        self.flags &= !f;
    }

    /// Whether data frames may still be queued.
    pub fn can_send(&self) -> bool {
        self.phase == Phase::Open
    }

    pub fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Queue bytes; the caller marks the connection dirty.
    #[inline]
    pub fn push(&mut self, b: Bytes) {
        self.out.push(b);
    }

    /// Write as much of the queue as the socket takes (encrypted first on a TLS connection).
    pub fn write_out(&mut self) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            let (out, stream) = (&mut self.out, &mut self.stream);
            return contain(|| tls.write_out(out, stream));
        }
        self.out.write_to(&mut self.stream)
    }
}

/// Run TLS work so that a panic inside the TLS library (on input nobody foresaw) costs only
/// this connection: it comes back as an error, and the caller closes the connection.
#[cfg(feature = "tls")]
fn contain(work: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        log::error!("the TLS library panicked on this connection's input; closing it");
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the TLS library panicked",
        ))
    })
}

/// A connection's outbound queue: frames as shared `Bytes`, written with vectored writes. The
/// front buffer may be partly written (advanced in place). An empty queue holds no allocation.
#[derive(Debug, Default)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
}

impl OutQueue {
    /// Append a buffer (empty ones are skipped).
    #[inline]
    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.bytes += b.len();
        self.bufs.push_back(b);
    }

    /// Bytes queued and not yet written.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The queued buffers, front first.
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.bufs.iter()
    }

    /// Hand the front buffers to `take` (which returns how much it took) until `max` bytes went
    /// or it takes nothing more: the TLS path, where rustls encrypts them into records.
    #[cfg(feature = "tls")]
    pub(crate) fn drain_into(
        &mut self,
        max: usize,
        mut take: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut total = 0;
        while total < max {
            let Some(front) = self.bufs.front_mut() else {
                break;
            };
            let n = take(front)?;
            if n == 0 {
                break;
            }
            total += n;
            self.bytes -= n;
            if n >= front.len() {
                self.bufs.pop_front();
            } else {
                front.advance(n);
            }
        }
        if self.bufs.is_empty() && self.bufs.capacity() > 256 {
            self.bufs.shrink_to_fit();
        }
        Ok(total)
    }

    /// One `writev` of up to `N` buffers; `Ok(0)` if it would block.
    fn writev<const N: usize, W: Write>(&self, w: &mut W) -> io::Result<usize> {
        let mut iov = [IoSlice::new(&[]); N];
        let mut k = 0;
        for b in self.bufs.iter().take(N) {
            iov[k] = IoSlice::new(b);
            k += 1;
        }
        attempt(|| w.write_vectored(&iov[..k]))
    }

    /// Write as much as `w` takes, up to 1024 buffers per `writev`. Returns the bytes written;
    /// `Ok` with the queue non-empty means `w` would block.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.bufs.is_empty() {
            let n = if self.bufs.len() == 1 {
                // One buffer (the common case of a single reply): a plain write is cheaper in the
                // kernel than a one-element writev.
                attempt(|| w.write(&self.bufs[0]))?
            } else if self.bufs.len() <= SMALL_IOVECS {
                self.writev::<SMALL_IOVECS, W>(w)?
            } else {
                self.writev::<MAX_IOVECS, W>(w)?
            };
            if n == 0 {
                return Ok(total); // would block
            }
            total += n;
            self.bytes -= n;
            let mut left = n;
            while left > 0 {
                let Some(front) = self.bufs.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.bufs.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        // Keep a ring that busy turns have grown (re-growing it every turn would cost several
        // reallocations per connection), but not a burst's huge one.
        if self.bufs.is_empty() && self.bufs.capacity() > 256 {
            self.bufs.shrink_to_fit();
        }
        Ok(total)
    }
}

/// Run one write system call: retried on EINTR, `Ok(0)` if it would block, an error if the
/// socket accepted nothing.
fn attempt(mut write: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        return match write() {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks after `budget` bytes.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(self.budget);
            self.got.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_counts() {
        let mut q = OutQueue::default();
        let mut want = Vec::new();
        for i in 0..200u32 {
            let b: Vec<u8> = (0..(i % 37) as u8).map(|x| x ^ i as u8).collect();
            want.extend_from_slice(&b);
            q.push(Bytes::from(b));
        }
        q.push(Bytes::new());
        let total = want.len();
        assert_eq!(q.bytes(), total);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 7,
            budget: 1000,
        };
        assert_eq!(q.write_to(&mut w).unwrap(), 1000);
        assert_eq!(q.bytes(), total - 1000);
        w.budget = usize::MAX;
        assert_eq!(q.write_to(&mut w).unwrap(), total - 1000);
        assert!(q.is_empty());
        assert_eq!(w.got, want);
    }

    #[test]
    fn shared_bytes_are_queued_not_copied() {
        let frame = Bytes::from(vec![1u8; 100]);
        let mut a = OutQueue::default();
        let mut b = OutQueue::default();
        a.push(frame.clone());
        b.push(frame.clone());
        let pa = a.iter().next().unwrap().as_ptr();
        let pb = b.iter().next().unwrap().as_ptr();
        assert_eq!(pa, pb);
        assert_eq!(pa, frame.as_ptr());
    }
}

#[cfg(test)]
mod size {
    use super::*;

    /// Every idle connection pays for its `ConnCore`; keep it small (docs/ARCHITECTURE.md).
    #[test]
    fn conn_core_stays_small() {
        let n = std::mem::size_of::<ConnCore>();
        eprintln!(
            "ConnCore: {n} bytes, Reader: {}",
            std::mem::size_of::<Reader>()
        );
        // The `tls` feature adds one pointer (the TLS state of TLS connections).
        let max = if cfg!(feature = "tls") { 184 } else { 176 };
        assert!(n <= max, "ConnCore grew to {n} bytes");
    }
}
