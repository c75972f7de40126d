//! The client engine of one process (a "shard" of the run): T poll threads and a control thread
//! that moves them through the phases
//!
//! ```text
//! CONNECT ──(all done: Ready)──▶ wait go ──▶ RUN (duration) ──▶ DRAIN (≤ grace) ──(Held)──▶ wait go ──▶ CLOSE
//! ```
//!
//! and reports to the coordinator through [`ShardEvent`]s. The two waits let the coordinator line
//! up all processes (and sample the server) at the same moments.

pub mod conn;
pub mod plan;
pub mod session;
pub mod shared;
pub mod tls;
pub mod worker;

use std::sync::atomic::{AtomicU8, Ordering::Relaxed, Ordering::Release};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::Options;
use crate::report::{Report, Tally};
use plan::Plan;
pub use shared::{Progress, CLOSE, CONNECT, DRAIN, RUN};
use shared::{Shared, ThreadState};
use worker::Worker;

/// How often shards report progress.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What shards tell the coordinator. The `usize` is the shard's index.
#[derive(Debug)]
pub enum ShardEvent {
    /// Periodic progress.
    Progress(usize, Progress),
    /// Connect phase over; waiting for go.
    Ready(usize),
    /// Window and grace over; waiting for go to close.
    Held(usize),
    /// The shard's report.
    Result(usize, Box<Report>),
    /// The shard failed without a report.
    Failed(usize, String),
}

/// A shard running in this process.
pub struct LocalShard {
    go: Sender<bool>,
    control: Option<JoinHandle<()>>,
}

impl LocalShard {
    /// Let the shard go on to its next stage.
    pub fn go(&self) {
        let _ = self.go.send(true);
    }

    /// A sender for go (true) / abort (false), for a thread that relays them.
    pub fn go_sender(&self) -> Sender<bool> {
        self.go.clone()
    }

    /// Cut the run short: close everything and report.
    pub fn abort(&self) {
        let _ = self.go.send(false);
    }

    /// Wait for the control thread to end.
    pub fn join(mut self) {
        if let Some(h) = self.control.take() {
            let _ = h.join();
        }
    }
}

/// Start shard `(index, count)` of the run in this process; events go to `tx` tagged `tag`.
pub fn start(
    opts: Arc<Options>,
    index: usize,
    count: usize,
    tag: usize,
    tx: Sender<ShardEvent>,
) -> Result<LocalShard, String> {
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let threads = opts.threads;
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(CONNECT),
        threads: (0..threads).map(|_| ThreadState::default()).collect(),
        tls: tls::client_config(&opts)?,
    });
    let epoch = Instant::now();
    let lanes = (count * threads) as f64;
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let plan = Plan {
            start: (index + count * t) as u64,
            stride: (count * threads) as u64,
            total: opts.connections as u64,
            rate: opts.connect_rate / lanes,
            ramp: opts.ramp_up.as_secs_f64(),
            max_pending: ((opts.max_pending as f64 / lanes).ceil() as usize).max(1),
        };
        let w = Worker::new(opts.clone(), shared.clone(), t, plan, epoch)
            .map_err(|e| format!("poll: {e}"))?;
        let h = std::thread::Builder::new()
            .name(format!("loadtest-{t}"))
            .spawn(move || w.run())
            .map_err(|e| format!("spawn: {e}"))?;
        handles.push(h);
    }
    let control = std::thread::Builder::new()
        .name("loadtest-control".into())
        .spawn(move || control(opts, shared, handles, epoch, tag, tx, go_rx))
        .map_err(|e| format!("spawn: {e}"))?;
    Ok(LocalShard {
        go: go_tx,
        control: Some(control),
    })
}

