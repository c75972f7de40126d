//! One connection's protocol session, driven by its poll thread: connecting, the handshake,
//! frames in and out (echo requests, broadcast messages, pings, deflate), and the close. The
//! per-thread state it needs lives in [`Ctx`], so a connection and its context borrow apart.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use volley::protocol::deflate::{parse_response, Compressor, CompressorConfig, Inflater};
use volley::protocol::frame::{FrameHeader, OpCode};
use volley::protocol::handshake;
use volley::protocol::reader::{Event, ReaderConfig};
use volley::Message;

use super::conn::{push_frame, Conn, State};
use super::shared::{Shared, RUN};
use crate::cli::{Options, Scenario};
use crate::payload::{Pattern, Rng};
use crate::report::{count_error, Tally};

/// The permessage-deflate offer `--deflate` sends: plain, allowing the server to limit our window.
pub(super) const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// Read scratch buffer per thread.
pub(super) const SCRATCH: usize = 64 * 1024;
/// Largest handshake response accepted.
pub(super) const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Why a connection ends: the cause goes to the error map (`None`: a normal end).
pub(super) type Ending = Option<String>;

/// Everything but the connections, so a connection and its context borrow separately.
pub(super) struct Ctx {
    pub(super) opts: Arc<Options>,
    pub(super) shared: Arc<Shared>,
    pub(super) thread: usize,
    pub(super) epoch: Instant,
    pub(super) rng: Rng,
    pub(super) scratch: Vec<u8>,
    pub(super) pattern: Pattern,
    pub(super) reader_cfg: ReaderConfig,
    /// Deflate: the message before compression, and after.
    pub(super) plain: Vec<u8>,
    pub(super) packed: Vec<u8>,
    /// Deflate: compressors by window bits 9..=15 (no context takeover).
    pub(super) compressors: [Option<Box<Compressor>>; 7],
    /// Deflate: turns compressed messages into finished ones (and holds the decompressor shared
    /// by connections whose server resets its context).
    pub(super) inflater: Inflater,
    pub(super) extra_headers: Vec<(String, String)>,
    pub(super) phase: u8,
    /// Echo requests in flight on this thread.
    pub(super) outstanding: u64,
    /// Connections connecting or handshaking.
    pub(super) pending: usize,
    /// Connections alive (any state).
    pub(super) alive: usize,
    pub(super) res: Tally,
}

/// `"what: connection refused"` from an I/O error (its kind, without the os error number).
pub fn io_cause(what: &str, e: &io::Error) -> String {
    if e.raw_os_error() == Some(24) {
        return format!("{what}: too many open files (raise `ulimit -n` or use --processes)");
    }
    if e.raw_os_error() == Some(99) {
        return format!("{what}: no free local port (use --source with more addresses)");
    }
    format!("{what}: {}", e.kind())
}

