//! One poll thread: a `mio::Poll` owning its share of the connections. It paces new connections,
//! drives the scenario on each, and counts everything in thread-local stats (merged at the end).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token};
use volley::protocol::deflate::{parse_response, Compressor, CompressorConfig, Inflater};
use volley::protocol::frame::{FrameHeader, OpCode};
use volley::protocol::handshake;
use volley::protocol::reader::{Event, ReaderConfig, Role};
use volley::Message;

use super::conn::{push_frame, Conn, State};
use super::{Shared, CLOSE, CONNECT, DRAIN, RUN};
use crate::cli::{Options, Scenario};
use crate::hist::Hist;
use crate::payload::{Pattern, Rng};
use crate::report::{count_error, Counters, ErrorMap};

/// The permessage-deflate offer `--deflate` sends: plain, allowing the server to limit our window.
const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";
/// Read scratch buffer per thread.
const SCRATCH: usize = 64 * 1024;
/// Largest handshake response accepted.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// How long the close handshake may take at the end before it counts as an error.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a thread found; merged by the shard's control thread.
#[derive(Debug, Default)]
pub struct ThreadResult {
    /// Counts.
    pub counters: Counters,
    /// Errors by cause.
    pub errors: ErrorMap,
    /// Handshake latency.
    pub handshake: Hist,
    /// Echo round trip.
    pub rtt: Hist,
    /// Broadcast fan-out latency.
    pub fanout: Hist,
}

/// Which connections a thread opens: global indices `start, start + stride, …` below `total`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// First global index.
    pub start: u64,
    /// Distance between indices (processes × threads).
    pub stride: u64,
    /// Total connections of the run.
    pub total: u64,
    /// New connections per second for this thread (0: unpaced).
    pub rate: f64,
    /// Most handshakes in progress on this thread.
    pub max_pending: usize,
    /// Seconds over which the rate ramps up linearly from 0 to `rate`.
    pub ramp: f64,
}

impl Plan {
    /// How many connections should have been opened `t` seconds after the start: the integral
    /// of the rate (rising linearly over `ramp`, then flat), plus one so the first opens at 0.
    pub fn due(&self, t: f64) -> u64 {
        if self.rate <= 0.0 {
            return u64::MAX;
        }
        let n = if t < self.ramp {
            self.rate * t * t / (2.0 * self.ramp)
        } else {
            self.rate * (t - self.ramp / 2.0)
        };
        n as u64 + 1
    }

    /// When connection number `k` (0-based) is due, in seconds after the start.
    pub fn time_of(&self, k: u64) -> f64 {
        if self.rate <= 0.0 || k == 0 {
            return 0.0;
        }
        let k = k as f64;
        let ramp_count = self.rate * self.ramp / 2.0;
        if k < ramp_count {
            (2.0 * self.ramp * k / self.rate).sqrt()
        } else {
            k / self.rate + self.ramp / 2.0
        }
    }

    /// How many connections this thread opens.
    pub fn count(&self) -> u64 {
        if self.start >= self.total {
            0
        } else {
            (self.total - self.start).div_ceil(self.stride)
        }
    }
}

/// Everything but the connections, so a connection and its context borrow separately.
struct Ctx {
    opts: Arc<Options>,
    shared: Arc<Shared>,
    thread: usize,
    epoch: Instant,
    rng: Rng,
    scratch: Vec<u8>,
    pattern: Pattern,
    reader_cfg: ReaderConfig,
    /// Deflate: the message before compression, and after.
    plain: Vec<u8>,
    packed: Vec<u8>,
    /// Deflate: compressors by window bits 9..=15 (no context takeover).
    compressors: [Option<Box<Compressor>>; 7],
    /// Deflate: turns compressed messages into finished ones (and holds the decompressor shared
    /// by connections whose server resets its context).
    inflater: Inflater,
    extra_headers: Vec<(String, String)>,
    phase: u8,
    /// Echo requests in flight on this thread.
    outstanding: u64,
    /// Connections connecting or handshaking.
    pending: usize,
    /// Connections alive (any state).
    alive: usize,
    res: ThreadResult,
}

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