/// Sleep up to `d`, sending progress every [`PROGRESS_EVERY`]; stop early when `until` holds.
fn tick_until(
    shared: &Shared,
    tag: usize,
    tx: &Sender<ShardEvent>,
    d: Duration,
    until: impl Fn(&Shared) -> bool,
) {
    let end = Instant::now() + d;
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if until(shared) || now >= end {
            return;
        }
        if now >= next {
            let _ = tx.send(ShardEvent::Progress(tag, shared.snapshot()));
            next = now + PROGRESS_EVERY;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Wait for the coordinator's go (true) or abort (false / coordinator gone), with progress.
fn wait_go(shared: &Shared, tag: usize, tx: &Sender<ShardEvent>, go: &Receiver<bool>) -> bool {
    loop {
        match go.recv_timeout(PROGRESS_EVERY) {
            Ok(v) => return v,
            Err(RecvTimeoutError::Timeout) => {
                let _ = tx.send(ShardEvent::Progress(tag, shared.snapshot()));
            }
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

/// Every thread's state satisfies `f` (a condition for [`tick_until`]).
fn all(f: fn(&ThreadState) -> bool) -> impl Fn(&Shared) -> bool {
    move |s: &Shared| s.threads.iter().all(f)
}

/// The shard's control thread: the phases, then the threads' tallies merged into its report.
fn control(
    opts: Arc<Options>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<Tally>>,
    epoch: Instant,
    tag: usize,
    tx: Sender<ShardEvent>,
    go: Receiver<bool>,
) {
    let connect_s = connect_phase(&opts, &shared, epoch, tag, &tx);
    let _ = tx.send(ShardEvent::Ready(tag));
    let (window, drain) = if wait_go(&shared, tag, &tx, &go) {
        run_phase(&opts, &shared, tag, &tx, &go)
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    shared.phase.store(CLOSE, Release);

    let mut report = Report::new(&opts);
    report.connect_s = connect_s;
    report.window_s = window.as_secs_f64();
    report.drain_s = drain.as_secs_f64();
    for h in handles {
        match h.join() {
            Ok(tally) => report.merge(&Report {
                tally,
                ..Report::default()
            }),
            Err(_) => {
                let _ = tx.send(ShardEvent::Failed(tag, "a poll thread panicked".into()));
                return;
            }
        }
    }
    report.derive();
    let _ = tx.send(ShardEvent::Result(tag, Box::new(report)));
}

/// Wait until every thread has opened its connections (bounded); the connect phase's seconds.
fn connect_phase(
    opts: &Options,
    shared: &Shared,
    epoch: Instant,
    tag: usize,
    tx: &Sender<ShardEvent>,
) -> f64 {
    // Bounded: connections / rate + the connect timeout + slack, whatever the server does.
    let connect_bound = Duration::from_secs_f64(if opts.connect_rate > 0.0 {
        opts.connections as f64 / opts.connect_rate
    } else {
        0.0
    }) + opts.ramp_up
        + opts.connect_timeout
        + Duration::from_secs(10);
    tick_until(
        shared,
        tag,
        tx,
        connect_bound,
        all(|t| t.connect_done.load(Relaxed) || t.finished.load(Relaxed)),
    );
    let connect_ns = shared
        .threads
        .iter()
        .map(|t| t.last_connect_ns.load(Relaxed))
        .max()
        .unwrap_or(0);
    if connect_ns > 0 {
        connect_ns as f64 / 1e9
    } else {
        epoch.elapsed().as_secs_f64()
    }
}

/// The window, then the drain (up to the grace), then wait for go to close: the window's and
/// the drain's lengths.
fn run_phase(
    opts: &Options,
    shared: &Shared,
    tag: usize,
    tx: &Sender<ShardEvent>,
    go: &Receiver<bool>,
) -> (Duration, Duration) {
    let start = Instant::now();
    shared.phase.store(RUN, Release);
    tick_until(shared, tag, tx, opts.duration, |_| false);
    shared.phase.store(DRAIN, Release);
    let window = start.elapsed();
    let drain_start = Instant::now();
    tick_until(
        shared,
        tag,
        tx,
        opts.grace,
        all(|t| t.drained.load(Relaxed) || t.finished.load(Relaxed)),
    );
    let drain = drain_start.elapsed();
    let _ = tx.send(ShardEvent::Held(tag));
    let _ = wait_go(shared, tag, tx, go);
    (window, drain)
}
