//! One worker thread: a `mio::Poll`, a slab of connections, a timer wheel, a command channel.
//!
//! A loop turn: wait for events (sleeping until the next timer with work), read each readable
//! socket until it is drained and dispatch complete messages to handlers (writing that
//! connection's own replies right after), run due timers, apply commands from other threads,
//! then flush every other connection that got output with one vectored write each, and hand
//! cross-worker publishes to the other workers with one wake-up each.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::protocol::close::{CloseCode, CloseFrame};
use crate::runtime::accept::MAX_LISTENERS;
use crate::runtime::buffers::{FramePool, ReadBlock};
use crate::runtime::connection::{flags, ConnCore};
use crate::runtime::context::Context;
use crate::runtime::handle::{ConnId, ServerHandle};
use crate::runtime::handler::{Factory, Handler};
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::stats::{bump, close_counter, drop_one};
use crate::runtime::users;
use crate::runtime::Delivery;
use crate::runtime::{Command, Shared, ShutdownPlan};

mod chunks;
mod fan_out;
mod handoff;
mod handshake;
mod inbound;
mod listen;
mod outbound;
mod read_plan;
mod state;
mod timers;

pub(crate) use state::{Action, TimerEntry, WorkerState};

/// Token of the worker's waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Token of the worker's own listener `l` (reuse-port mode): `LISTENER - l`.
pub(crate) const LISTENER: usize = usize::MAX - 1;
/// Replies of at least this many bytes are written right after the read that caused them
/// (`Worker::flush_replies`).
const EARLY_FLUSH: usize = 8 << 10;
/// One connection: its I/O state and, once upgraded, its handler.
pub(crate) struct Conn<H> {
    pub core: ConnCore,
    pub handler: Option<H>,
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
    /// Our own listeners (reuse-port mode), by listener index; empty with an acceptor thread.
    listeners: Vec<Option<TcpListener>>,
    rx: Receiver<Command>,
    factory: Arc<F>,
    /// What factory calls see as `Request::server` (one handle, made once).
    server: ServerHandle,
    conns: Slab<Conn<F::Handler>>,
    state: WorkerState,
    /// The memory every read lands in; frames split off it are handed out, and it is reused
    /// once they are all dropped.
    block: ReadBlock,
    /// Buffers for frames that arrive over several reads, reused.
    frame_pool: FramePool,
    next_generation: u32,
    fired: Vec<TimerEntry>,
    scratch: Vec<u32>,
    /// Commands for other workers, sent once per loop turn.
    outbox: Vec<Vec<Command>>,
    shutdown_deadline: Option<Instant>,
    /// The shutdown under way: connections that finish their upgrade meanwhile are closed with
    /// its code right after opening.
    shutdown_plan: Option<ShutdownPlan>,
}

