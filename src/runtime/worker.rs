//! One worker thread: a `mio::Poll`, a slab of connections, a timer wheel, a command channel.
//!
//! A loop turn: wait for events (sleeping until the next timer with work), read each readable
//! socket until it is drained and dispatch complete messages to handlers, run due timers, apply
//! commands from other threads, then flush every connection that got output with one vectored
//! write each, and hand cross-worker publishes to the other workers with one wake-up each.

use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::error::{Error, ProtocolError};
use crate::handler::{Factory, Handler};
use crate::message::{CloseCode, CloseFrame, Message, Utf8Bytes};
use crate::protocol::close;
use crate::protocol::frame::{encode_frame, FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::protocol::reader::{Event, ReaderConfig, Role};
use crate::runtime::compress::{ConnDeflate, WorkerDeflate};
use crate::runtime::connection::{flags, ConnCore, Phase};
use crate::runtime::context::Context;
use crate::runtime::pubsub::{SharedFrame, Topics};
use crate::runtime::stats::{bump, drop_one, WorkerStats};
use crate::runtime::timer::TimerWheel;
use crate::runtime::upgrade::{self, Outcome};
use crate::runtime::{Command, Shared};
use crate::server::ConnId;
use crate::BackpressurePolicy;

/// Token of the worker's waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Token of the worker's own listener (reuse-port mode).
pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
/// Payloads up to this size are copied next to their header (one buffer, one iovec); larger ones
/// are queued as a separate, shared `Bytes`.
const COPY_THRESHOLD: usize = 1024;
/// Timer wheel granularity.
pub(crate) const TICK: Duration = Duration::from_millis(10);

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
    Publish {
        topic: Arc<str>,
        frame: SharedFrame,
        skip: Option<ConnId>,
    },
    Broadcast {
        frame: SharedFrame,
        skip: Option<ConnId>,
    },
    TopicEvent(Arc<str>, bool),
}

/// One connection: its I/O state and, once upgraded, its handler.
pub(crate) struct Conn<H> {
    pub core: ConnCore,
    pub handler: Option<H>,
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
}

impl WorkerState {
    pub fn stats(&self) -> &WorkerStats {
        &self.shared.stats[self.id as usize]
    }

    pub fn conn_id(&self, core: &ConnCore) -> ConnId {
        ConnId::new(self.id, core.slot, core.generation)
    }

    #[inline]
    pub fn mark_dirty(&mut self, core: &mut ConnCore) {
        if !core.has(flags::DIRTY) {
            core.set(flags::DIRTY);
            self.dirty.push(core.slot);
        }
    }

    fn ms_at(&self, t: Instant) -> u32 {
        t.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// Queue a data message, encoding it for this connection.
    pub fn send_message(&mut self, core: &mut ConnCore, msg: &Message) -> Result<(), Error> {
        if !core.can_send() {
            return Err(Error::Closed);
        }
        let opcode = if msg.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let payload = msg.as_bytes();
        let total = payload.len() + MAX_HEADER_LEN;
        // Admit before compressing: a context-takeover compressor must never see a message the
        // peer will not get.
        self.admit(core, total)?;
        if let Some(frame) = self.compressed(core, msg, None) {
            core.push(frame);
        } else if payload.len() <= COPY_THRESHOLD {
            core.push(encode_frame(opcode, true, false, payload, None));
        } else {
            let header = FrameHeader {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            };
            let mut h = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut h);
            core.push(Bytes::copy_from_slice(&h[..n]));
            core.push(msg.clone().into_bytes());
        }
        bump(&self.stats().messages_out, 1);
        self.mark_dirty(core);
        Ok(())
    }

    /// Queue a pre-encoded shared frame (publish, broadcast).
    pub fn send_shared(&mut self, core: &mut ConnCore, frame: &SharedFrame) -> Result<(), Error> {
        if !core.can_send() {
            return Err(Error::Closed);
        }
        self.admit(core, frame.plain.len())?;
        match self.compressed(core, &frame.msg, Some(&frame.deflated)) {
            Some(f) => core.push(f),
            None => core.push(frame.plain.clone()),
        }
        bump(&self.stats().messages_out, 1);
        self.mark_dirty(core);
        Ok(())
    }

