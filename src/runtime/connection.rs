//! Per-connection state: `Handshake -> Open -> Closing -> Draining`, the outbound queue, the
//! partial-input buffer. Kept small because every idle connection holds one (see
//! docs/ARCHITECTURE.md for the byte count): rarely used state lives behind one `Option<Box<_>>`.

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;

use crate::protocol::deflate::InflateStream;
use crate::protocol::reader::{Reader, Streaming};
use crate::runtime::compress::ConnDeflate;
use crate::runtime::outqueue::OutQueue;
use crate::runtime::pubsub::Membership;
use crate::runtime::timer::TimerKey;

/// Where a connection is in its life. Only [`ConnCore::enter`] changes it, and only along
/// the arrows [`Phase::may_become`] allows:
///
/// ```text
/// Handshake -> Deciding -> Handshake (decided: the answer is applied as if just read)
/// Handshake -> Open -> Closing -> Draining
/// Handshake | Deciding | Open -> Draining (refused, failed, or the peer closed first)
/// ```
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

impl Phase {
    /// Whether a connection in this phase may move to `next`.
    pub fn may_become(self, next: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, next),
            (Handshake, Deciding | Open | Draining)
                | (Deciding, Handshake | Draining)
                | (Open, Closing | Draining)
                | (Closing, Draining)
        )
    }
}

/// Flag bits in [`ConnCore::flags`].
pub(crate) mod flags {
    /// In the worker's dirty list (flush at the end of the loop turn).
    pub const DIRTY: u16 = 1;
    /// A flush hit WouldBlock: the socket is registered for writable events, and `on_drain`
    /// runs when the queue empties.
    pub const WANT_DRAIN: u16 = 2;
    /// `on_close` has been called (or the connection never opened).
    pub const CLOSE_REPORTED: u16 = 4;
    /// We sent a ping and have not seen traffic since.
    pub const PING_OUTSTANDING: u16 = 8;
    /// Our write side is shut down.
    pub const WRITE_SHUT: u16 = 16;
    /// permessage-deflate was negotiated.
    pub const DEFLATE: u16 = 32;
    /// A PROXY protocol header is expected before the request.
    pub const PROXY_PENDING: u16 = 64;
    /// Counted in the per-IP table (released when the connection ends).
    pub const IP_COUNTED: u16 = 128;
    /// A fragmented message is being sent (`Extra::fragmenting` is set, whole messages are held
    /// back): mirrored here so that a fan-out's short path need not look into `Extra`.
    pub const FRAGMENTING: u16 = 256;
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

/// The worker side of a parked connection, stored type-erased in the connection's `Extra`
/// (implemented in `deferred.rs`, beside the decision it waits for).
pub(crate) trait Parked: Any {
    /// The connection ended before a decision was taken.
    fn abandon(&self);
    /// For the worker, which knows the handler type, to take the decision back out.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl fmt::Debug for dyn Parked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Parked")
    }
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
    pub parked: Option<Box<dyn Parked>>,
    /// A connection handed over by another HTTP server (`runtime/handoff.rs`) until its socket
    /// is adopted: the decision's responder, then the accepted handler (the worker's
    /// `worker/handoff.rs::Waiting`). Its `stream` is a placeholder meanwhile.
    pub hand_off: Option<Box<dyn Any>>,
    /// Handler-set timers: (id, key).
    pub user_timers: Vec<(u64, TimerKey)>,
    /// permessage-deflate state, when negotiated.
    pub deflate: Option<Box<ConnDeflate>>,
    /// A message being sent in fragments, and the whole messages held back until it ends.
    pub fragmenting: Option<Box<Fragmenting>>,
    /// The application asked for `on_drain` once the queue has been written.
    pub drain_requested: bool,
    /// The user this connection belongs to (`Context::set_user`).
    pub user: Option<std::sync::Arc<str>>,
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
    /// Private: read through [`ConnCore::phase`] and the predicates, changed by
    /// [`ConnCore::enter`] only.
    phase: Phase,
    pub flags: u16,
    /// The length of the last frame if it was large (64 KiB to 1 MiB) and this connection had
    /// no partial frame when it began, else 0: the next read then goes straight into a frame
    /// buffer of that size (`worker/inbound.rs`). In what was padding: `ConnCore` does not grow.
    pub bulk: u32,
    /// The TLS state of a connection from a TLS listener.
    #[cfg(feature = "tls")]
    pub tls: Option<Box<crate::runtime::tls::TlsConn>>,
}

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
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub fn set(&mut self, f: u16) {
        self.flags |= f;
    }

    #[inline]
    pub fn clear(&mut self, f: u16) {
        self.flags &= !f;
    }

    /// Where the connection is in its life.
    #[inline]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Move to `next`. Every change of phase goes through here; a move that
    /// [`Phase::may_become`] does not allow is a bug in the worker (asserted in debug builds).
    #[inline]
    pub fn enter(&mut self, next: Phase) {
        debug_assert!(
            self.phase.may_become(next),
            "connection {}: {:?} -> {next:?} is not a transition",
            self.slot,
            self.phase
        );
        self.phase = next;
    }

    /// WebSocket open: data frames may be sent and received, the heartbeat runs.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the bytes that arrive are WebSocket frames (open, or waiting for the peer's
    /// close frame).
    #[inline]
    pub fn reads_frames(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing)
    }

    /// Parked until the application decides a deferred upgrade.
    #[inline]
    pub fn is_deciding(&self) -> bool {
        self.phase == Phase::Deciding
    }

    /// The closing handshake is over: flushing, then waiting for EOF.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.phase == Phase::Draining
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
