//! One poll thread: a `mio::Poll` owning its share of the connections, and its loop (readiness,
//! deadlines, phases, opening connections on the plan's schedule, publishing). Each
//! connection's protocol is in `session.rs`; everything is counted in a thread-local
//! [`Tally`], merged by the shard's control thread at the end.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token};
use volley::protocol::deflate::Inflater;
use volley::protocol::frame::OpCode;
use volley::protocol::reader::{ReaderConfig, Role};

use super::conn::{Conn, State};
use super::plan::Plan;
use super::session::{io_cause, unix_ns, Ctx, Ending, DEFLATE_OFFER, SCRATCH};
use super::shared::{Shared, CLOSE, CONNECT, DRAIN, RUN};
use crate::cli::{Options, Scenario};
use crate::payload::{Pattern, Rng};
use crate::report::{count_error, Tally};

/// How long the close handshake may take at the end before it counts as an error.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// A poll thread.
pub struct Worker {
    poll: Poll,
    events: Events,
    ready: Vec<(usize, bool, bool)>,
    conns: Vec<Option<Conn>>,
    deadlines: VecDeque<(Instant, usize)>,
    publishers: Vec<usize>,
    plan: Plan,
    opened: u64,
    close_deadline: Option<Instant>,
    run_start: Option<Instant>,
    ctx: Ctx,
}

impl Worker {
    /// A worker for `thread` opening the connections of `plan`.
    pub fn new(
        opts: Arc<Options>,
        shared: Arc<Shared>,
        thread: usize,
        plan: Plan,
        epoch: Instant,
    ) -> io::Result<Self> {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ ((thread as u64 + 1) << 48)
            ^ plan.start;
        let mut extra_headers = Vec::new();
        if opts.deflate {
            extra_headers.push((
                "Sec-WebSocket-Extensions".to_string(),
                DEFLATE_OFFER.to_string(),
            ));
        }
        let max = (opts.size + 1024).max(64 << 20);
        Ok(Worker {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            conns: Vec::with_capacity(plan.count() as usize),
            deadlines: VecDeque::new(),
            publishers: Vec::new(),
            plan,
            opened: 0,
            close_deadline: None,
            run_start: None,
            ctx: Ctx {
                pattern: Pattern::new(opts.size),
                opts,
                shared,
                thread,
                epoch,
                rng: Rng::new(seed),
                scratch: vec![0; SCRATCH],
                reader_cfg: ReaderConfig {
                    role: Role::Client,
                    max_frame_size: max,
                    max_message_size: max,
                },
                extra_headers,
                plain: Vec::new(),
                packed: Vec::new(),
                compressors: Default::default(),
                inflater: Inflater::new(),
                phase: CONNECT,
                outstanding: 0,
                pending: 0,
                alive: 0,
                res: Tally::default(),
            },
        })
    }

