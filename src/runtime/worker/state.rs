//! The part of a worker that a [`Context`] borrows while a handler runs: sending (with
//! compression and the outbound limit), closing, heartbeat arming, topic membership, handler
//! timers. Kept apart from the event loop so a handler can touch its own connection and the
//! worker's shared state, but never another connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::Error;
use crate::protocol::close;
use crate::protocol::close::CloseCode;
use crate::protocol::frame::{empty_control_frame, Frame, FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::protocol::message::Message;
use crate::protocol::reader::ReaderConfig;
use crate::runtime::buffers::FrameArena;
use crate::runtime::compress::WorkerDeflate;
use crate::runtime::connection::{flags, ConnCore, Fragmenting, Phase, RateState};
use crate::runtime::pubsub::{SharedFrame, StreamSkip, Topics};
use crate::runtime::stats::{bump, WorkerStats};
use crate::runtime::timer::TimerWheel;
use crate::runtime::Delivery;
use crate::runtime::Shared;

/// The heartbeat's ping, encoded once at compile time.
static EMPTY_PING: [u8; 2] = empty_control_frame(OpCode::Ping);
use crate::config::{BackpressurePolicy, Compress, Rate};
use crate::runtime::handle::{ConnId, ConnLabel};

/// Timer wheel granularity.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Payloads up to this size are copied next to their header (one buffer, one iovec); larger ones
/// are queued as a separate, shared `Bytes`.
const COPY_THRESHOLD: usize = 1024;

/// What a timer entry refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerEntry {
    pub slot: u32,
    pub generation: u32,
    /// `None`: the connection's own timer (handshake, heartbeat, idle, close); `Some(id)`: a
    /// handler timer.
    pub user: Option<u64>,
}

/// Deferred work queued by handlers, applied right after the callback returns.
#[derive(Debug)]
pub(crate) enum Action {
    /// A publish or broadcast: local connections now, other workers at the end of the turn.
    Deliver(Delivery),
    /// A topic gained its first (`true`) or lost its last (`false`) subscriber.
    TopicEvent(Arc<str>, bool),
}

/// Put `core` in the worker's `dirty` list (flushed at the end of the loop turn), once.
#[inline]
pub(super) fn mark_dirty(dirty: &mut Vec<u32>, core: &mut ConnCore) {
    if !core.has(flags::DIRTY) {
        core.set(flags::DIRTY);
        dirty.push(core.slot);
    }
}

/// The part of a worker a [`Context`] may touch while a handler runs.
#[derive(Debug)]
pub(crate) struct WorkerState {
    pub id: u16,
    pub shared: Arc<Shared>,
    pub timers: TimerWheel<TimerEntry>,
    pub topics: Topics,
    pub actions: Vec<Action>,
    pub dirty: Vec<u32>,
    pub epoch: Instant,
    pub now: Instant,
    pub now_ms: u32,
    pub reader_cfg: ReaderConfig,
    pub deflate: WorkerDeflate,
    /// Where small frames and frame headers are encoded (reused once written).
    pub arena: FrameArena,
    /// Recovered stream subscriptions whose live deliveries may still repeat what was sent.
    pub stream_skips: Vec<StreamSkip>,
}

impl WorkerState {
    /// Worker `id`'s state, its clock starting at `now`.
    pub fn new(id: u16, shared: Arc<Shared>, now: Instant) -> Self {
        let cfg = &shared.config;
        WorkerState {
            id,
            reader_cfg: ReaderConfig {
                role: crate::protocol::reader::Role::Server,
                max_frame_size: cfg.max_frame_size,
                max_message_size: cfg.max_message_size,
            },
            deflate: WorkerDeflate::new(cfg),
            shared,
            timers: TimerWheel::new(TICK, now),
            topics: Topics::default(),
            actions: Vec::new(),
            dirty: Vec::new(),
            epoch: now,
            now,
            now_ms: 0,
            arena: FrameArena::default(),
            stream_skips: Vec::new(),
        }
    }

    /// Queue bytes for `core` (every frame and HTTP answer goes through here, so the statistics
    /// know what is queued); the caller marks the connection dirty.
    #[inline]
    pub fn enqueue(&self, core: &mut ConnCore, b: Bytes) {
        bump(&self.stats().bytes_queued, b.len() as u64);
        core.push(b);
    }

