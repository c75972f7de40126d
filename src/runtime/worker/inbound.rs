//! Reading: draining a readable socket into the worker's shared block, the handshake phase,
//! frames to events, events to handler callbacks, and failing a connection on bad input.

use std::io;

use bytes::{Bytes, BytesMut};

use crate::config::RateLimitPolicy;
use crate::error::Error;
use crate::protocol::close;
use crate::protocol::close::{CloseCode, CloseFrame};
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::{OpCode, MAX_HEADER_LEN};
use crate::protocol::proxy::{self, Proxy};
use crate::protocol::reader::{Event, Reader};
use crate::runtime::buffers::FRAME_POOL_MAX;
use crate::runtime::connection::{flags, Phase};
use crate::runtime::handler::{Factory, Handler, RateLimited};
use crate::runtime::stats::bump;

use super::Worker;

impl<F: Factory> Worker<F> {
    // ---- reading ---------------------------------------------------------------------------

    /// Read everything the socket has. `closed`: the readiness event also reported the peer's
    /// FIN (or an error), which a short read does not show: read on to the end-of-file then,
    /// or the connection would wait for a timeout with its peer long gone.
    pub(super) fn on_readable(&mut self, slot: usize, closed: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            // The rest of a large frame goes straight into the buffer reserved for it: no copy
            // from the read block, and one read for as much of it as the socket has.
            // (Not through TLS: there the records are decrypted into the block.)
            let direct = match conn.core.rbuf.as_deref() {
                Some(tail)
                    if matches!(conn.core.phase, Phase::Open | Phase::Closing)
                        && !conn.core.is_tls() =>
                {
                    direct_want(tail)
                }
                _ => 0,
            };
            // A connection whose last frame was large reads the next one straight into a frame
            // buffer of that size: a message like the last arrives whole in one read, with no
            // copy (and if it is something else, the buffer serves like the read block).
            let bulk = match conn.core.bulk as usize {
                n if n > 0
                    && direct == 0
                    && conn.core.rbuf.is_none()
                    && conn.core.phase == Phase::Open
                    && !conn.core.is_tls() =>
                {
                    n + FRAME_SLACK
                }
                _ => 0,
            };
            let mut bulk_buf = None;
            let read = if direct > 0 {
                let tail = conn
                    .core
                    .rbuf
                    .as_deref_mut()
                    .unwrap_or_else(|| unreachable!());
                read_into_spare(&conn.core.stream, tail, direct)
            } else if bulk > 0 {
                let buf = bulk_buf.insert(self.frame_pool.get(bulk));
                read_into_spare(&conn.core.stream, buf, bulk)
            } else {
                let space = self.block.space();
                let want = space.len();
                // A short read of plaintext says nothing about the socket under TLS (records
                // arrive whole or not at all): read on until it would block.
                let tls = conn.core.is_tls();
                conn.core
                    .read_plain(space)
                    .map(|n| (n, if tls { n } else { want }))
            };
            match read.map(|(n, want)| (n, want, direct > 0)) {
                Ok((0, _, _)) => {
                    self.peer_eof(slot);
                    return;
                }
                Ok((n, want, true)) => {
                    conn.core.last_rx_ms = self.state.now_ms;
                    if conn.core.has(flags::PING_OUTSTANDING) {
                        conn.core.clear(flags::PING_OUTSTANDING);
                        self.state.arm_liveness(&mut conn.core);
                    }
                    let whole =
                        conn.core.rbuf.as_deref().and_then(|t| {
                            Reader::pending_frame_len(t).filter(|&len| t.len() >= len)
                        });
                    if let Some(len) = whole {
                        conn.core.bulk = bulk_hint(len);
                        // The frame is whole: process it (and the start of any next one).
                        if let Some(tail) = conn.core.rbuf.take() {
                            self.process(slot, *tail, true);
                        }
                    }
                    if n < want && !closed {
                        return; // drained: edge-triggered readiness will report new data
                    }
                    continue;
                }
                Ok((n, want, false)) => {
                    let owned = bulk_buf.is_some();
                    let chunk = match bulk_buf.take() {
                        Some(buf) => {
                            // Large frames go on only while they come first in such reads.
                            conn.core.bulk = Reader::pending_frame_len(&buf).map_or(0, bulk_hint);
                            buf
                        }
                        None => self.block.take(n),
                    };
                    conn.core.last_rx_ms = self.state.now_ms;
                    if conn.core.has(flags::PING_OUTSTANDING) {
                        // The peer is alive: the next check is a ping interval from now, not the
                        // pong deadline. Other traffic never touches the wheel.
                        conn.core.clear(flags::PING_OUTSTANDING);
                        if conn.core.phase == Phase::Open {
                            self.state.arm_liveness(&mut conn.core);
                        }
                    }
                    if conn.core.phase == Phase::Draining {
                        continue; // discard until EOF
                    }
                    match conn.core.rbuf.take() {
                        None => self.process(slot, chunk, owned),
                        Some(mut tail) => {
                            // The rest of a frame: appended to the connection's own buffer,
                            // reserved for the whole frame when its header came (one copy).
                            tail.extend_from_slice(&chunk);
                            drop(chunk);
                            self.process(slot, *tail, true);
                        }
                    }
                    if n < want && !closed {
                        return; // drained: edge-triggered readiness will report new data
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(buf) = bulk_buf {
                        self.frame_pool.put(buf, bulk);
                    }
                    let Some(conn) = self.conns.get_mut(slot) else {
                        return;
                    };
                    // TLS answers handshake records (and alerts) with records of its own.
                    if conn.core.is_tls() && conn.core.has_output() {
                        self.state.mark_dirty(&mut conn.core);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData && conn.core.is_tls() {
                        log::info!("{}: TLS: {e}; closing", self.state.label(&conn.core, slot));
                        bump(&self.state.stats().tls_errors, 1);
                    }
                    self.io_error(slot, e);
                    return;
                }
            }
        }
    }

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
            match conn.core.phase {
                Phase::Handshake if conn.core.has(flags::PROXY_PENDING) => {
                    match proxy::parse(&buf) {
                        Ok(Proxy::Partial) => break,
                        Ok(Proxy::Complete { source, len }) => {
                            bytes::Buf::advance(&mut buf, len);
                            conn.core.clear(flags::PROXY_PENDING);
                            if let Some(addr) = source {
                                conn.core.extra().client_addr = Some(addr);
                            }
                        }
                        Err(e) => {
                            // Bad input on a listener that expects a proxy: close the socket.
                            let label = self.state.label(&conn.core, slot);
                            log::info!("{label}: {e}; closing");
                            self.remove(slot, CloseCode::ABNORMAL, "bad PROXY header");
                            return;
                        }
                    }
                }
                Phase::Handshake => {
                    if !self.handshake(slot, &mut buf) {
                        break;
                    }
                }
                Phase::Open | Phase::Closing => {
                    let streaming = conn.core.extra.as_ref().and_then(|x| x.streaming);
                    let cfg = &self.state.reader_cfg;
                    match conn.core.reader.read_streaming(&mut buf, cfg, streaming) {
                        Ok(Some(ev)) => self.dispatch(slot, ev),
                        Ok(None) => break,
                        Err(e) => {
                            self.fail(slot, e);
                            return;
                        }
                    }
                }
                // Bytes sent before the decision wait for it (bounded below).
                Phase::Deciding => break,
                Phase::Draining => return,
            }
        }
        let conn = match self.conns.get_mut(slot) {
            Some(conn) if !buf.is_empty() => conn,
            gone_or_done => {
                // Nothing left over: the connection needs no buffer.
                if let Some(conn) = gone_or_done {
                    conn.core.rbuf = None;
                }
                if let (true, Some(len)) = (buf.is_empty(), pooled_frame) {
                    self.frame_pool.put(buf, len);
                }
                return;
            }
        };
        if conn.core.phase == Phase::Deciding
            && buf.len() > self.state.shared.config.max_handshake_bytes
        {
            let label = self.state.label(&conn.core, slot);
            log::info!("{label}: sent too much before its upgrade was decided; closing");
            self.remove(
                slot,
                CloseCode::ABNORMAL,
                "data before the upgrade was decided",
            );
            return;
        }
        // Room for the whole of the frame that has begun, so the rest is appended without
        // reallocating. The reader has already checked that frame's header against
        // `max_frame_size`; the cap repeats that bound here. (During the handshake the bytes
        // are not frames: no hint.)
        let framing = matches!(conn.core.phase, Phase::Open | Phase::Closing);
        let cap = self
            .state
            .reader_cfg
            .max_frame_size
            .saturating_add(MAX_HEADER_LEN);
        let need = framing
            .then(|| Reader::pending_frame_len(&buf))
            .flatten()
            .map_or(0, |len| {
                // Large frames get slack for the read that brings their rest (`direct_want`).
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
            if let (true, Some(len)) = (owned, pooled_frame) {
                self.frame_pool.put(buf, len);
            }
            Some(Box::new(own))
        };
    }