    /// The compressed frame for `msg` on this connection, if it negotiated deflate and the
    /// message is over the threshold.
    fn compressed(
        &mut self,
        core: &mut ConnCore,
        msg: &Message,
        shared: Option<&std::sync::OnceLock<Bytes>>,
    ) -> Option<Bytes> {
        if !core.has(flags::DEFLATE) {
            return None;
        }
        let conn = core.extra.as_mut()?.deflate.as_deref_mut()?;
        let f = self.deflate.compress(conn, msg, shared)?;
        bump(&self.stats().compressed_out, 1);
        Some(f)
    }

    /// Apply the outbound limit: a message is refused when the queue already holds bytes and
    /// adding it would pass `max_outbound_bytes` (so one message larger than the limit can still
    /// go out through an empty queue).
    fn admit(&mut self, core: &mut ConnCore, len: usize) -> Result<(), Error> {
        let max = self.shared.config.max_outbound_bytes;
        if core.out.bytes() == 0 || core.out.bytes() + len <= max {
            return Ok(());
        }
        // Over the limit within one loop turn: see whether the socket takes the queue now, so
        // only a peer that really does not read hits the policy. Errors surface at the flush.
        if let Ok(n) = core.write_out() {
            bump(&self.stats().bytes_out, n as u64);
            if core.out.bytes() == 0 || core.out.bytes() + len <= max {
                return Ok(());
            }
        }
        let queued = core.out.bytes();
        match self.shared.config.backpressure {
            BackpressurePolicy::Drop => bump(&self.stats().dropped_messages, 1),
            _ => {
                log::info!(
                    "{}: slow consumer ({queued} bytes queued), closing",
                    core.peer
                );
                bump(&self.stats().slow_consumers_closed, 1);
                self.start_close(core, CloseCode::POLICY, "slow consumer");
            }
        }
        Err(Error::OutboundFull { queued, max })
    }

    pub fn send_ping(&mut self, core: &mut ConnCore, payload: &[u8]) -> Result<(), Error> {
        if !core.can_send() {
            return Err(Error::Closed);
        }
        let p = &payload[..payload.len().min(125)];
        core.push(encode_frame(OpCode::Ping, true, false, p, None));
        self.mark_dirty(core);
        Ok(())
    }

    fn queue_control(&mut self, core: &mut ConnCore, opcode: OpCode, payload: &[u8]) {
        core.push(encode_frame(opcode, true, false, payload, None));
        self.mark_dirty(core);
    }