/// Why a connection ends: the cause goes to the error map (`None`: a normal end).
type Ending = Option<String>;

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
                res: ThreadResult::default(),
            },
        })
    }

    /// Run until the close phase is over.
    pub fn run(mut self) -> ThreadResult {
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
            let mut conn = match Conn::connect(opts.url.addr, source) {
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

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Ctx {
    /// Advance `c` on readiness. `Err(ending)` when the connection is over.
    fn drive(&mut self, c: &mut Conn, readable: bool, writable: bool) -> Result<(), Ending> {
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
            let host = self.opts.url.host.as_str();
            handshake::write_client_request(
                &mut c.wbuf,
                host,
                &self.opts.url.path,
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
    fn read(&mut self, c: &mut Conn) -> Result<(), Ending> {
        loop {
            match c.sock.read(&mut self.scratch) {
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
                    if n < self.scratch.len() {
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
    fn consume(&mut self, c: &mut Conn) -> Result<(), Ending> {
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
    fn queue_data(&mut self, c: &mut Conn, fill: impl FnOnce(&Pattern, &mut Vec<u8>)) {
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
    fn inflate(&mut self, c: &mut Conn, text: bool, payload: &[u8]) -> Result<Message, Ending> {
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

    fn send_echo(&mut self, c: &mut Conn, now: Instant) {
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
                if c.publisher == Some(p) {
                    c.own_in_flight = c.own_in_flight.saturating_sub(1);
                }
            }
            Scenario::Connect | Scenario::Idle => {}
        }
        Ok(())
    }
}

fn phase_name(s: State) -> &'static str {
    match s {
        State::Connecting => "connect",
        State::Handshaking => "handshake",
        State::Open => "io",
        State::Closing => "close",
    }
}

fn scenario_word(o: &Options) -> &'static str {
    o.scenario.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_partition_the_connections() {
        // 2 processes × 3 threads share 100 connections without overlap or gap.
        let (procs, threads, total) = (2u64, 3u64, 100u64);
        let mut seen = vec![0u8; total as usize];
        for p in 0..procs {
            for t in 0..threads {
                let plan = Plan {
                    start: p + procs * t,
                    stride: procs * threads,
                    total,
                    rate: 0.0,
                    max_pending: 1,
                    ramp: 0.0,
                };
                for k in 0..plan.count() {
                    seen[(plan.start + k * plan.stride) as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        let plan = Plan {
            start: 7,
            stride: 8,
            total: 5,
            rate: 0.0,
            max_pending: 1,
            ramp: 0.0,
        };
        assert_eq!(plan.count(), 0);
        assert_eq!(plan.due(100.0), u64::MAX);
    }

    #[test]
    fn pacing_with_and_without_ramp() {
        let flat = Plan {
            start: 0,
            stride: 1,
            total: 1000,
            rate: 100.0,
            max_pending: 9,
            ramp: 0.0,
        };
        assert_eq!(flat.due(0.0), 1);
        assert_eq!(flat.due(1.0), 101);
        assert!((flat.time_of(50) - 0.5).abs() < 1e-9);
        // Ramp over 2 s: 100 connections in the ramp (area of the triangle), then 100/s.
        let ramp = Plan { ramp: 2.0, ..flat };
        assert_eq!(ramp.due(0.0), 1);
        assert_eq!(ramp.due(1.0), 26);
        assert_eq!(ramp.due(2.0), 101);
        assert_eq!(ramp.due(3.0), 201);
        for k in [1u64, 10, 99, 100, 150, 400] {
            let t = ramp.time_of(k);
            assert_eq!(ramp.due(t + 1e-9), k + 1, "k {k} at t {t}");
        }
    }

    #[test]
    fn io_causes_are_readable() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_cause("connect", &e), "connect: connection refused");
        assert!(io_cause("connect", &io::Error::from_raw_os_error(24)).contains("ulimit"));
    }
}