    pub(super) fn dispatch(&mut self, slot: usize, ev: Event) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        match ev {
            Event::Message(msg) => {
                if conn.core.phase != Phase::Open {
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
            Event::Compressed { text, payload } => {
                if conn.core.phase != Phase::Open {
                    return;
                }
                let max = self.state.shared.config.max_message_size;
                let finished = match conn
                    .core
                    .extra
                    .as_mut()
                    .and_then(|e| e.deflate.as_deref_mut())
                {
                    Some(cd) => {
                        self.state
                            .deflate
                            .inflater
                            .message(&mut cd.inflate, text, &payload, max)
                    }
                    None => Err(ProtocolError::ReservedBits),
                };
                let msg = match finished {
                    Ok(msg) => msg,
                    Err(e) => return self.fail(slot, e),
                };
                bump(&self.state.stats().compressed_in, 1);
                self.dispatch(slot, Event::Message(msg));
            }
            Event::Chunk(chunk) => self.stream_chunk(slot, chunk),
            Event::CompressedChunk {
                text,
                first,
                last,
                payload,
            } => self.compressed_chunk(slot, text, first, last, payload),
            Event::Ping(payload) => {
                if conn.core.phase == Phase::Open {
                    // Pongs count against the outbound limit too: a peer that floods pings and
                    // never reads meets the backpressure policy instead of growing our memory.
                    let len = payload.len() + 2;
                    if self.state.admit_outbound(&mut conn.core, len).is_ok() {
                        self.state
                            .queue_control(&mut conn.core, OpCode::Pong, &payload);
                    }
                    self.call(slot, |h, ctx| h.on_ping(ctx, payload));
                }
            }
            Event::Pong(payload) => self.call(slot, |h, ctx| h.on_pong(ctx, payload)),
            Event::Close(frame) => {
                let was_open = conn.core.phase == Phase::Open;
                if was_open {
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
        }
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
        conn.core.phase = Phase::Draining;
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
        if conn.core.phase == Phase::Open {
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
        match conn.core.phase {
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
        if conn.core.phase == Phase::Open || conn.core.phase == Phase::Closing {
            log::debug!("{}: i/o error: {e}", self.state.label(&conn.core, slot));
            let reason = e.to_string();
            self.call(slot, |h, ctx| h.on_error(ctx, Error::Io(e)));
            self.remove(slot, CloseCode::ABNORMAL, &reason);
        } else {
            self.remove(slot, CloseCode::ABNORMAL, "i/o error");
        }
    }
}

/// The read-ahead for a connection that just received a frame of `len` bytes: that length
/// for large frames that the frame pool can hold, else 0.
fn bulk_hint(len: usize) -> u32 {
    if (64 << 10..=FRAME_POOL_MAX).contains(&len) {
        len as u32
    } else {
        0
    }
}

/// A frame's rest smaller than this is read through the worker's block as usual (one read
/// there may bring several small frames at once).
const DIRECT_MIN: usize = 4096;

/// Room kept after a frame in its buffer, so a read straight into it can ask for more than the
/// frame's rest: a short read then tells the socket is drained (no extra read to see
/// `WouldBlock`), and the start of a next frame can come along.
const FRAME_SLACK: usize = 4096;

/// How many bytes to read straight into `tail`, the buffer of a frame that has begun: the rest
/// of that frame plus whatever slack the buffer has, if the rest is large and the buffer has
/// room for all of it (it was reserved from the frame's header); else 0.
fn direct_want(tail: &BytesMut) -> usize {
    let Some(frame_len) = Reader::pending_frame_len(tail) else {
        return 0;
    };
    let rest = frame_len.saturating_sub(tail.len());
    let spare = tail.capacity() - tail.len();
    if rest >= DIRECT_MIN && spare >= rest {
        spare.min(rest + FRAME_SLACK)
    } else {
        0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{Frame, FrameHeader};

    /// The first `have` bytes of a masked binary frame of `len` payload bytes, in a buffer of
    /// `cap` bytes.
    fn partial(len: usize, have: usize, cap: usize) -> BytesMut {
        let payload = vec![1u8; len];
        let frame = Frame::binary(&payload).masked([1, 2, 3, 4]).encode();
        let mut b = BytesMut::with_capacity(cap);
        b.extend_from_slice(&frame[..have]);
        b
    }

    #[test]
    fn a_large_rest_is_read_directly_with_slack() {
        let header = FrameHeader::encoded_len(100_000, true);
        let b = partial(100_000, 10_000, header + 100_000 + FRAME_SLACK);
        assert_eq!(direct_want(&b), header + 100_000 - 10_000 + FRAME_SLACK);
        // Without room for all of the rest: through the read block as usual.
        let b = partial(100_000, 10_000, 50_000);
        assert_eq!(direct_want(&b), 0);
    }

    #[test]
    fn small_rests_and_unknown_lengths_go_through_the_block() {
        let b = partial(5_000, 3_000, 16_000);
        assert_eq!(direct_want(&b), 0, "2 KiB missing: not worth its own read");
        let b = partial(100_000, 1, 200_000);
        assert_eq!(direct_want(&b), 0, "header incomplete: length unknown");
    }
}