    /// Send a close frame and wait (bounded by `close_timeout`) for the peer's answer.
    pub fn start_close(&mut self, core: &mut ConnCore, code: CloseCode, reason: &str) {
        if core.phase != Phase::Open {
            return;
        }
        let payload = close::encode_payload(code, reason);
        self.queue_control(core, OpCode::Close, &payload);
        core.phase = Phase::Closing;
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

    /// Arm the heartbeat/idle check of an open connection at the earliest deadline that applies.
    pub fn arm_liveness(&mut self, core: &mut ConnCore) {
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

    fn topic_left(&mut self, name: Arc<str>) {
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

/// The connection `id` names, if it still exists on worker `me`.
fn live<H>(conns: &mut Slab<Conn<H>>, me: u16, id: ConnId) -> Option<&mut Conn<H>> {
    if id.worker() != me {
        return None;
    }
    conns
        .get_mut(id.slot() as usize)
        .filter(|c| c.core.generation == id.generation())
}

/// A worker thread's whole state.
pub(crate) struct Worker<F: Factory> {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    rx: Receiver<Command>,
    factory: Arc<F>,
    conns: Slab<Conn<F::Handler>>,
    ws: WorkerState,
    /// Zero-initialised space the next read lands in; frames split off it are handed out.
    spare: BytesMut,
    next_generation: u32,
    fired: Vec<TimerEntry>,
    scratch: Vec<u32>,
    /// Commands for other workers, sent once per loop turn.
    outbox: Vec<Vec<Command>>,
    shutdown_deadline: Option<Instant>,
}

impl<F: Factory> Worker<F> {
    pub fn new(
        id: u16,
        poll: Poll,
        listener: Option<TcpListener>,
        rx: Receiver<Command>,
        factory: Arc<F>,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let mut listener = listener;
        if let Some(l) = listener.as_mut() {
            poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        let now = Instant::now();
        let cfg = &shared.config;
        let reader_cfg = ReaderConfig {
            role: Role::Server,
            max_frame_size: cfg.max_frame_size,
            max_message_size: cfg.max_message_size,
        };
        let workers = shared.remotes.len();
        let deflate = WorkerDeflate::new(cfg);
        Ok(Worker {
            poll,
            events: Events::with_capacity(1024),
            listener,
            rx,
            factory,
            conns: Slab::new(),
            ws: WorkerState {
                id,
                shared,
                timers: TimerWheel::new(TICK, now),
                topics: Topics::default(),
                actions: Vec::new(),
                dirty: Vec::new(),
                epoch: now,
                now,
                now_ms: 0,
                reader_cfg,
                deflate,
            },
            spare: BytesMut::new(),
            next_generation: 0,
            fired: Vec::new(),
            scratch: Vec::new(),
            outbox: (0..workers).map(|_| Vec::new()).collect(),
            shutdown_deadline: None,
        })
    }

    /// Run until shutdown completes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        std::mem::swap(&mut events, &mut self.events);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("worker {}: poll failed: {e}", self.ws.id);
                    break;
                }
            }
            self.tick_clock();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => self.drain_commands(),
                    LISTENER => self.accept_all(),
                    Token(slot) => {
                        if ev.is_writable() || ev.is_write_closed() {
                            self.flush(slot);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(slot);
                        }
                    }
                }
            }
            self.fire_timers();
            self.end_turn();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    break;
                }
                if self.ws.now >= deadline {
                    let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for s in slots {
                        self.remove(s, CloseCode::ABNORMAL, "shutdown timeout");
                    }
                    break;
                }
            }
        }
        // Give late commands (e.g. publishes) nowhere to go, and let handles see we're gone.
        drop(self.rx);
    }

    fn tick_clock(&mut self) {
        self.ws.now = Instant::now();
        self.ws.now_ms = self.ws.ms_at(self.ws.now);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        // The clock read at the end of the last turn: at most one turn's work stale, which only
        // makes a timer fire that much later than its tick, never early.
        let now = self.ws.now;
        let timers = self.ws.timers.timeout(now);
        match self.shutdown_deadline {
            Some(d) => {
                let d = d.saturating_duration_since(now);
                Some(timers.map_or(d, |t| t.min(d)))
            }
            None => timers,
        }
    }

    /// Flush dirty connections and forward commands to other workers.
    fn end_turn(&mut self) {
        while !self.ws.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.ws.dirty);
            for &slot in &dirty {
                if let Some(c) = self.conns.get_mut(slot as usize) {
                    c.core.clear(flags::DIRTY);
                }
                self.flush(slot as usize);
            }
            // Callbacks run by flush (drain, close) may have queued more output.
            if self.ws.dirty.is_empty() {
                self.ws.dirty = dirty;
                self.ws.dirty.clear();
            }
        }
        for (i, out) in self.outbox.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let cmd = if out.len() == 1 {
                out.pop().unwrap_or(Command::Batch(Vec::new()))
            } else {
                Command::Batch(std::mem::take(out))
            };
            self.ws.shared.remotes[i].send(cmd);
        }
    }

    // ---- accepting -------------------------------------------------------------------------

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit_socket(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next readiness event.
                    log::warn!("worker {}: accept failed: {e}", self.ws.id);
                    return;
                }
            }
        }
    }

    /// Take a new socket (from our listener or the acceptor thread).
    pub(crate) fn admit_socket(
        &mut self,
        mut stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) {
        let shared = &self.ws.shared;
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if !upgrade::reserve_slot(shared) {
            log::warn!(
                "{peer}: over max_connections ({}), answering 503",
                shared.config.max_connections
            );
            bump(&self.ws.stats().handshakes_rejected, 1);
            upgrade::write_unavailable(&mut stream);
            return;
        }
        if shared.config.tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(slot), Interest::READABLE)
        {
            log::warn!("{peer}: register failed: {e}");
            shared.conn_count.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut core = ConnCore::new(
            stream,
            peer,
            slot as u32,
            self.next_generation,
            self.ws.now_ms,
        );
        if let Some(t) = self.ws.shared.config.handshake_timeout {
            let deadline = self.ws.now + t;
            self.ws.arm(&mut core, deadline);
        }
        entry.insert(Conn {
            core,
            handler: None,
        });
    }

    // ---- commands --------------------------------------------------------------------------

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Accepted(stream, peer) => self.admit_socket(stream, peer),
            Command::Send(id, msg) => {
                if let Some(conn) = live(&mut self.conns, self.ws.id, id) {
                    let _ = self.ws.send_message(&mut conn.core, &msg);
                }
            }
            Command::Close(id, code, reason) => {
                if let Some(conn) = live(&mut self.conns, self.ws.id, id) {
                    self.ws.start_close(&mut conn.core, code, &reason);
                }
            }
            Command::Publish { topic, frame, skip } => self.fan_out_local(&topic, &frame, skip),
            Command::Broadcast { frame, skip } => self.broadcast_local(&frame, skip),
            Command::Batch(cmds) => cmds.into_iter().for_each(|c| self.command(c)),
            Command::Shutdown => self.begin_shutdown(),
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::debug!(
            "worker {}: shutting down ({} connections)",
            self.ws.id,
            self.conns.len()
        );
        self.shutdown_deadline = Some(self.ws.now + self.ws.shared.config.close_timeout);
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            let conn = &mut self.conns[slot];
            match conn.core.phase {
                Phase::Handshake => self.remove(slot, CloseCode::ABNORMAL, "server shutdown"),
                Phase::Open => {
                    self.ws
                        .start_close(&mut conn.core, CloseCode::GOING_AWAY, "server shutdown")
                }
                _ => {}
            }
        }
    }

    // ---- pub/sub ---------------------------------------------------------------------------

    fn fan_out_local(&mut self, topic: &str, frame: &SharedFrame, skip: Option<ConnId>) {
        let mut subs = std::mem::take(&mut self.scratch);
        subs.clear();
        subs.extend(self.ws.topics.subscribers(topic));
        for &slot in &subs {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if skip.is_some_and(|s| {
                s.slot() == slot
                    && s.generation() == conn.core.generation
                    && s.worker() == self.ws.id
            }) {
                continue;
            }
            let _ = self.ws.send_shared(&mut conn.core, frame);
        }
        self.scratch = subs;
    }

    fn broadcast_local(&mut self, frame: &SharedFrame, skip: Option<ConnId>) {
        let id = self.ws.id;
        for (slot, conn) in self.conns.iter_mut() {
            if conn.core.phase != Phase::Open {
                continue;
            }
            if skip.is_some_and(|s| {
                s.worker() == id
                    && s.slot() as usize == slot
                    && s.generation() == conn.core.generation
            }) {
                continue;
            }
            let _ = self.ws.send_shared(&mut conn.core, frame);
        }
    }

    /// Apply what handlers queued: local fan-out now, other workers at the end of the turn.
    fn run_actions(&mut self) {
        while !self.ws.actions.is_empty() {
            let actions = std::mem::take(&mut self.ws.actions);
            for a in actions {
                match a {
                    Action::Publish { topic, frame, skip } => {
                        self.fan_out_local(&topic, &frame, skip);
                        self.queue_for_others(|| Command::Publish {
                            topic: topic.clone(),
                            frame: frame.clone(),
                            skip,
                        });
                    }
                    Action::Broadcast { frame, skip } => {
                        self.broadcast_local(&frame, skip);
                        self.queue_for_others(|| Command::Broadcast {
                            frame: frame.clone(),
                            skip,
                        });
                    }
                    Action::TopicEvent(name, active) => {
                        let f = self.factory.clone();
                        let _ = catch_unwind(AssertUnwindSafe(|| f.on_topic(&name, active)));
                    }
                }
            }
        }
    }

    fn queue_for_others(&mut self, make: impl Fn() -> Command) {
        let me = self.ws.id as usize;
        for (i, out) in self.outbox.iter_mut().enumerate() {
            if i != me {
                out.push(make());
            }
        }
    }

    // ---- handler calls ---------------------------------------------------------------------

    /// Run a handler callback with a context; a panicking handler closes only its connection
    /// (1011) and the worker goes on.
    fn call(&mut self, slot: usize, f: impl FnOnce(&mut F::Handler, &mut Context<'_>)) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(handler) = conn.handler.as_mut() else {
            return;
        };
        let mut ctx = Context {
            core: &mut conn.core,
            ws: &mut self.ws,
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(handler, &mut ctx)));
        if r.is_err() {
            log::error!(
                "{}: handler panicked; closing the connection with 1011",
                conn.core.peer
            );
            self.ws
                .start_close(&mut conn.core, CloseCode::INTERNAL, "internal error");
        }
        self.run_actions();
    }

    /// Report the end of the connection to its handler, once.
    fn report_close(&mut self, slot: usize, frame: CloseFrame) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.handler.is_none() || conn.core.has(flags::CLOSE_REPORTED) {
            return;
        }
        conn.core.set(flags::CLOSE_REPORTED);
        self.call(slot, |h, ctx| h.on_close(ctx, frame));
    }

    // ---- reading ---------------------------------------------------------------------------

    fn on_readable(&mut self, slot: usize) {
        let read_size = self.ws.shared.config.read_buffer_size.max(4096);
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            if self.spare.len() < read_size / 4 {
                self.spare = BytesMut::zeroed(read_size);
            }
            let want = self.spare.len();
            match conn.core.stream.read(&mut self.spare[..]) {
                Ok(0) => {
                    self.peer_eof(slot);
                    return;
                }
                Ok(n) => {
                    let chunk = self.spare.split_to(n);
                    conn.core.last_rx_ms = self.ws.now_ms;
                    if conn.core.has(flags::PING_OUTSTANDING) {
                        // The peer is alive: the next check is a ping interval from now, not the
                        // pong deadline. Other traffic never touches the wheel.
                        conn.core.clear(flags::PING_OUTSTANDING);
                        if conn.core.phase == Phase::Open {
                            self.ws.arm_liveness(&mut conn.core);
                        }
                    }
                    if conn.core.phase == Phase::Draining {
                        continue; // discard until EOF
                    }
                    if conn.core.rbuf.is_empty() {
                        self.process(slot, chunk);
                    } else {
                        conn.core.rbuf.extend_from_slice(&chunk);
                        let buf = std::mem::take(&mut conn.core.rbuf);
                        self.process(slot, buf);
                    }
                    if n < want {
                        return; // drained: edge-triggered readiness will report new data
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.io_error(slot, e);
                    return;
                }
            }
        }
    }

    /// Parse what `buf` holds for this connection; keep an incomplete tail in the connection.
    fn process(&mut self, slot: usize, mut buf: BytesMut) {
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            match conn.core.phase {
                Phase::Handshake => {
                    if !self.handshake(slot, &mut buf) {
                        break;
                    }
                }
                Phase::Open | Phase::Closing => {
                    match conn.core.reader.read(&mut buf, &self.ws.reader_cfg) {
                        Ok(Some(ev)) => self.dispatch(slot, ev),
                        Ok(None) => break,
                        Err(e) => {
                            self.fail(slot, e);
                            return;
                        }
                    }
                }
                Phase::Draining => return,
            }
        }
        if let Some(conn) = self.conns.get_mut(slot) {
            if buf.is_empty() {
                conn.core.rbuf = BytesMut::new();
            } else if buf.capacity() > 4 * buf.len() + 4096 {
                // Don't let a small tail pin a large shared read block.
                conn.core.rbuf = BytesMut::from(&buf[..]);
            } else {
                conn.core.rbuf = buf;
            }
        }
    }

    /// Returns true if the connection was upgraded and `buf` may hold frames to process.
    fn handshake(&mut self, slot: usize, buf: &mut BytesMut) -> bool {
        let conn = &mut self.conns[slot];
        let outcome = upgrade::handle(&*self.factory, &self.ws.shared.config, conn.core.peer, buf);
        match outcome {
            Outcome::Partial => false,
            Outcome::Respond {
                bytes,
                upgraded: None,
                rejected,
            } => {
                let st = self.ws.stats();
                bump(
                    if rejected {
                        &st.handshakes_rejected
                    } else {
                        &st.http_requests
                    },
                    1,
                );
                buf.clear();
                conn.core.push(Bytes::from(bytes));
                conn.core.phase = Phase::Draining;
                self.ws.mark_dirty(&mut conn.core);
                let deadline = self.ws.now + self.ws.shared.config.close_timeout;
                self.ws.arm(&mut conn.core, deadline);
                false
            }
            Outcome::Respond {
                bytes,
                upgraded: Some(up),
                ..
            } => {
                bytes::Buf::advance(buf, up.consumed);
                // Write the 101 straight away: an idle connection then never allocates its
                // outbound ring buffer. Whatever the socket does not take is queued.
                // On error nothing was written: it is all queued, and the flush reports it.
                let written =
                    std::io::Write::write(&mut conn.core.stream, &bytes).unwrap_or_default();
                if written < bytes.len() {
                    let mut rest = Bytes::from(bytes);
                    bytes::Buf::advance(&mut rest, written);
                    conn.core.push(rest);
                }
                bump(&self.ws.stats().bytes_out, written as u64);
                conn.core.phase = Phase::Open;
                if let Some(p) = up.protocol {
                    conn.core.extra().protocol = Some(p.into_boxed_str());
                }
                if let Some(neg) = up.deflate {
                    conn.core.set(flags::DEFLATE);
                    conn.core.reader.set_compression(true);
                    conn.core.extra().deflate = Some(Box::new(ConnDeflate::new(neg)));
                }
                conn.handler = Some(up.handler);
                conn.core.last_msg_ms = self.ws.now_ms;
                self.ws.mark_dirty(&mut conn.core);
                self.ws.arm_liveness(&mut conn.core);
                let st = self.ws.stats();
                bump(&st.connections_open, 1);
                bump(&st.connections_total, 1);
                self.call(slot, |h, ctx| h.on_open(ctx));
                true
            }
        }
    }

    fn dispatch(&mut self, slot: usize, ev: Event) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        match ev {
            Event::Message(msg) => {
                if conn.core.phase != Phase::Open {
                    return; // we are closing: data is discarded (RFC 6455 §5.5.1)
                }
                conn.core.last_msg_ms = self.ws.now_ms;
                let st = self.ws.stats();
                bump(&st.messages_in, 1);
                bump(&st.bytes_in, msg.len() as u64);
                self.call(slot, |h, ctx| h.on_message(ctx, msg));
            }
            Event::Compressed { text, payload } => {
                if conn.core.phase != Phase::Open {
                    return;
                }
                let max = self.ws.shared.config.max_message_size;
                let Some(cd) = conn
                    .core
                    .extra
                    .as_mut()
                    .and_then(|e| e.deflate.as_deref_mut())
                else {
                    return self.fail(slot, ProtocolError::ReservedBits);
                };
                let inflated = match self.ws.deflate.decompress(cd, &payload, max) {
                    Ok(b) => b,
                    Err(e) => return self.fail(slot, e),
                };
                let msg = if text {
                    match Utf8Bytes::try_from_bytes(inflated) {
                        Ok(t) => Message::Text(t),
                        Err(_) => return self.fail(slot, ProtocolError::InvalidUtf8),
                    }
                } else {
                    Message::Binary(inflated)
                };
                bump(&self.ws.stats().compressed_in, 1);
                self.dispatch(slot, Event::Message(msg));
            }
            Event::Ping(payload) => {
                if conn.core.phase == Phase::Open {
                    self.ws
                        .queue_control(&mut conn.core, OpCode::Pong, &payload);
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
                    self.ws
                        .queue_control(&mut conn.core, OpCode::Close, &payload);
                }
                self.enter_draining(slot);
                let frame = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::NO_STATUS, ""));
                self.report_close(slot, frame);
            }
        }
    }

    /// The closing handshake is over (or failed): flush, shut our side, wait for EOF (bounded).
    fn enter_draining(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.core.phase = Phase::Draining;
        conn.core.rbuf = BytesMut::new();
        self.ws.mark_dirty(&mut conn.core);
        let deadline = self.ws.now + self.ws.shared.config.close_timeout;
        self.ws.arm(&mut conn.core, deadline);
    }

    /// Fail the connection for a protocol violation: close with its code, log, tell the handler.
    fn fail(&mut self, slot: usize, err: ProtocolError) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let code = err.close_code();
        log::info!(
            "{}: protocol error, closing with {code}: {err}",
            conn.core.peer
        );
        let st = self.ws.stats();
        bump(&st.protocol_errors, 1);
        match code.0 {
            1002 => bump(&st.closed_1002, 1),
            1007 => bump(&st.closed_1007, 1),
            1009 => bump(&st.closed_1009, 1),
            _ => {}
        }
        if conn.core.phase == Phase::Open {
            let reason = err.to_string();
            let payload = close::encode_payload(code, &reason);
            self.ws
                .queue_control(&mut conn.core, OpCode::Close, &payload);
        }
        self.enter_draining(slot);
        let reason = err.to_string();
        self.call(slot, |h, ctx| h.on_error(ctx, Error::Protocol(err)));
        self.report_close(slot, CloseFrame::new(code, reason));
    }

    fn peer_eof(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        match conn.core.phase {
            Phase::Draining => self.remove(slot, CloseCode::ABNORMAL, "closed"),
            Phase::Handshake => self.remove(slot, CloseCode::ABNORMAL, "eof during handshake"),
            _ => {
                log::debug!(
                    "{}: connection closed without a close frame",
                    conn.core.peer
                );
                self.remove(
                    slot,
                    CloseCode::ABNORMAL,
                    "connection closed without a close frame",
                );
            }
        }
    }

    fn io_error(&mut self, slot: usize, e: io::Error) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.core.phase != Phase::Draining && conn.core.phase != Phase::Handshake {
            log::debug!("{}: i/o error: {e}", conn.core.peer);
            let reason = e.to_string();
            self.call(slot, |h, ctx| h.on_error(ctx, Error::Io(e)));
            self.remove(slot, CloseCode::ABNORMAL, &reason);
        } else {
            self.remove(slot, CloseCode::ABNORMAL, "i/o error");
        }
    }

    // ---- writing ---------------------------------------------------------------------------

    fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.core.out.is_empty() {
            match conn.core.write_out() {
                Ok(n) => bump(&self.ws.stats().bytes_out, n as u64),
                Err(e) => {
                    self.io_error(slot, e);
                    return;
                }
            }
        }
        if !conn.core.out.is_empty() {
            // The socket is full: ask for writable events until the queue drains. Sockets are
            // registered for reading only otherwise, so the ACKs of an ordinary write wake no
            // one (edge-triggered EPOLLOUT would fire on every freed send buffer).
            if !conn.core.has(flags::WANT_DRAIN) {
                conn.core.set(flags::WANT_DRAIN);
                let interest = Interest::READABLE | Interest::WRITABLE;
                let _ =
                    self.poll
                        .registry()
                        .reregister(&mut conn.core.stream, Token(slot), interest);
            }
            return;
        }
        if conn.core.has(flags::WANT_DRAIN) {
            let _ = self.poll.registry().reregister(
                &mut conn.core.stream,
                Token(slot),
                Interest::READABLE,
            );
        }
        if conn.core.phase == Phase::Draining {
            if !conn.core.has(flags::WRITE_SHUT) {
                conn.core.set(flags::WRITE_SHUT);
                if conn
                    .core
                    .stream
                    .shutdown(std::net::Shutdown::Write)
                    .is_err()
                {
                    self.remove(slot, CloseCode::ABNORMAL, "closed");
                }
            }
            return;
        }
        if conn.core.has(flags::WANT_DRAIN) {
            conn.core.clear(flags::WANT_DRAIN);
            if conn.core.phase == Phase::Open {
                self.call(slot, |h, ctx| h.on_drain(ctx));
            }
        }
    }

    // ---- timers ----------------------------------------------------------------------------

    fn fire_timers(&mut self) {
        let mut fired = std::mem::take(&mut self.fired);
        self.ws.timers.poll(self.ws.now, &mut fired);
        for e in fired.drain(..) {
            let slot = e.slot as usize;
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            if conn.core.generation != e.generation {
                continue; // stale entry for a reused slot
            }
            match e.user {
                Some(id) => {
                    if let Some(x) = conn.core.extra.as_mut() {
                        x.user_timers.retain(|t| t.0 != id);
                    }
                    self.call(slot, |h, ctx| h.on_timer(ctx, id));
                }
                None => {
                    conn.core.timer = None;
                    self.conn_timer(slot);
                }
            }
        }
        self.fired = fired;
    }

    fn conn_timer(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let st = &self.ws.shared.stats[self.ws.id as usize];
        match conn.core.phase {
            Phase::Handshake => {
                log::info!("{}: handshake timeout", conn.core.peer);
                bump(&st.timeouts, 1);
                self.remove(slot, CloseCode::ABNORMAL, "handshake timeout");
            }
            Phase::Closing => {
                log::info!("{}: no answer to our close frame in time", conn.core.peer);
                bump(&st.timeouts, 1);
                self.remove(slot, CloseCode::ABNORMAL, "close timeout");
            }
            Phase::Draining => self.remove(slot, CloseCode::ABNORMAL, "close timeout"),
            Phase::Open => self.liveness(slot),
        }
    }

    /// Heartbeat and idle checks of an open connection.
    fn liveness(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let cfg = &self.ws.shared.config;
        let now = self.ws.now_ms;
        if let Some(idle) = cfg.idle_timeout {
            if now.wrapping_sub(conn.core.last_msg_ms) >= idle.as_millis() as u32 {
                log::info!("{}: idle timeout", conn.core.peer);
                bump(&self.ws.stats().timeouts, 1);
                self.ws
                    .start_close(&mut conn.core, CloseCode::NORMAL, "idle timeout");
                return;
            }
        }
        if let Some(iv) = cfg.ping_interval {
            let silent = now.wrapping_sub(conn.core.last_rx_ms);
            if conn.core.has(flags::PING_OUTSTANDING) {
                if silent >= (iv + cfg.pong_timeout).as_millis() as u32 {
                    log::info!("{}: no pong or traffic in time; dropping", conn.core.peer);
                    bump(&self.ws.stats().timeouts, 1);
                    self.remove(slot, CloseCode::ABNORMAL, "timeout");
                    return;
                }
            } else if silent >= iv.as_millis() as u32 {
                let _ = self.ws.send_ping(&mut conn.core, b"");
                conn.core.set(flags::PING_OUTSTANDING);
                // The pong deadline counts from now, not from the last traffic.
                conn.core.last_rx_ms = now.wrapping_sub(iv.as_millis() as u32);
            }
        }
        self.ws.arm_liveness(&mut conn.core);
    }

    // ---- removal ---------------------------------------------------------------------------

    /// Drop a connection: cancel its timers, leave its topics, tell its handler (1006 with
    /// `reason` unless already told), free its slot.
    fn remove(&mut self, slot: usize, code: CloseCode, reason: &str) {
        if !self.conns.contains(slot) {
            return;
        }
        self.report_close(slot, CloseFrame::new(code, reason));
        let mut conn = self.conns.remove(slot);
        if let Some(k) = conn.core.timer.take() {
            self.ws.timers.cancel(k);
        }
        if let Some(mut extra) = conn.core.extra.take() {
            for (_, k) in extra.user_timers.drain(..) {
                self.ws.timers.cancel(k);
            }
            for name in self.ws.topics.unsubscribe_all(&mut extra.topics) {
                self.ws.topic_left(name);
            }
        }
        if conn.handler.is_some() {
            drop_one(&self.ws.stats().connections_open);
        }
        let _ = self.poll.registry().deregister(&mut conn.core.stream);
        self.ws.shared.conn_count.fetch_sub(1, Ordering::Relaxed);
        self.run_actions();
    }
}
