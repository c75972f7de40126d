//! Reading: draining a readable socket (where each read lands is `read_plan.rs`'s choice),
//! parsing what arrived by the connection's phase (PROXY header, HTTP request, frames), frames
//! to handler callbacks, and failing a connection on bad input.

use std::io;

use bytes::{Bytes, BytesMut};

use crate::config::RateLimitPolicy;
use crate::error::Error;
use crate::protocol::close;
use crate::protocol::close::{CloseCode, CloseFrame};
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::{OpCode, MAX_HEADER_LEN};
use crate::protocol::message::Message;
use crate::protocol::proxy::{self, Proxy};
use crate::protocol::reader::{Event, Reader};
use crate::runtime::connection::{flags, Phase};
use crate::runtime::handler::{Factory, Handler, RateLimited};
use crate::runtime::stats::bump;

use super::read_plan::{bulk_hint, ReadPlan, ReadState, DIRECT_MIN, FRAME_SLACK};
use super::Worker;

/// After one step of parsing a connection's input: go on, wait for more bytes, or stop (the
/// connection failed or is closing, and its input is no longer read).
enum Step {
    More,
    Wait,
    Stop,
}

impl<F: Factory> Worker<F> {
    // ---- reading ---------------------------------------------------------------------------

    /// Read everything the socket has. `closed`: the readiness event also reported the peer's
    /// FIN (or an error), which a short read does not show: read on to the end-of-file then,
    /// or the connection would wait for a timeout with its peer long gone.
    pub(super) fn on_readable(&mut self, slot: usize, closed: bool) {
        loop {
            let Some(conn) = self.conns.get(slot) else {
                return;
            };
            let plan = ReadPlan::choose(ReadState::of(&conn.core));
            let (read, bulk_buf) = self.read_once(slot, plan);
            match read {
                Ok((0, _)) => return self.peer_eof(slot),
                Ok((n, want)) => {
                    self.heard_from(slot);
                    let read_on = self.take_read(slot, plan, n, bulk_buf);
                    if !read_on && n < want && !closed {
                        return; // drained: edge-triggered readiness will report new data
                    }
                }
                Err(e) => {
                    if let (Some(buf), ReadPlan::Bulk(size)) = (bulk_buf, plan) {
                        self.frame_pool.put(buf, size);
                    }
                    match e.kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => return self.read_drained(slot),
                        _ => return self.read_failed(slot, e),
                    }
                }
            }
        }
    }

    /// One read, as `plan` says. Returns (bytes read, bytes asked for) and, for a bulk read,
    /// the frame buffer it filled.
    fn read_once(
        &mut self,
        slot: usize,
        plan: ReadPlan,
    ) -> (io::Result<(usize, usize)>, Option<BytesMut>) {
        let core = &mut self.conns[slot].core;
        match plan {
            ReadPlan::Direct(want) => {
                let Some(tail) = core.rbuf.as_deref_mut() else {
                    unreachable!("a direct read is planned only into a partial frame")
                };
                (read_into_spare(&core.stream, tail, want), None)
            }
            ReadPlan::Bulk(size) => {
                let mut buf = self.frame_pool.get(size);
                let read = read_into_spare(&core.stream, &mut buf, size);
                (read, Some(buf))
            }
            ReadPlan::Block => {
                let space = self.block.space();
                let want = space.len();
                // A short read of plaintext says nothing about the socket under TLS (records
                // arrive whole or not at all): read on until it would block.
                let tls = core.is_tls();
                let read = core.read_plain(space);
                (read.map(|n| (n, if tls { n } else { want })), None)
            }
        }
    }

    /// Bytes arrived: the peer is alive (`WorkerState::heard_from`).
    fn heard_from(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            self.state.heard_from(&mut conn.core);
        }
    }

    /// Hand the `n` bytes a read brought to the parser. Returns true when the socket must be
    /// read again whatever the read's size said (a draining connection reads to its EOF).
    fn take_read(
        &mut self,
        slot: usize,
        plan: ReadPlan,
        n: usize,
        bulk_buf: Option<BytesMut>,
    ) -> bool {
        let Some(conn) = self.conns.get_mut(slot) else {
            return false;
        };
        if let ReadPlan::Direct(_) = plan {
            let whole = conn
                .core
                .rbuf
                .as_deref()
                .and_then(|t| Reader::pending_frame_len(t).filter(|&len| t.len() >= len));
            if let Some(len) = whole {
                // The frame is whole: process it (and the start of any next one).
                conn.core.bulk = bulk_hint(len);
                if let Some(tail) = conn.core.rbuf.take() {
                    self.process(slot, *tail, true);
                }
            }
            return false;
        }
        let owned = bulk_buf.is_some();
        let chunk = match bulk_buf {
            Some(buf) => {
                // Large frames go on only while they come first in such reads.
                conn.core.bulk = Reader::pending_frame_len(&buf).map_or(0, bulk_hint);
                buf
            }
            None => self.block.take(n),
        };
        if conn.core.is_draining() {
            return true; // discard until EOF
        }
        match conn.core.rbuf.take() {
            None => self.process(slot, chunk, owned),
            Some(mut tail) => {
                // The rest of a frame: appended to the connection's own buffer, reserved for
                // the whole frame when its header came (one copy).
                tail.extend_from_slice(&chunk);
                drop(chunk);
                self.process(slot, *tail, true);
            }
        }
        false
    }

    /// The socket has nothing more for now.
    fn read_drained(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        // TLS answers handshake records (and alerts) with records of its own.
        if conn.core.is_tls() && conn.core.has_output() {
            self.state.mark_dirty(&mut conn.core);
        }
    }

    fn read_failed(&mut self, slot: usize, e: io::Error) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if e.kind() == io::ErrorKind::InvalidData && conn.core.is_tls() {
            log::info!("{}: TLS: {e}; closing", self.state.label(&conn.core, slot));
            bump(&self.state.stats().tls_errors, 1);
        }
        self.io_error(slot, e);
    }

    // ---- parsing, by phase -----------------------------------------------------------------

    /// Parse what `buf` holds for this connection; keep an incomplete tail in the connection.
    /// `owned`: `buf` is the connection's own buffer, not a view of the worker's read block.
    pub(super) fn process(&mut self, slot: usize, mut buf: BytesMut, owned: bool) {
        // An owned buffer was made for the frame it begins with: once that frame has been cut
        // from it, what is left goes back to the pool.
        let pooled_frame = if owned {
            Reader::pending_frame_len(&buf)
        } else {
            None
        };
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let step = match conn.core.phase() {
                Phase::Handshake if conn.core.has(flags::PROXY_PENDING) => {
                    self.proxy_header(slot, &mut buf)
                }
                Phase::Handshake => match self.handshake(slot, &mut buf) {
                    true => Step::More,
                    false => Step::Wait,
                },
                Phase::Open | Phase::Closing => self.next_frame(slot, &mut buf),
                // Bytes sent before the decision wait for it (bounded in `keep_rest`).
                Phase::Deciding => Step::Wait,
                Phase::Draining => Step::Stop,
            };
            match step {
                Step::More => continue,
                Step::Wait => break,
                Step::Stop => return,
            }
        }
        self.keep_rest(slot, buf, owned, pooled_frame);
    }

    /// The PROXY protocol header that a listener behind a proxy expects before the request.
    fn proxy_header(&mut self, slot: usize, buf: &mut BytesMut) -> Step {
        let conn = &mut self.conns[slot];
        match proxy::parse(buf) {
            Ok(Proxy::Partial) => Step::Wait,
            Ok(Proxy::Complete { source, len }) => {
                bytes::Buf::advance(buf, len);
                conn.core.clear(flags::PROXY_PENDING);
                if let Some(addr) = source {
                    conn.core.extra().client_addr = Some(addr);
                }
                Step::More
            }
            Err(e) => {
                // Bad input on a listener that expects a proxy: close the socket.
                let label = self.state.label(&conn.core, slot);
                log::info!("{label}: {e}; closing");
                self.remove(slot, CloseCode::ABNORMAL, "bad PROXY header");
                Step::Stop
            }
        }
    }

    /// The next frame (or streamed chunk) of an open or closing connection, to `dispatch`.
    fn next_frame(&mut self, slot: usize, buf: &mut BytesMut) -> Step {
        let core = &mut self.conns[slot].core;
        let streaming = core.extra.as_ref().and_then(|x| x.streaming);
        let cfg = &self.state.reader_cfg;
        match core.reader.read_streaming(buf, cfg, streaming) {
            Ok(Some(ev)) => {
                self.dispatch(slot, ev);
                Step::More
            }
            Ok(None) => Step::Wait,
            Err(e) => {
                self.fail(slot, e);
                Step::Stop
            }
        }
    }

    /// Keep what is left of `buf` (an incomplete request or frame) in the connection, in a
    /// buffer with room for the whole of a frame that has begun; or free it when nothing is.
    fn keep_rest(&mut self, slot: usize, buf: BytesMut, owned: bool, pooled: Option<usize>) {
        let conn = match self.conns.get_mut(slot) {
            Some(conn) if !buf.is_empty() => conn,
            gone_or_done => {
                // Nothing left over: the connection needs no buffer.
                if let Some(conn) = gone_or_done {
                    conn.core.rbuf = None;
                }
                if let (true, Some(len)) = (buf.is_empty(), pooled) {
                    self.frame_pool.put(buf, len);
                }
                return;
            }
        };
        if conn.core.is_deciding() && buf.len() > self.state.shared.config.max_handshake_bytes {
            let label = self.state.label(&conn.core, slot);
            log::info!("{label}: sent too much before its upgrade was decided; closing");
            let why = "data before the upgrade was decided";
            return self.remove(slot, CloseCode::ABNORMAL, why);
        }
        // Room for the whole of the frame that has begun, so the rest is appended without
        // reallocating. The reader has already checked that frame's header against
        // `max_frame_size`; the cap repeats that bound here. (During the handshake the bytes
        // are not frames: no hint.)
        let cap = self
            .state
            .reader_cfg
            .max_frame_size
            .saturating_add(MAX_HEADER_LEN);
        let need = conn
            .core
            .reads_frames()
            .then(|| Reader::pending_frame_len(&buf))
            .flatten()
            .map_or(0, |len| {
                // Large frames get slack for the read that brings their rest (a direct read).
                let slack = if len >= DIRECT_MIN { FRAME_SLACK } else { 0 };
                len.min(cap) + slack
            })
            .max(buf.len());
        conn.core.rbuf = if owned && buf.capacity() >= need {
            Some(Box::new(buf))
        } else {
            // A view of the shared read block (or an owned buffer too small for the next
            // frame): copy it into a buffer for the whole frame, so the block can be reused and
            // no connection pins it.
            let mut own = self.frame_pool.get(need);
            own.extend_from_slice(&buf);
            if let (true, Some(len)) = (owned, pooled) {
                self.frame_pool.put(buf, len);
            }
            Some(Box::new(own))
        };
    }

    // ---- frames to callbacks ---------------------------------------------------------------

    pub(super) fn dispatch(&mut self, slot: usize, ev: Event) {
        match ev {
            Event::Message(msg) => self.on_data(slot, msg),
            Event::Compressed { text, payload } => self.on_compressed(slot, text, payload),
            Event::Chunk(chunk) => self.stream_chunk(slot, chunk),
            Event::CompressedChunk {
                text,
                first,
                last,
                payload,
            } => self.compressed_chunk(slot, text, first, last, payload),
            Event::Ping(payload) => self.on_ping_frame(slot, payload),
            Event::Pong(payload) => self.call(slot, |h, ctx| h.on_pong(ctx, payload)),
            Event::Close(frame) => self.on_close_frame(slot, frame),
        }
    }

    /// A whole data message: rate limits, statistics, then the handler.
    fn on_data(&mut self, slot: usize, msg: Message) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.core.is_open() {
            return; // we are closing: data is discarded (RFC 6455 §5.5.1)
        }
        conn.core.last_msg_ms = self.state.now_ms;
        if let Err(in_a_row) = self.state.admit_inbound(&mut conn.core, msg.len()) {
            let info = RateLimited {
                len: msg.len(),
                in_a_row,
            };
            return self.rate_refused(slot, info);
        }
        let st = self.state.stats();
        bump(&st.messages_in, 1);
        if msg.is_text() {
            bump(&st.text_messages_in, 1);
        }
        bump(&st.bytes_in, msg.len() as u64);
        self.call(slot, |h, ctx| h.on_message(ctx, msg));
        // From the poll wake-up that brought the message's last bytes to the end of its
        // handler call.
        #[cfg(feature = "metrics")]
        self.state
            .histograms()
            .handler
            .observe(self.state.now.elapsed());
    }

    /// A whole compressed message (permessage-deflate): inflated, then as any other.
    fn on_compressed(&mut self, slot: usize, text: bool, payload: Bytes) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.core.is_open() {
            return;
        }
        let max = self.state.shared.config.max_message_size;
        let inflater = &mut self.state.deflate.inflater;
        let finished = match conn
            .core
            .extra
            .as_mut()
            .and_then(|e| e.deflate.as_deref_mut())
        {
            Some(cd) => inflater.message(&mut cd.inflate, text, &payload, max),
            None => Err(ProtocolError::ReservedBits),
        };
        match finished {
            Ok(msg) => {
                bump(&self.state.stats().compressed_in, 1);
                self.on_data(slot, msg);
            }
            Err(e) => self.fail(slot, e),
        }
    }

    /// A ping: answered with a pong while open, then the handler hears of it.
    fn on_ping_frame(&mut self, slot: usize, payload: Bytes) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.core.is_open() {
            return;
        }
        // Pongs count against the outbound limit too: a peer that floods pings and never reads
        // meets the backpressure policy instead of growing our memory.
        let len = payload.len() + 2;
        if self.state.admit_outbound(&mut conn.core, len).is_ok() {
            self.state
                .queue_control(&mut conn.core, OpCode::Pong, &payload);
        }
        self.call(slot, |h, ctx| h.on_ping(ctx, payload));
    }

    /// The peer's close frame: answered while open (else it answers ours), then draining.
    fn on_close_frame(&mut self, slot: usize, frame: Option<CloseFrame>) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.core.is_open() {
            // Echo the code (RFC 6455 §5.5.1); an empty close is answered empty.
            let payload = match &frame {
                Some(f) => close::encode_payload(f.code, ""),
                None => Bytes::new(),
            };
            self.state
                .queue_control(&mut conn.core, OpCode::Close, &payload);
        }
        self.enter_draining(slot);
        let frame = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS, ""));
        self.report_close(slot, frame);
    }

    /// A data message was over the rate limit: tell the handler, and close under
    /// [`RateLimitPolicy::Close`].
    pub(super) fn rate_refused(&mut self, slot: usize, info: RateLimited) {
        bump(&self.state.stats().rate_limited, 1);
        self.call(slot, |h, ctx| h.on_rate_limited(ctx, info));
        if self.state.shared.config.rate_limit_policy == RateLimitPolicy::Close {
            if let Some(conn) = self.conns.get_mut(slot) {
                let label = self.state.label(&conn.core, slot);
                log::info!("{label}: over the message rate limit; closing with 1008");
                self.state
                    .start_close(&mut conn.core, CloseCode::POLICY, "rate limit");
            }
        }
    }

    /// The closing handshake is over (or failed): flush, shut our side, wait for EOF (bounded).
    pub(super) fn enter_draining(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.core.enter(Phase::Draining);
        conn.core.rbuf = None;
        self.state.mark_dirty(&mut conn.core);
        let deadline = self.state.now + self.state.shared.config.close_timeout;
        self.state.arm(&mut conn.core, deadline);
    }

    /// Fail the connection for a protocol violation: close with its code, log, tell the handler.
    pub(super) fn fail(&mut self, slot: usize, err: ProtocolError) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let code = err.close_code();
        log::info!(
            "{}: protocol error, closing with {code}: {err}",
            self.state.label(&conn.core, slot)
        );
        let st = self.state.stats();
        bump(&st.protocol_errors, 1);
        match code.0 {
            1002 => bump(&st.closed_protocol_error, 1),
            1007 => bump(&st.closed_invalid_payload, 1),
            1009 => bump(&st.closed_too_big, 1),
            _ => {}
        }
        if conn.core.is_open() {
            let reason = err.to_string();
            let payload = close::encode_payload(code, &reason);
            self.state
                .queue_control(&mut conn.core, OpCode::Close, &payload);
        }
        self.enter_draining(slot);
        let reason = err.to_string();
        self.call(slot, |h, ctx| h.on_error(ctx, Error::Protocol(err)));
        self.report_close(slot, CloseFrame::new(code, reason));
    }

    pub(super) fn peer_eof(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        match conn.core.phase() {
            Phase::Draining => self.remove(slot, CloseCode::ABNORMAL, "closed"),
            Phase::Handshake => self.remove(slot, CloseCode::ABNORMAL, "eof during handshake"),
            Phase::Deciding => {
                log::info!(
                    "{}: the client left before its upgrade was decided",
                    self.state.label(&conn.core, slot)
                );
                self.remove(
                    slot,
                    CloseCode::ABNORMAL,
                    "eof while the upgrade was deferred",
                );
            }
            _ => {
                log::debug!(
                    "{}: connection closed without a close frame",
                    self.state.label(&conn.core, slot)
                );
                self.remove(
                    slot,
                    CloseCode::ABNORMAL,
                    "connection closed without a close frame",
                );
            }
        }
    }

    pub(super) fn io_error(&mut self, slot: usize, e: io::Error) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.core.reads_frames() {
            log::debug!("{}: i/o error: {e}", self.state.label(&conn.core, slot));
            let reason = e.to_string();
            self.call(slot, |h, ctx| h.on_error(ctx, Error::Io(e)));
            self.remove(slot, CloseCode::ABNORMAL, &reason);
        } else {
            self.remove(slot, CloseCode::ABNORMAL, "i/o error");
        }
    }
}

/// Read up to `want` bytes from `stream` into `buf`'s spare capacity (not zero-filled first),
/// extending its length by what was read. Returns (bytes read, `want`).
fn read_into_spare(
    stream: &mio::net::TcpStream,
    buf: &mut BytesMut,
    want: usize,
) -> io::Result<(usize, usize)> {
    let spare = &mut buf.spare_capacity_mut()[..want];
    let n = socket2::SockRef::from(stream).recv(spare)?;
    // SAFETY: `set_len(len + n)` needs the first `n` bytes after `len` initialised and within
    // the capacity. `spare` is exactly that region (`spare_capacity_mut` starts at `len`), and
    // `n <= want <= spare.len()`; socket2's `recv` documents that on success the first `n`
    // bytes of the slice it was given have been written by the kernel (initialised). Nothing
    // else holds this region: `buf` is borrowed mutably for the whole call.
    unsafe { buf.set_len(buf.len() + n) };
    Ok((n, want))
}