impl Ctx {
    /// Advance `c` on readiness. `Err(ending)` when the connection is over.
    pub(super) fn drive(
        &mut self,
        c: &mut Conn,
        readable: bool,
        writable: bool,
    ) -> Result<(), Ending> {
        if c.state == State::Connecting {
            if !(readable || writable) {
                return Ok(());
            }
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Err(Some(io_cause("connect", &e))),
            }
            match c.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Some(io_cause("connect", &e))),
            }
            c.key = handshake::generate_key();
            let url = self.opts.target_url(usize::from(c.target));
            handshake::write_client_request(
                &mut c.wbuf,
                url.host.as_str(),
                &url.path,
                &c.key,
                &self.extra_headers,
            );
            c.state = State::Handshaking;
        }
        if readable {
            self.read(c)?;
        }
        c.flush()
            .map_err(|e| Some(io_cause(phase_name(c.state), &e)))?;
        Ok(())
    }

    /// Read until the socket is drained, handling every complete frame.
    pub(super) fn read(&mut self, c: &mut Conn) -> Result<(), Ending> {
        loop {
            let read = match c.tls.as_deref_mut() {
                Some(tls) => super::tls::read(tls, &mut c.sock, &mut self.scratch),
                None => c.sock.read(&mut self.scratch),
            };
            match read {
                Ok(0) => {
                    return Err(match c.state {
                        State::Handshaking => Some("handshake: closed by the server".into()),
                        State::Closing => Some("close: EOF before the server's close frame".into()),
                        _ => Some(format!(
                            "{}: closed by the server (EOF without close frame)",
                            scenario_word(&self.opts)
                        )),
                    });
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&self.scratch[..n]);
                    self.consume(c)?;
                    // On Linux a short read means the socket is drained; data arriving later
                    // raises a new edge, so the extra read() that would return EAGAIN is saved.
                    // (Not through TLS: a short read of plaintext says nothing of the socket.)
                    if n < self.scratch.len() && c.tls.is_none() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Some(io_cause(phase_name(c.state), &e))),
            }
        }
    }

    /// Consume the handshake response and then frames from `c.rbuf`.
    pub(super) fn consume(&mut self, c: &mut Conn) -> Result<(), Ending> {
        let now = Instant::now();
        if c.state == State::Handshaking {
            match handshake::parse_response(&c.rbuf, &c.key) {
                Ok(None) => {
                    if c.rbuf.len() > MAX_RESPONSE_HEAD {
                        return Err(Some("handshake: response head too large".into()));
                    }
                    return Ok(());
                }
                Err(e) => return Err(Some(format!("handshake: {e}"))),
                Ok(Some((head_len, extensions))) => {
                    let _ = c.rbuf.split_to(head_len);
                    self.opened(c, extensions.as_deref(), now)?;
                }
            }
        }
        let now_ns = if self.opts.scenario == Scenario::Broadcast {
            unix_ns()
        } else {
            0
        };
        loop {
            let ev = match c.reader.read(&mut c.rbuf, &self.reader_cfg) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return Err(Some(format!("protocol: {e}"))),
            };
            match ev {
                Event::Message(m) => self.on_message(c, m.as_bytes(), now, now_ns)?,
                Event::Compressed { text, payload } => {
                    let msg = self.inflate(c, text, &payload)?;
                    self.res.counters.compressed += 1;
                    self.on_message(c, msg.as_bytes(), now, now_ns)?;
                }
                Event::Ping(p) => {
                    self.res.counters.pings += 1;
                    c.push_control(OpCode::Pong, &p, &mut self.rng);
                }
                Event::Pong(_) => {}
                // `read` (not `read_streaming`) hands out whole messages only.
                Event::Chunk(_) | Event::CompressedChunk { .. } => {
                    return Err(Some(
                        "protocol: a chunk from a reader that does not stream".into(),
                    ))
                }
                Event::Close(frame) => {
                    if c.state == State::Closing {
                        self.res.counters.closed_clean += 1;
                        return Err(None);
                    }
                    let code = frame.as_ref().map_or(1005, |f| f.code.0);
                    // Answer the close as RFC 6455 §5.5.1 asks, then count it: the server ended
                    // a connection the run still needed.
                    let payload = if code != 1005 {
                        code.to_be_bytes()
                    } else {
                        [0; 2]
                    };
                    let len = if code != 1005 { 2 } else { 0 };
                    c.push_control(OpCode::Close, &payload[..len], &mut self.rng);
                    let _ = c.flush();
                    return Err(Some(format!(
                        "{}: closed by the server (code {code})",
                        scenario_word(&self.opts)
                    )));
                }
            }
        }
        if c.rbuf.is_empty() && c.rbuf.capacity() > 4 * SCRATCH {
            c.rbuf = bytes::BytesMut::new();
        }
        Ok(())
    }

    /// The handshake completed.
    fn opened(
        &mut self,
        c: &mut Conn,
        extensions: Option<&str>,
        now: Instant,
    ) -> Result<(), Ending> {
        // RFC 6455 §4.1: an extension we did not offer, or cannot use, fails the connection.
        if let Some(ext) = extensions {
            if !self.opts.deflate {
                return Err(Some(format!(
                    "handshake: server accepted an extension that was not offered ({ext})"
                )));
            }
            match parse_response(ext) {
                Some(agreed) => {
                    c.inflate = Some(Box::new(agreed.client_inflate()));
                    c.deflate = Some(Box::new(agreed));
                }
                None => {
                    return Err(Some(format!(
                        "handshake: unusable extension answer ({ext})"
                    )))
                }
            }
        }
        c.state = State::Open;
        c.key = String::new();
        self.pending -= 1;
        let ctr = &mut self.res.counters;
        ctr.established += 1;
        self.res
            .handshake
            .record((now - c.started).as_nanos() as u64);
        if c.deflate.is_some() {
            ctr.deflate_accepted += 1;
            c.reader.set_compression(true);
        }
        match self.opts.scenario {
            Scenario::Echo => {
                c.in_flight.reserve_exact(self.opts.in_flight);
                c.wbuf.reserve(self.opts.in_flight * (self.opts.size + 14));
                // Joining after the window opened (slow handshake): start sending now.
                if self.phase == RUN {
                    for _ in 0..self.opts.in_flight {
                        self.send_echo(c, now);
                    }
                }
            }
            Scenario::Broadcast => {
                c.expect = vec![0; self.opts.publishers];
            }
            Scenario::Connect | Scenario::Idle => {
                c.wbuf = Vec::new();
            }
        }
        Ok(())
    }

    /// Queue one data message of `opts.size` bytes written by `fill`: masked straight into the
    /// connection's write buffer, or, on a deflate connection, compressed first (one compressor
    /// per thread and window size, reset after every message, so any connection may use it).
    pub(super) fn queue_data(&mut self, c: &mut Conn, fill: impl FnOnce(&Pattern, &mut Vec<u8>)) {
        let mask = self.rng.mask();
        let Some(bits) = c.deflate.as_ref().map(|n| n.client_max_window_bits) else {
            let pattern = &self.pattern;
            push_frame(
                &mut c.wbuf,
                FrameHeader::new(OpCode::Binary, self.opts.size as u64),
                mask,
                |o| fill(pattern, o),
            );
            return;
        };
        self.plain.clear();
        fill(&self.pattern, &mut self.plain);
        let bits = bits.clamp(9, 15);
        let comp = self.compressors[usize::from(bits - 9)].get_or_insert_with(|| {
            let mut cfg = CompressorConfig::default();
            cfg.window_bits = bits;
            cfg.no_context_takeover = true;
            Box::new(Compressor::new(cfg))
        });
        self.packed.clear();
        comp.compress(&self.plain, &mut self.packed);
        let packed = &self.packed;
        push_frame(
            &mut c.wbuf,
            FrameHeader::new(OpCode::Binary, packed.len() as u64).compressed(),
            mask,
            |o| o.extend_from_slice(packed),
        );
    }

    /// A compressed message, finished by the library (inflated within the size limit, text
    /// checked for UTF-8).
    pub(super) fn inflate(
        &mut self,
        c: &mut Conn,
        text: bool,
        payload: &[u8],
    ) -> Result<Message, Ending> {
        let Some(state) = c.inflate.as_deref_mut() else {
            return Err(Some(
                "deflate: compressed message without an agreed extension".into(),
            ));
        };
        let max = self.reader_cfg.max_message_size;
        self.inflater
            .message(state, text, payload, max)
            .map_err(|e| Some(format!("deflate: {e}")))
    }

    pub(super) fn send_echo(&mut self, c: &mut Conn, now: Instant) {
        let seq = c.next_seq;
        c.next_seq += 1;
        c.in_flight.push_back(now);
        self.queue_data(c, |pattern, o| pattern.write_echo(seq, o));
        self.outstanding += 1;
        self.res.counters.sent += 1;
        self.res.counters.sent_bytes += self.opts.size as u64;
    }

    fn on_message(
        &mut self,
        c: &mut Conn,
        payload: &[u8],
        now: Instant,
        now_ns: u64,
    ) -> Result<(), Ending> {
        let ctr = &mut self.res.counters;
        ctr.received += 1;
        ctr.received_bytes += payload.len() as u64;
        if self.phase == RUN {
            ctr.window_received += 1;
            ctr.window_received_bytes += payload.len() as u64;
        }
        match self.opts.scenario {
            Scenario::Echo => {
                let Some(sent) = c.in_flight.pop_front() else {
                    ctr.mismatched += 1;
                    count_error(&mut self.res.errors, "echo: reply without a request");
                    return Ok(());
                };
                self.outstanding -= 1;
                let seq = c.recv_seq;
                c.recv_seq += 1;
                if !self.pattern.check_echo(seq, payload) {
                    ctr.mismatched += 1;
                    count_error(&mut self.res.errors, "echo: reply differs from the request");
                }
                self.res.rtt.record((now - sent).as_nanos() as u64);
                if self.phase == RUN && c.in_flight.len() < self.opts.in_flight {
                    self.send_echo(c, now);
                }
            }
            Scenario::Broadcast => {
                let Some((p, seq, sent_ns)) = self.pattern.parse_broadcast(payload) else {
                    count_error(&mut self.res.errors, "broadcast: malformed payload");
                    return Ok(());
                };
                let Some(expect) = c.expect.get_mut(p as usize) else {
                    count_error(&mut self.res.errors, "broadcast: unknown publisher id");
                    return Ok(());
                };
                if seq < *expect {
                    ctr.out_of_order += 1;
                } else {
                    *expect = seq + 1;
                }
                self.res.fanout.record(now_ns.saturating_sub(sent_ns));
                // From a publisher on another server (through the servers' bridge)?
                if self.opts.urls.len() > 1 || self.opts.publish_url.is_some() {
                    let from = self.opts.target_of(u64::from(p));
                    if from != usize::from(c.target) {
                        ctr.cross_received += 1;
                        if self.phase == RUN {
                            ctr.window_cross_received += 1;
                        }
                        self.res.fanout_cross.record(now_ns.saturating_sub(sent_ns));
                    }
                }
                if c.publisher == Some(p) {
                    c.own_in_flight = c.own_in_flight.saturating_sub(1);
                }
            }
            Scenario::Connect | Scenario::Idle => {}
        }
        Ok(())
    }
}

pub(super) fn phase_name(s: State) -> &'static str {
    match s {
        State::Connecting => "connect",
        State::Handshaking => "handshake",
        State::Open => "io",
        State::Closing => "close",
    }
}

pub(super) fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(super) fn scenario_word(o: &Options) -> &'static str {
    o.scenario.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_causes_are_readable() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_cause("connect", &e), "connect: connection refused");
        assert!(io_cause("connect", &io::Error::from_raw_os_error(24)).contains("ulimit"));
    }
}