    /// Run until the close phase is over.
    pub fn run(mut self) -> Tally {
        loop {
            let now = Instant::now();
            let phase = self.ctx.shared.phase.load(Acquire);
            if phase != self.ctx.phase {
                self.enter(phase, now);
            }
            if self.ctx.phase == CONNECT {
                self.open_more(now);
            }
            if self.ctx.phase == RUN && !self.publishers.is_empty() {
                self.publish(now);
            }
            self.expire(now);
            self.report_progress(now);
            if self.ctx.phase == CLOSE {
                if self.ctx.alive == 0 {
                    break;
                }
                if self.close_deadline.is_some_and(|d| now >= d) {
                    self.abandon_all("close: no close reply within 3s");
                    break;
                }
            }
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                count_error(
                    &mut self.ctx.res.errors,
                    &format!("client: poll failed: {e}"),
                );
                self.abandon_all("client: poll failed");
                break;
            }
            self.ready.clear();
            for ev in self.events.iter() {
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                self.ready
                    .push((ev.token().0, readable, ev.is_writable() || ev.is_error()));
            }
            for i in 0..self.ready.len() {
                let (t, r, w) = self.ready[i];
                self.handle(t, r, w);
            }
        }
        self.report_progress(Instant::now());
        self.ctx.shared.threads[self.ctx.thread]
            .finished
            .store(true, Relaxed);
        self.ctx.res
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let mut t = Duration::from_millis(10);
        if self.ctx.phase == CONNECT && self.opened < self.plan.count() && self.plan.rate > 0.0 {
            let next = Duration::from_secs_f64(self.plan.time_of(self.opened));
            let due = self.ctx.epoch + next;
            t = t
                .min(due.saturating_duration_since(now))
                .max(Duration::from_micros(200));
        }
        if self.ctx.phase == RUN && !self.publishers.is_empty() {
            t = t.min(Duration::from_millis(1));
        }
        t
    }

    fn enter(&mut self, phase: u8, now: Instant) {
        self.ctx.phase = phase;
        match phase {
            RUN => {
                self.run_start = Some(now);
                if self.ctx.opts.scenario == Scenario::Echo {
                    let w = self.ctx.opts.in_flight;
                    for t in 0..self.conns.len() {
                        let Some(c) = self.conns[t].as_mut() else {
                            continue;
                        };
                        if c.state != State::Open {
                            continue;
                        }
                        for _ in 0..w {
                            self.ctx.send_echo(c, now);
                        }
                        if let Err(e) = c.flush() {
                            let cause = io_cause("echo", &e);
                            self.end(t, Some(cause));
                        }
                    }
                }
            }
            CLOSE => {
                self.close_deadline = Some(now + CLOSE_TIMEOUT);
                for t in 0..self.conns.len() {
                    let Some(c) = self.conns[t].as_mut() else {
                        continue;
                    };
                    match c.state {
                        State::Open => {
                            if !c.in_flight.is_empty() {
                                let n = c.in_flight.len() as u64;
                                self.ctx.res.counters.unanswered += n;
                                self.ctx.outstanding -= n;
                                for _ in 0..n {
                                    count_error(
                                        &mut self.ctx.res.errors,
                                        "echo: no reply within the grace period",
                                    );
                                }
                                c.in_flight.clear();
                            }
                            c.push_control(
                                OpCode::Close,
                                &1000u16.to_be_bytes(),
                                &mut self.ctx.rng,
                            );
                            c.state = State::Closing;
                            if let Err(e) = c.flush() {
                                let cause = io_cause("close", &e);
                                self.end(t, Some(cause));
                            }
                        }
                        State::Closing => {}
                        State::Connecting | State::Handshaking => {
                            self.end(t, Some("connect: aborted at the end of the run".into()));
                        }
                    }
                }
            }
            _ => {}
        }
        // Connections not yet opened when the run is cut short are never opened.
        if phase >= DRAIN {
            self.opened = self.plan.count();
        }
    }

    /// Open connections up to the pacing rate and the pending cap.
    fn open_more(&mut self, now: Instant) {
        let total = self.plan.count();
        let due = self.plan.due((now - self.ctx.epoch).as_secs_f64());
        while self.opened < total && self.opened < due && self.ctx.pending < self.plan.max_pending {
            let index = self.plan.start + self.opened * self.plan.stride;
            self.opened += 1;
            self.ctx.res.counters.attempted += 1;
            let opts = &self.ctx.opts;
            let source = (!opts.sources.is_empty())
                .then(|| opts.sources[index as usize % opts.sources.len()]);
            let target = opts.target_of(index);
            let url = opts.target_url(target);
            let connected = Conn::connect(url.addr, source).and_then(|mut c| {
                if let Some(config) = &self.ctx.shared.tls {
                    c.tls = Some(super::tls::connect(config, url.server_name())?);
                }
                c.target = target as u8;
                Ok(c)
            });
            let mut conn = match connected {
                Ok(c) => c,
                Err(e) => {
                    self.ctx.res.counters.connect_failed += 1;
                    count_error(&mut self.ctx.res.errors, &io_cause("connect", &e));
                    continue;
                }
            };
            let token = self.conns.len();
            if let Err(e) = self.poll.registry().register(
                &mut conn.sock,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                self.ctx.res.counters.connect_failed += 1;
                count_error(&mut self.ctx.res.errors, &io_cause("connect: register", &e));
                continue;
            }
            if opts.scenario == Scenario::Broadcast && index < opts.publishers as u64 {
                conn.publisher = Some(index as u32);
            }
            self.deadlines
                .push_back((conn.started + opts.connect_timeout, token));
            self.conns.push(Some(conn));
            self.ctx.pending += 1;
            self.ctx.alive += 1;
        }
        if self.opened >= total && self.ctx.pending == 0 {
            let st = &self.ctx.shared.threads[self.ctx.thread];
            if !st.connect_done.load(Relaxed) {
                st.last_connect_ns
                    .store((now - self.ctx.epoch).as_nanos() as u64, Relaxed);
                st.connect_done.store(true, Relaxed);
            }
        }
    }

    /// Connect/handshake deadlines, oldest first (they were pushed in start order).
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, t)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            let state = self.conns[t].as_ref().map(|c| c.state);
            match state {
                Some(State::Connecting) => self.end(
                    t,
                    Some(format!(
                        "connect: timeout ({:?})",
                        self.ctx.opts.connect_timeout
                    )),
                ),
                Some(State::Handshaking) => self.end(
                    t,
                    Some(format!(
                        "handshake: timeout ({:?})",
                        self.ctx.opts.connect_timeout
                    )),
                ),
                _ => {}
            }
        }
    }

    /// Broadcast: publishers send what the rate makes due, within their in-flight window.
    fn publish(&mut self, now: Instant) {
        let Some(start) = self.run_start else { return };
        let opts = &self.ctx.opts;
        let per_pub = opts.rate / opts.publishers as f64;
        let elapsed = (now - start).as_secs_f64();
        let publishers = opts.publishers as f64;
        let window = opts.in_flight as u64;
        let sent_ns = unix_ns();
        for i in 0..self.publishers.len() {
            let t = self.publishers[i];
            let Some(c) = self.conns[t].as_mut() else {
                continue;
            };
            if c.state != State::Open {
                continue;
            }
            // Publisher p sends at (k + p/P) / rate_per_publisher: the publishers' schedules are
            // staggered evenly instead of all firing in the same instant.
            let due = if per_pub > 0.0 {
                let stagger = c.publisher.unwrap_or(0) as f64 / publishers;
                (elapsed * per_pub + 1.0 - stagger) as u64
            } else {
                u64::MAX
            };
            let mut n = 0;
            while c.pub_sent < due && c.own_in_flight < window {
                let (p, seq) = (c.publisher.unwrap_or(0), c.pub_sent);
                self.ctx
                    .queue_data(c, |pattern, o| pattern.write_broadcast(p, seq, sent_ns, o));
                c.pub_sent += 1;
                c.own_in_flight += 1;
                n += 1;
            }
            if n > 0 {
                let ctr = &mut self.ctx.res.counters;
                ctr.sent += n;
                ctr.sent_bytes += n * self.ctx.opts.size as u64;
                ctr.published += n;
                ctr.window_published += n;
                if let Err(e) = c.flush() {
                    let cause = io_cause("broadcast", &e);
                    self.end(t, Some(cause));
                }
            }
        }
    }

    fn report_progress(&mut self, _now: Instant) {
        let st = &self.ctx.shared.threads[self.ctx.thread];
        let c = &self.ctx.res.counters;
        st.attempted.store(c.attempted, Relaxed);
        st.established.store(c.established, Relaxed);
        st.failed.store(c.connect_failed, Relaxed);
        st.dropped.store(c.dropped, Relaxed);
        st.sent.store(c.sent, Relaxed);
        st.received.store(c.received, Relaxed);
        st.errors.store(self.ctx.res.errors.values().sum(), Relaxed);
        let drained = match self.ctx.opts.scenario {
            Scenario::Echo => self.ctx.outstanding == 0,
            // Deliveries to other processes' subscribers cannot be seen here: wait the grace.
            Scenario::Broadcast => false,
            Scenario::Connect | Scenario::Idle => true,
        };
        st.drained.store(drained, Relaxed);
    }

    /// Handle readiness of connection `t`.
    fn handle(&mut self, t: usize, readable: bool, writable: bool) {
        let Some(c) = self.conns.get_mut(t).and_then(Option::as_mut) else {
            return;
        };
        let result = self.ctx.drive(c, readable, writable);
        if let Err(ending) = result {
            self.end(t, ending);
        } else if let Some(c) = self.conns[t].as_mut() {
            if c.publisher.is_some() && c.state == State::Open && !c.listed {
                c.listed = true;
                self.publishers.push(t);
            }
        }
    }

    /// Remove connection `t`, counting `cause` if it is an error.
    fn end(&mut self, t: usize, cause: Ending) {
        let Some(mut c) = self.conns.get_mut(t).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        self.ctx.alive -= 1;
        let ctr = &mut self.ctx.res.counters;
        match c.state {
            State::Connecting | State::Handshaking => {
                self.ctx.pending -= 1;
                ctr.connect_failed += 1;
            }
            State::Open => {
                ctr.dropped += 1;
                let n = c.in_flight.len() as u64;
                if n > 0 {
                    ctr.unanswered += n;
                    self.ctx.outstanding -= n;
                }
            }
            State::Closing => {}
        }
        if let Some(cause) = cause {
            count_error(&mut self.ctx.res.errors, &cause);
        }
    }

    fn abandon_all(&mut self, cause: &str) {
        for t in 0..self.conns.len() {
            if self.conns[t].is_some() {
                self.end(t, Some(cause.to_string()));
            }
        }
    }
}