impl<F: Factory> Worker<F> {
    pub fn new(
        id: u16,
        poll: Poll,
        listeners: Vec<Option<TcpListener>>,
        rx: Receiver<Command>,
        factory: Arc<F>,
        shared: Arc<Shared>,
    ) -> io::Result<Self> {
        let mut listeners = listeners;
        for (i, l) in listeners.iter_mut().enumerate() {
            if let Some(l) = l.as_mut() {
                poll.registry()
                    .register(l, Token(LISTENER - i), Interest::READABLE)?;
            }
        }
        let now = Instant::now();
        let cfg = &shared.config;
        let workers = shared.remotes.len();
        let block = ReadBlock::new(cfg.read_buffer_size);
        Ok(Worker {
            poll,
            events: Events::with_capacity(1024),
            listeners,
            rx,
            factory,
            server: ServerHandle::from_shared(shared.clone()),
            conns: Slab::new(),
            state: WorkerState::new(id, shared, now),
            block,
            frame_pool: FramePool::default(),
            next_generation: 0,
            fired: Vec::new(),
            scratch: Vec::new(),
            outbox: (0..workers).map(|_| Vec::new()).collect(),
            shutdown_deadline: None,
            shutdown_plan: None,
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
                    log::error!("worker {}: poll failed: {e}", self.state.id);
                    break;
                }
            }
            // The deadline poll was asked to wake at (the clock is the last turn's start, so
            // this is the due timer's time); `tick_clock` then says how late we are.
            #[cfg(feature = "metrics")]
            let due = timeout.map(|t| self.state.now + t);
            self.tick_clock();
            #[cfg(feature = "metrics")]
            if let Some(late) = due.and_then(|d| self.state.now.checked_duration_since(d)) {
                self.state.histograms().lag.observe(late);
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => self.drain_commands(),
                    Token(t) if t > LISTENER - MAX_LISTENERS && t <= LISTENER => {
                        self.accept_all(LISTENER - t)
                    }
                    Token(slot) => {
                        if ev.is_writable() || ev.is_write_closed() {
                            self.flush(slot);
                        }
                        let closed = ev.is_read_closed() || ev.is_error();
                        if ev.is_readable() || closed {
                            self.on_readable(slot, closed);
                            self.flush_replies(slot);
                        }
                    }
                }
            }
            self.fire_timers();
            self.end_turn();
            #[cfg(feature = "metrics")]
            self.state
                .histograms()
                .turn
                .observe(self.state.now.elapsed());
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    break;
                }
                if self.state.now >= deadline {
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
        self.state.now = Instant::now();
        self.state.now_ms = self.state.ms_at(self.state.now);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        // The clock read at the end of the last turn: at most one turn's work stale, which only
        // makes a timer fire that much later than its tick, never early.
        let now = self.state.now;
        let timers = self.state.timers.timeout(now);
        match self.shutdown_deadline {
            Some(d) => {
                let d = d.saturating_duration_since(now);
                Some(timers.map_or(d, |t| t.min(d)))
            }
            None => timers,
        }
    }

    /// Write what a connection's own handler queued while its input was read (an echo, an
    /// answer) at once rather than at the end of the turn, when it is large: its views of the
    /// read block are released before the next connection's read, so a busy turn cycles
    /// through a few blocks instead of holding one per few connections. Still one write for
    /// all of it. Small replies (copied next to their headers, holding no view of the block)
    /// and output for other connections (publishes) wait for the end of the turn, where
    /// writing them after all reads costs fewer wake-ups of the peers.
    fn flush_replies(&mut self, slot: usize) {
        let queued = self
            .conns
            .get(slot)
            .is_some_and(|c| c.core.has(flags::DIRTY) && c.core.out.bytes() >= EARLY_FLUSH);
        if queued {
            self.flush(slot);
        }
    }

    /// Flush dirty connections and forward commands to other workers.
    fn end_turn(&mut self) {
        while !self.state.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.state.dirty);
            for &slot in &dirty {
                if let Some(c) = self.conns.get_mut(slot as usize) {
                    c.core.clear(flags::DIRTY);
                }
                self.flush(slot as usize);
            }
            // Callbacks run by flush (drain, close) may have queued more output.
            if self.state.dirty.is_empty() {
                self.state.dirty = dirty;
                self.state.dirty.clear();
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
            self.state.shared.remotes[i].send(cmd);
        }
    }

    // ---- commands --------------------------------------------------------------------------

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Accepted(stream, peer, l) => self.accept_socket(stream, peer, l),
            Command::Send(id, msg, how) => {
                if let Some(conn) = live(&mut self.conns, self.state.id, id) {
                    let _ = self.state.send_message(&mut conn.core, &msg, how);
                }
            }
            Command::Close(id, code, reason) => {
                if let Some(conn) = live(&mut self.conns, self.state.id, id) {
                    self.state.start_close(&mut conn.core, code, &reason);
                }
            }
            Command::Deliver(d) => self.deliver_local(&d),
            Command::Batch(cmds) => cmds.into_iter().for_each(|c| self.command(c)),
            Command::StopAccepting => self.close_listener(),
            Command::Decided(id) => {
                if live(&mut self.conns, self.state.id, id).is_some() {
                    self.decided(id.slot() as usize);
                }
            }
            Command::HandOff(req) => self.hand_off(*req),
            Command::Adopt(id, stream, read) => {
                if live(&mut self.conns, self.state.id, id).is_some() {
                    self.adopt(id.slot() as usize, stream, read);
                }
            }
            Command::HandOffDropped(id) => {
                if live(&mut self.conns, self.state.id, id).is_some() {
                    self.drop_hand_off(id.slot() as usize);
                }
            }
            Command::Shutdown(plan) => self.begin_shutdown(plan),
        }
    }

    fn begin_shutdown(&mut self, plan: ShutdownPlan) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::debug!(
            "worker {}: shutting down ({} connections)",
            self.state.id,
            self.conns.len()
        );
        self.shutdown_deadline = Some(self.state.now + plan.grace);
        // Connections whose TCP handshake completed are taken rather than reset: they finish
        // their upgrade (within the grace period) and are closed with the plan's code, which
        // tells a client to reconnect (to the process that replaces this one).
        self.shutdown_plan = Some(plan.clone());
        self.close_listener();
        self.end_hand_offs();
        let slots: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for slot in slots {
            let conn = &mut self.conns[slot];
            if conn.core.is_open() {
                self.state
                    .start_close(&mut conn.core, plan.code, &plan.reason);
            }
        }
    }

    // ---- pub/sub ---------------------------------------------------------------------------

    /// Queue `frame` for this worker's subscribers of `topic`, straight from the topic's list:
    /// the short path inline, the connections that need the long one (deflate, TLS, a full
    /// queue...) gathered and served after the loop, which holds the topic list borrowed.
    #[inline(never)]
    fn fan_out_local(&mut self, topic: &str, frame: &SharedFrame, skip: Option<ConnId>) {
        if users::is_disconnect(topic) {
            return self.disconnect_local(topic, frame);
        }
        let mut fan = self.state.fan_out(frame);
        let mut long = std::mem::take(&mut self.scratch);
        long.clear();
        let id = self.state.id;
        for slot in self.state.topics.subscribers(topic) {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if skip.is_some_and(|s| {
                s.slot() == slot && s.generation() == conn.core.generation && s.worker() == id
            }) {
                continue;
            }
            if !fan.plain_to(&mut conn.core, &mut self.state.dirty) {
                long.push(slot);
            }
        }
        for &slot in &long {
            if let Some(conn) = self.conns.get_mut(slot as usize) {
                self.state.fan_out_long(&mut conn.core, frame);
            }
        }
        self.state.fan_out_end(fan);
        self.scratch = long;
    }

    /// A user's disconnect (`ServerHandle::disconnect_user`): its connections here are closed.
    fn disconnect_local(&mut self, topic: &str, frame: &SharedFrame) {
        let close = users::decode_disconnect(frame.msg.as_bytes());
        let subs: Vec<u32> = self.state.topics.subscribers(topic).collect();
        for slot in subs {
            if let Some(conn) = self.conns.get_mut(slot as usize) {
                let label = self.state.label(&conn.core, slot as usize);
                log::info!(
                    "{label}: its user was disconnected; closing with {}",
                    close.code
                );
                self.state
                    .start_close(&mut conn.core, close.code, &close.reason);
            }
        }
    }

    /// A stream's publication: like any publish, but not to the connections that recovered it
    /// already (`WorkerState::stream_skips`).
    fn fan_out_stream(&mut self, topic: &Arc<str>, frame: &SharedFrame, offset: u64) {
        let skips = &mut self.state.stream_skips;
        // Deliveries come in offset order: a skip this one passes is done with.
        skips.retain(|s| s.topic != *topic || s.upto >= offset);
        if !skips.iter().any(|s| s.topic == *topic) {
            return self.fan_out_local(topic, frame, None);
        }
        let mut fan = self.state.fan_out(frame);
        let mut subs = std::mem::take(&mut self.scratch);
        subs.clear();
        subs.extend(self.state.topics.subscribers(topic));
        for &slot in &subs {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            let generation = conn.core.generation;
            let sent = self
                .state
                .stream_skips
                .iter()
                .any(|s| s.slot == slot && s.generation == generation && s.topic == *topic);
            if !sent {
                self.state.fan_out_to(&mut fan, &mut conn.core);
            }
        }
        self.state.fan_out_end(fan);
        self.scratch = subs;
    }

    fn broadcast_local(&mut self, frame: &SharedFrame, skip: Option<ConnId>) {
        let id = self.state.id;
        let mut fan = self.state.fan_out(frame);
        for (slot, conn) in self.conns.iter_mut() {
            if !conn.core.is_open() {
                continue;
            }
            if skip.is_some_and(|s| {
                s.worker() == id
                    && s.slot() as usize == slot
                    && s.generation() == conn.core.generation
            }) {
                continue;
            }
            self.state.fan_out_to(&mut fan, &mut conn.core);
        }
        self.state.fan_out_end(fan);
    }

    fn deliver_local(&mut self, d: &Delivery) {
        match d {
            Delivery::Publish { topic, frame, skip } => self.fan_out_local(topic, frame, *skip),
            Delivery::Broadcast { frame, skip } => self.broadcast_local(frame, *skip),
            Delivery::Stream {
                topic,
                frame,
                offset,
            } => self.fan_out_stream(topic, frame, *offset),
        }
    }

    /// Apply what handlers queued: local fan-out now, other workers at the end of the turn.
    fn run_actions(&mut self) {
        while !self.state.actions.is_empty() {
            let actions = std::mem::take(&mut self.state.actions);
            for a in actions {
                match a {
                    Action::Deliver(d) => {
                        self.deliver_local(&d);
                        self.queue_for_others(|| Command::Deliver(d.clone()));
                    }
                    Action::TopicEvent(name, active) => {
                        // The two who follow a topic's first and last subscriber: the bridge
                        // to other nodes, then the application.
                        self.state.shared.bridge_topic_changed(&name);
                        let f = self.factory.clone();
                        let _ = catch_unwind(AssertUnwindSafe(|| f.on_topic(&name, active)));
                    }
                }
            }
        }
    }

    fn queue_for_others(&mut self, make: impl Fn() -> Command) {
        let me = self.state.id as usize;
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
            state: &mut self.state,
        };
        let r = catch_unwind(AssertUnwindSafe(|| f(handler, &mut ctx)));
        if r.is_err() {
            log::error!(
                "{}: handler panicked; closing the connection with 1011",
                self.state.label(&conn.core, slot)
            );
            self.state
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
        bump(close_counter(self.state.stats(), frame.code.0), 1);
        log::debug!(
            "{}: closed with {} {:?}",
            self.state.label(&conn.core, slot),
            frame.code,
            frame.reason
        );
        self.call(slot, |h, ctx| h.on_close(ctx, frame));
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
        if conn.core.has(flags::IP_COUNTED) {
            if let Some(l) = &self.state.shared.ip_limits {
                let client = conn.core.extra.as_ref().and_then(|x| x.client_addr);
                l.release(l.key(client.unwrap_or(conn.core.peer).ip()));
            }
        }
        bump(
            &self.state.stats().bytes_discarded,
            conn.core.out.bytes() as u64,
        );
        if let Some(k) = conn.core.timer.take() {
            self.state.timers.cancel(k);
        }
        if !self.state.stream_skips.is_empty() {
            self.state.stream_skips.retain(|s| s.slot != slot as u32);
        }
        if let Some(mut extra) = conn.core.extra.take() {
            if let Some(p) = extra.parked.take() {
                p.abandon();
            }
            for (_, k) in extra.user_timers.drain(..) {
                self.state.timers.cancel(k);
            }
            for name in self.state.topics.unsubscribe_all(&mut extra.topics) {
                self.state.topic_left(name);
            }
        }
        if conn.handler.is_some() {
            drop_one(&self.state.stats().connections_open);
        }
        let _ = self.poll.registry().deregister(&mut conn.core.stream);
        self.state.shared.conn_count.fetch_sub(1, Ordering::Relaxed);
        self.run_actions();
    }
}