    /// Write the 101 response straight away: an idle connection then never allocates its
    /// outbound ring buffer. Whatever the socket does not take is queued. (On error nothing
    /// was written: it is all queued, and the flush reports it. Under TLS it is all queued, to
    /// be encrypted with the rest of the queue at the flush.)
    pub fn send_101(&self, core: &mut ConnCore, bytes: Vec<u8>) {
        let written = if core.is_tls() {
            0
        } else {
            std::io::Write::write(&mut core.stream, &bytes).unwrap_or_default()
        };
        if written < bytes.len() {
            let mut rest = Bytes::from(bytes);
            bytes::Buf::advance(&mut rest, written);
            self.enqueue(core, rest);
        }
        // Written straight away, so queued and written at once for the statistics.
        bump(&self.stats().bytes_queued, written as u64);
        bump(&self.stats().bytes_out, written as u64);
    }

    /// Queue (part of) a whole data message's frame: held back while a fragmented message is
    /// under way, so that its fragments are not interleaved with another message.
    fn enqueue_data(&self, core: &mut ConnCore, b: Bytes) {
        if let Some(f) = core.extra.as_mut().and_then(|x| x.fragmenting.as_mut()) {
            bump(&self.stats().bytes_queued, b.len() as u64);
            f.held_bytes += b.len();
            f.held.push(b);
            return;
        }
        self.enqueue(core, b);
    }

    /// Queue one fragment of a message sent in parts: the first carries the opcode, the rest
    /// are continuations, `fin` ends the message and releases the messages held meanwhile.
    /// On a connection that negotiated deflate, the message is compressed when its first
    /// fragment reaches the compression threshold, each fragment as it is sent.
    pub fn send_fragment(
        &mut self,
        core: &mut ConnCore,
        payload: Bytes,
        text: bool,
        fin: bool,
    ) -> Result<(), Error> {
        if !core.is_open() {
            return Err(Error::Closed);
        }
        let started = core.extra.as_ref().and_then(|x| x.fragmenting.as_ref());
        let opcode = match started {
            Some(f) if f.text != text => return Err(Error::FragmentKind),
            Some(_) => OpCode::Continuation,
            None if text => OpCode::Text,
            None => OpCode::Binary,
        };
        // Compressed or not is decided by the first fragment's size.
        let compressed = match started {
            Some(f) => f.compressed,
            None => core.has(flags::DEFLATE) && self.deflate.wants(payload.len(), Compress::Auto),
        };
        self.admit_outbound(core, payload.len() + MAX_HEADER_LEN)?;
        let payload = match core.extra.as_mut().and_then(|x| x.deflate.as_deref_mut()) {
            Some(conn) if compressed => {
                self.deflate
                    .compress_fragment(conn, &payload, fin, self.now_ms)
            }
            _ => payload,
        };
        let mut header = FrameHeader::new(opcode, payload.len() as u64).with_fin(fin);
        header.rsv1 = compressed && opcode != OpCode::Continuation;
        let header = self.arena.header(&header);
        self.enqueue(core, header);
        self.enqueue(core, payload);
        if fin {
            core.clear(flags::FRAGMENTING);
            if let Some(f) = core.extra.as_mut().and_then(|x| x.fragmenting.take()) {
                for b in f.held {
                    core.push(b);
                }
            }
            let st = self.stats();
            bump(&st.messages_out, 1);
            if text {
                bump(&st.text_messages_out, 1);
            }
        } else if opcode != OpCode::Continuation {
            core.set(flags::FRAGMENTING);
            core.extra().fragmenting = Some(Box::new(Fragmenting {
                text,
                compressed,
                ..Fragmenting::default()
            }));
        }
        self.mark_dirty(core);
        Ok(())
    }

    /// This worker's latency histograms.
    #[cfg(feature = "metrics")]
    pub fn histograms(&self) -> &crate::runtime::histogram::WorkerHistograms {
        &self.shared.histograms[usize::from(self.id)]
    }

    /// After a write: a queue that emptied records how long it waited (since this turn, or
    /// since the socket filled up); one that did not remembers when it started waiting.
    #[cfg(feature = "metrics")]
    pub fn record_queue_wait(&self, core: &mut ConnCore) {
        if core.out.is_empty() {
            let since = core
                .extra
                .as_mut()
                .and_then(|x| x.blocked_since.take())
                .unwrap_or(self.now);
            self.histograms()
                .queue_wait
                .observe(Instant::now().saturating_duration_since(since));
        } else {
            let x = core.extra();
            if x.blocked_since.is_none() {
                x.blocked_since = Some(self.now);
            }
        }
    }

    /// How log lines name the connection in `slot`.
    pub fn label(&self, core: &ConnCore, slot: usize) -> ConnLabel {
        ConnLabel {
            id: ConnId::new(self.id, slot as u32, core.generation),
            addr: core.peer,
        }
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id as usize]
    }

    pub fn conn_id(&self, core: &ConnCore) -> ConnId {
        ConnId::new(self.id, core.slot, core.generation)
    }

    #[inline]
    pub fn mark_dirty(&mut self, core: &mut ConnCore) {
        mark_dirty(&mut self.dirty, core);
    }

    pub(super) fn ms_at(&self, t: Instant) -> u32 {
        t.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// Queue a data message, encoding it for this connection.
    pub fn send_message(
        &mut self,
        core: &mut ConnCore,
        msg: &Message,
        how: Compress,
    ) -> Result<(), Error> {
        if !core.is_open() {
            return Err(Error::Closed);
        }
        let payload = msg.as_bytes();
        let total = payload.len() + MAX_HEADER_LEN;
        // Admit before compressing: a context-takeover compressor must never see a message the
        // peer will not get.
        self.admit_outbound(core, total)?;
        if let Some(frame) = self.compressed(core, msg, how, None) {
            self.enqueue_data(core, frame);
        } else if payload.len() <= COPY_THRESHOLD {
            let frame = self.arena.frame(&Frame::message(msg));
            self.enqueue_data(core, frame);
        } else {
            // A large payload is queued by reference after its own header (no copy).
            let header = self.arena.header(&Frame::message(msg).header());
            self.enqueue_data(core, header);
            self.enqueue_data(core, msg.clone().into_bytes());
        }
        self.count_out(msg);
        self.mark_dirty(core);
        Ok(())
    }

    /// Count one data message queued for sending.
    fn count_out(&self, msg: &Message) {
        let st = self.stats();
        bump(&st.messages_out, 1);
        if msg.is_text() {
            bump(&st.text_messages_out, 1);
        }
    }

    /// Queue a pre-encoded shared frame (publish, broadcast; a stream's recovery), the long
    /// way: every check for this connection (a fan-out's short path is `FanOut::plain_to`).
    pub fn send_shared(&mut self, core: &mut ConnCore, frame: &SharedFrame) -> Result<(), Error> {
        if !core.is_open() {
            return Err(Error::Closed);
        }
        self.admit_outbound(core, frame.plain.len())?;
        match self.compressed(core, &frame.msg, frame.compress, Some(&frame.deflated)) {
            Some(f) => self.enqueue_data(core, f),
            None => self.enqueue_data(core, frame.plain.clone()),
        }
        self.count_out(&frame.msg);
        self.mark_dirty(core);
        Ok(())
    }

    /// The compressed frame for `msg` on this connection, if it negotiated deflate and the
    /// message is over the threshold.
    pub(super) fn compressed(
        &mut self,
        core: &mut ConnCore,
        msg: &Message,
        how: Compress,
        shared: Option<&std::sync::OnceLock<Bytes>>,
    ) -> Option<Bytes> {
        if !core.has(flags::DEFLATE) {
            return None;
        }
        let conn = core.extra.as_mut()?.deflate.as_deref_mut()?;
        let f = self.deflate.compress(conn, msg, how, shared, self.now_ms)?;
        bump(&self.stats().compressed_out, 1);
        if core.timer.is_none() && self.shared.config.deflate_idle_release.is_some() {
            // Without heartbeats or an idle timeout no timer runs: one for the release.
            self.arm_liveness(core);
        }
        Some(f)
    }

    /// Take one message of `len` payload bytes from the connection's rate buckets; if either
    /// is short (the message is over `message_rate` or `byte_rate`), `Err` with the number of
    /// messages refused in a row.
    pub(super) fn admit_inbound(&mut self, core: &mut ConnCore, len: usize) -> Result<(), u32> {
        let (mrate, brate) = (
            self.shared.config.message_rate,
            self.shared.config.byte_rate,
        );
        let Some(st) = self.refill(core) else {
            return Ok(());
        };
        let len = len as f64;
        if (mrate.is_some() && st.messages < 1.0) || (brate.is_some() && st.bytes < len) {
            st.refused = st.refused.saturating_add(1);
            return Err(st.refused);
        }
        st.messages -= 1.0;
        st.bytes -= len;
        st.refused = 0;
        Ok(())
    }

    /// Charge `len` more bytes of a streamed message, admitted as a whole at its first chunk,
    /// to the byte bucket, which may go below zero: the messages after it wait until it has
    /// refilled.
    pub(super) fn charge_inbound(&mut self, core: &mut ConnCore, len: usize) {
        if let Some(st) = self.refill(core) {
            st.bytes -= len as f64;
        }
    }

    /// The connection's rate buckets, refilled for the time since they were last used; `None`
    /// when no rate limit is set.
    fn refill<'c>(&self, core: &'c mut ConnCore) -> Option<&'c mut RateState> {
        let cfg = &self.shared.config;
        let (mrate, brate) = (cfg.message_rate, cfg.byte_rate);
        if mrate.is_none() && brate.is_none() {
            return None;
        }
        let now_ms = self.now_ms;
        let burst = |r: Option<Rate>| r.map_or(0.0, |r| f64::from(r.burst.max(1)));
        let st = core.extra().rate.get_or_insert_with(|| {
            Box::new(RateState {
                messages: burst(mrate),
                bytes: burst(brate),
                at_ms: now_ms,
                refused: 0,
            })
        });
        let secs = f64::from(now_ms.wrapping_sub(st.at_ms)) / 1000.0;
        st.at_ms = now_ms;
        if let Some(r) = mrate {
            st.messages = (st.messages + secs * r.per_second.max(0.0)).min(burst(mrate));
        }
        if let Some(r) = brate {
            st.bytes = (st.bytes + secs * r.per_second.max(0.0)).min(burst(brate));
        }
        Some(st)
    }

    /// Apply the outbound limit: a message is refused when the queue already holds bytes and
    /// adding it would pass `max_outbound_bytes` (so one message larger than the limit can still
    /// go out through an empty queue).
    pub(super) fn admit_outbound(&mut self, core: &mut ConnCore, len: usize) -> Result<(), Error> {
        let max = self.shared.config.max_outbound_bytes;
        if core.queued() == 0 || core.queued() + len <= max {
            return Ok(());
        }
        // Over the limit within one loop turn: see whether the socket takes the queue now, so
        // only a peer that really does not read hits the policy. Errors surface at the flush.
        if let Ok(n) = core.write_out() {
            bump(&self.stats().bytes_out, n as u64);
            if core.queued() == 0 || core.queued() + len <= max {
                return Ok(());
            }
        }
        let queued = core.queued();
        match self.shared.config.backpressure {
            BackpressurePolicy::Drop => bump(&self.stats().dropped_messages, 1),
            _ => {
                log::info!(
                    "{}: slow consumer ({queued} bytes queued), closing with 1008",
                    self.label(core, core.slot as usize)
                );
                bump(&self.stats().slow_consumers_closed, 1);
                self.start_close(core, CloseCode::POLICY, "slow consumer");
            }
        }
        Err(Error::OutboundFull { queued, max })
    }

    pub fn send_ping(&mut self, core: &mut ConnCore, payload: &[u8]) -> Result<(), Error> {
        if !core.is_open() {
            return Err(Error::Closed);
        }
        if payload.is_empty() {
            // The heartbeat's ping: a static frame, no allocation.
            self.enqueue(core, Bytes::from_static(&EMPTY_PING));
        } else {
            let p = &payload[..payload.len().min(125)];
            let frame = self.arena.frame(&Frame::ping(p));
            self.enqueue(core, frame);
        }
        self.mark_dirty(core);
        Ok(())
    }

    pub(super) fn queue_control(&mut self, core: &mut ConnCore, opcode: OpCode, payload: &[u8]) {
        let frame = self.arena.frame(&Frame::new(opcode, payload));
        self.enqueue(core, frame);
        self.mark_dirty(core);
    }

    /// Send a close frame and wait (bounded by `close_timeout`) for the peer's answer.
    pub fn start_close(&mut self, core: &mut ConnCore, code: CloseCode, reason: &str) {
        if !core.is_open() {
            return;
        }
        let payload = close::encode_payload(code, reason);
        self.queue_control(core, OpCode::Close, &payload);
        core.enter(Phase::Closing);
        let deadline = self.now + self.shared.config.close_timeout;
        self.arm(core, deadline);
    }

    /// (Re)arm the connection's own timer.
    pub fn arm(&mut self, core: &mut ConnCore, deadline: Instant) {
        if let Some(k) = core.timer.take() {
            self.timers.cancel(k);
        }
        let e = TimerEntry {
            slot: core.slot,
            generation: core.generation,
            user: None,
        };
        core.timer = Some(self.timers.schedule(deadline, e));
    }

    /// Bytes arrived from the peer: it is alive. The heartbeat's silence counts from now, and
    /// an outstanding ping is answered: the next check of an open connection is a ping
    /// interval from now, not the pong deadline. (Other traffic never touches the wheel.) A
    /// closing connection keeps its close deadline.
    pub fn heard_from(&mut self, core: &mut ConnCore) {
        core.last_rx_ms = self.now_ms;
        if core.has(flags::PING_OUTSTANDING) {
            core.clear(flags::PING_OUTSTANDING);
            self.arm_liveness(core);
        }
    }

    /// Arm the heartbeat/idle check of an open connection at the earliest deadline that applies.
    /// Does nothing once the connection is no longer open: its own timer is then the close
    /// deadline (or the handshake's), which the heartbeat must not replace.
    pub fn arm_liveness(&mut self, core: &mut ConnCore) {
        if !core.is_open() {
            return;
        }
        let cfg = &self.shared.config;
        let mut next: Option<u32> = None;
        if let Some(iv) = cfg.ping_interval {
            let at = if core.has(flags::PING_OUTSTANDING) {
                core.last_rx_ms
                    .wrapping_add((iv + cfg.pong_timeout).as_millis() as u32)
            } else {
                core.last_rx_ms.wrapping_add(iv.as_millis() as u32)
            };
            next = Some(at);
        }
        if let Some(idle) = cfg.idle_timeout {
            let at = core.last_msg_ms.wrapping_add(idle.as_millis() as u32);
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(after) = cfg.deflate_idle_release {
            let at = core
                .extra
                .as_ref()
                .and_then(|x| x.deflate.as_deref())
                .and_then(|d| d.release_at(after));
            if let Some(at) = at {
                // Wrapping milliseconds: the earlier of the two, seen from now.
                let now = self.now_ms;
                next = Some(next.map_or(at, |n| {
                    if at.wrapping_sub(now) < n.wrapping_sub(now) {
                        at
                    } else {
                        n
                    }
                }));
            }
        }
        match next {
            Some(ms) => {
                let deadline = self.epoch + Duration::from_millis(ms as u64);
                self.arm(core, deadline.max(self.now));
            }
            None => {
                if let Some(k) = core.timer.take() {
                    self.timers.cancel(k);
                }
            }
        }
    }

    pub fn subscribe(&mut self, core: &mut ConnCore, topic: &str) -> bool {
        let slot = core.slot;
        let Some(name) = self.topics.subscribe(slot, &mut core.extra().topics, topic) else {
            return false;
        };
        let first = {
            let mut g = self.shared.topics.lock().unwrap_or_else(|e| e.into_inner());
            let c = g.entry(name.clone()).or_insert(0);
            *c += 1;
            *c == 1
        };
        if first {
            self.actions.push(Action::TopicEvent(name, true));
        }
        true
    }

    pub fn unsubscribe(&mut self, core: &mut ConnCore, topic: &str) -> bool {
        let Some(extra) = core.extra.as_mut() else {
            return false;
        };
        let Some(name) = self.topics.unsubscribe(&mut extra.topics, topic) else {
            return false;
        };
        self.topic_left(name);
        true
    }

    pub(super) fn topic_left(&mut self, name: Arc<str>) {
        let last = {
            let mut g = self.shared.topics.lock().unwrap_or_else(|e| e.into_inner());
            match g.get_mut(&name) {
                Some(c) if *c > 1 => {
                    *c -= 1;
                    false
                }
                Some(_) => {
                    g.remove(&name);
                    true
                }
                None => false,
            }
        };
        if last {
            self.actions.push(Action::TopicEvent(name, false));
        }
    }

    pub fn set_user_timer(&mut self, core: &mut ConnCore, after: Duration, id: u64) {
        self.cancel_user_timer(core, id);
        let e = TimerEntry {
            slot: core.slot,
            generation: core.generation,
            user: Some(id),
        };
        let key = self.timers.schedule(self.now + after, e);
        core.extra().user_timers.push((id, key));
    }

    pub fn cancel_user_timer(&mut self, core: &mut ConnCore, id: u64) -> bool {
        let Some(extra) = core.extra.as_mut() else {
            return false;
        };
        let Some(i) = extra.user_timers.iter().position(|t| t.0 == id) else {
            return false;
        };
        let (_, key) = extra.user_timers.swap_remove(i);
        self.timers.cancel(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real per-connection timer cost (docs/ARCHITECTURE.md quotes these figures).
    #[test]
    fn timer_slot_size() {
        assert_eq!(std::mem::size_of::<TimerEntry>(), 24);
        assert_eq!(TimerWheel::<TimerEntry>::SLOT_BYTES, 48);
    }

    /// A worker's state on its own (no threads, no listener), with `max_outbound_bytes` `max`.
    fn state(max: usize) -> WorkerState {
        let config = crate::Config::default().max_outbound_bytes(max);
        let now = Instant::now();
        let shared = Shared {
            ip_limits: None,
            remotes: Vec::new(),
            stats: vec![WorkerStats::default()].into(),
            conn_count: Default::default(),
            stopping: Default::default(),
            stop_accepting: Default::default(),
            topics: Default::default(),
            local_addr: ([127, 0, 0, 1], 0).into(),
            local_addrs: Vec::new(),
            #[cfg(feature = "tls")]
            tls: Vec::new(),
            acceptor_waker: None,
            #[cfg(feature = "metrics")]
            histograms: vec![Default::default()].into(),
            #[cfg(feature = "metrics")]
            metrics_path: None,
            bridge: None,
            bridge_stats: Default::default(),
            streams: Default::default(),
            workers_running: Default::default(),
            stopped: Default::default(),
            config,
        };
        WorkerState::new(0, Arc::new(shared), now)
    }

    /// A connection over loopback in `slot` (and its peer, kept open and unread).
    fn conn(slot: u32) -> (ConnCore, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, addr) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let core = ConnCore::new(mio::net::TcpStream::from_std(s), addr, slot, 1, 0);
        (core, peer)
    }

    /// What a send left on a connection: its queue, flags and held-back frames.
    fn outcome(core: &ConnCore) -> (Vec<Bytes>, u16, Option<Vec<Bytes>>) {
        let held = core.extra.as_ref().and_then(|x| x.fragmenting.as_ref());
        (
            core.out.iter().cloned().collect(),
            core.flags,
            held.map(|f| f.held.clone()),
        )
    }

    /// A fan-out's delivery, short path or long, leaves every kind of connection, the dirty
    /// list and the statistics exactly as `send_shared` does.
    #[test]
    fn fan_out_does_what_send_shared_does() {
        let max = 4096;
        let open = |c: &mut ConnCore| c.enter(Phase::Open);
        type Setup = fn(&mut ConnCore);
        let cases: [(&str, Setup); 7] = [
            ("open", open),
            ("handshaking", |_| {}),
            ("already dirty", |c| {
                c.enter(Phase::Open);
                c.set(flags::DIRTY);
            }),
            ("queue at the limit (the socket takes it)", |c| {
                c.enter(Phase::Open);
                c.push(Bytes::from(vec![7; 4090]));
            }),
            ("fragmented message under way", |c| {
                c.enter(Phase::Open);
                c.set(flags::FRAGMENTING);
                c.extra().fragmenting = Some(Box::default());
            }),
            ("deflate negotiated", |c| {
                c.enter(Phase::Open);
                c.set(flags::DEFLATE);
            }),
            ("closing", |c| {
                c.enter(Phase::Open);
                c.enter(Phase::Closing);
            }),
        ];
        for msg in [Message::text("hello"), Message::binary(vec![1u8; 2000])] {
            let frame = SharedFrame::encode(&msg, Compress::Auto);
            let (mut long, mut short) = (state(max), state(max));
            for (slot, (what, setup)) in cases.iter().enumerate() {
                let (mut a, _pa) = conn(slot as u32);
                let (mut b, _pb) = conn(slot as u32);
                setup(&mut a);
                setup(&mut b);
                let _ = long.send_shared(&mut a, &frame);
                let mut fan = short.fan_out(&frame);
                short.fan_out_to(&mut fan, &mut b);
                short.fan_out_end(fan);
                assert_eq!(outcome(&a), outcome(&b), "{what}");
                assert_eq!(long.dirty, short.dirty, "{what}");
                let (mut sa, mut sb) = (crate::Stats::default(), crate::Stats::default());
                sa.add(long.stats());
                sb.add(short.stats());
                assert_eq!(sa, sb, "{what}");
            }
            assert!(
                long.stats()
                    .messages_out
                    .load(std::sync::atomic::Ordering::Relaxed)
                    >= 4
            );
        }
    }
}
