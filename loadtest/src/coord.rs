//! The coordinator: runs the shards (in this process, or `--processes P` re-executions of this
//! binary), lines them up at the phase boundaries, samples the server there, prints progress, and
//! merges the shards' reports.
//!
//! Child protocol, one line each way per message. Child → parent on stdout:
//! `PROGRESS <json>`, `READY`, `HELD`, `RESULT <json>`, `FAILED <text>`.
//! Parent → child on stdin: `GO` (next stage), `ABORT`; end of input aborts too.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{child_args, Options, Scenario};
use crate::engine::{self, worker::CLOSE_TIMEOUT, LocalShard, Progress, ShardEvent};
use crate::procstat;
use crate::report::{Report, ServerStats};

/// Absolute bound on a whole run, whatever the flags say.
pub const HARD_CAP: Duration = Duration::from_secs(15 * 60);

enum Shard {
    Local(LocalShard),
    Child {
        child: Child,
        stdin: Option<ChildStdin>,
    },
}

impl Shard {
    fn go(&mut self) {
        match self {
            Shard::Local(s) => s.go(),
            Shard::Child { stdin, .. } => {
                if let Some(w) = stdin.as_mut() {
                    let _ = w.write_all(b"GO\n").and_then(|_| w.flush());
                }
            }
        }
    }

    fn abort(&mut self) {
        match self {
            Shard::Local(s) => s.abort(),
            Shard::Child { stdin, .. } => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.write_all(b"ABORT\n");
                }
            }
        }
    }

    fn finish(self, kill: bool) {
        match self {
            Shard::Local(s) => s.join(),
            Shard::Child { mut child, stdin } => {
                drop(stdin);
                if kill {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Connecting,
    Ready,
    Held,
    Done,
}

/// Check the open-file limit against the connections each process will hold.
pub fn check_limits(opts: &Options, limit: Option<u64>) -> Result<(), String> {
    let per_process = opts.connections.div_ceil(opts.processes) as u64;
    if let Some(limit) = limit {
        // A few descriptors for stdio, epoll, pipes.
        if per_process + 32 > limit {
            let need = (opts.connections as u64).div_ceil(limit.saturating_sub(32).max(1));
            return Err(format!(
                "{per_process} connections per process exceed the open-file limit of {limit}: \
                 use --processes {need} (or more), or raise `ulimit -n`"
            ));
        }
    }
    Ok(())
}

/// Run the scenario as the top-level process. `argv` are this process's arguments (after the
/// program name), passed on to children.
pub fn run(opts: Arc<Options>, argv: &[String]) -> Result<Report, String> {
    check_limits(&opts, procstat::open_file_limit())?;
    let started = Instant::now();
    let mut server = opts.server_pid.map(|pid| ServerStats {
        pid,
        ..ServerStats::default()
    });
    if let Some(s) = server.as_mut() {
        s.before = Some(procstat::sample(s.pid)?);
    }
    let (tx, rx) = channel();
    let mut shards = start_shards(&opts, argv, tx)?;
    let mut lineup = Lineup::new(opts.processes);
    let timed_out = lineup.drive(&opts, &mut shards, &rx, &mut server, started);
    for s in shards {
        s.finish(timed_out);
    }
    merge(&opts, lineup, server)
}

/// Start the shards: one in this process, or one child process each. `tx` goes to them.
fn start_shards(
    opts: &Arc<Options>,
    argv: &[String],
    tx: Sender<ShardEvent>,
) -> Result<Vec<Shard>, String> {
    let n = opts.processes;
    let mut shards = Vec::with_capacity(n);
    if n == 1 {
        shards.push(Shard::Local(engine::start(opts.clone(), 0, 1, 0, tx)?));
        return Ok(shards);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    for i in 0..n {
        let mut child = Command::new(&exe)
            .args(child_args(argv, i, n))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning child {i}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        spawn_reader(i, stdout, tx.clone());
        shards.push(Shard::Child { child, stdin });
    }
    Ok(shards)
}

/// How long a whole run may take, whatever the server does: its phases, the timeouts, slack.
fn time_bound(opts: &Options) -> Duration {
    (Duration::from_secs_f64(if opts.connect_rate > 0.0 {
        opts.connections as f64 / opts.connect_rate
    } else {
        0.0
    }) + opts.ramp_up
        + opts.connect_timeout
        + opts.duration
        + opts.grace
        + CLOSE_TIMEOUT
        + Duration::from_secs(30))
    .min(HARD_CAP)
}

/// Where each shard stands, what it reported, and what went wrong on the way.
struct Lineup {
    stage: Vec<Stage>,
    progress: Vec<Progress>,
    results: Vec<Option<Box<Report>>>,
    notes: Vec<String>,
}

impl Lineup {
    fn new(n: usize) -> Self {
        Lineup {
            stage: vec![Stage::Connecting; n],
            progress: vec![Progress::default(); n],
            results: (0..n).map(|_| None).collect(),
            notes: Vec::new(),
        }
    }

    /// Every shard has reached `stage` (or a later one).
    fn all_at(&self, stage: Stage) -> bool {
        self.stage.iter().all(|&s| s >= stage)
    }

    /// Take in what the shards said (or that they all went quiet).
    fn on(&mut self, got: Result<ShardEvent, RecvTimeoutError>) {
        let stage = &mut self.stage;
        match got {
            Ok(ShardEvent::Progress(i, p)) => self.progress[i] = p,
            Ok(ShardEvent::Ready(i)) => stage[i] = stage[i].max(Stage::Ready),
            Ok(ShardEvent::Held(i)) => stage[i] = stage[i].max(Stage::Held),
            Ok(ShardEvent::Result(i, r)) => {
                self.results[i] = Some(r);
                stage[i] = Stage::Done;
            }
            Ok(ShardEvent::Failed(i, msg)) => {
                self.notes.push(format!("client process {i} failed: {msg}"));
                stage[i] = Stage::Done;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for (i, s) in stage.iter_mut().enumerate() {
                    if *s != Stage::Done {
                        self.notes
                            .push(format!("client process {i} ended without a report"));
                        *s = Stage::Done;
                    }
                }
            }
        }
    }

    /// The shards' progress, summed.
    fn total(&self) -> Progress {
        self.progress.iter().fold(
            Progress {
                phase: u8::MAX,
                ..Progress::default()
            },
            |a, p| a.add(p),
        )
    }

    /// Move the shards through the stages together until every one is done, or until the time
    /// bound is over (then abort them, and give up a little later): sample the server at the
    /// two boundaries and print progress. Whether the run timed out.
    fn drive(
        &mut self,
        opts: &Options,
        shards: &mut [Shard],
        rx: &Receiver<ShardEvent>,
        server: &mut Option<ServerStats>,
        started: Instant,
    ) -> bool {
        let bound = time_bound(opts);
        let deadline = started + bound;
        let (mut went_run, mut went_close) = (false, false);
        let mut line = ProgressLine::new(opts.quiet, opts.scenario);
        let mut timed_out = false;
        loop {
            self.on(rx.recv_timeout(Duration::from_millis(200)));
            if !went_run && self.all_at(Stage::Ready) {
                went_run = true;
                if let Some(s) = server.as_mut() {
                    s.connected = procstat::sample(s.pid).ok();
                }
                shards.iter_mut().for_each(Shard::go);
            }
            if went_run && !went_close && self.all_at(Stage::Held) {
                went_close = true;
                if let Some(s) = server.as_mut() {
                    s.end = procstat::sample(s.pid).ok();
                }
                shards.iter_mut().for_each(Shard::go);
            }
            line.maybe_print(started, &self.total(), opts.connections as u64);
            if self.all_at(Stage::Done) {
                break;
            }
            if Instant::now() >= deadline && !timed_out {
                timed_out = true;
                self.notes.push(format!(
                    "run exceeded its time bound of {}s and was aborted",
                    bound.as_secs()
                ));
                shards.iter_mut().for_each(Shard::abort);
            }
            if timed_out && Instant::now() >= deadline + CLOSE_TIMEOUT + Duration::from_secs(5) {
                break;
            }
        }
        line.finish();
        timed_out
    }
}

/// The run's report: the shards' reports merged, the server's samples, the notes.
fn merge(opts: &Options, lineup: Lineup, server: Option<ServerStats>) -> Result<Report, String> {
    let mut report = Report::new(opts);
    let mut got = 0;
    for r in lineup.results.iter().flatten() {
        report.merge(r);
        got += 1;
    }
    if got == 0 {
        return Err(format!(
            "no client process produced a report: {}",
            lineup.notes.join("; ")
        ));
    }
    report.server = server;
    report.notes.extend(lineup.notes);
    let c = &report.tally.counters;
    if opts.deflate && c.established > 0 && c.deflate_accepted == 0 {
        report.notes.push(
            "permessage-deflate was offered; the server declined it on every connection".into(),
        );
    }
    if opts.scenario == Scenario::Echo && opts.in_flight == 1 {
        report.notes.push(
            "in-flight 1: one message per connection at a time, the uWebSockets load_test shape"
                .into(),
        );
    }
    report.derive();
    Ok(report)
}

fn spawn_reader(i: usize, stdout: std::process::ChildStdout, tx: Sender<ShardEvent>) {
    std::thread::spawn(move || {
        let mut got_result = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match parse_child_line(&line) {
                Some(ev) => {
                    let ev = match ev {
                        ChildLine::Progress(p) => ShardEvent::Progress(i, p),
                        ChildLine::Ready => ShardEvent::Ready(i),
                        ChildLine::Held => ShardEvent::Held(i),
                        ChildLine::Result(r) => {
                            got_result = true;
                            ShardEvent::Result(i, r)
                        }
                        ChildLine::Failed(m) => {
                            got_result = true;
                            ShardEvent::Failed(i, m)
                        }
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                None => eprintln!("client process {i}: {line}"),
            }
        }
        if !got_result {
            let _ = tx.send(ShardEvent::Failed(i, "exited without a report".into()));
        }
    });
}

/// One line of the child protocol.
#[derive(Debug)]
pub enum ChildLine {
    /// Progress snapshot.
    Progress(Progress),
    /// Connect phase done.
    Ready,
    /// Window and grace done.
    Held,
    /// Final report.
    Result(Box<Report>),
    /// Failure without a report.
    Failed(String),
}

/// Encode an event as a protocol line (without the newline).
pub fn child_line(ev: &ShardEvent) -> String {
    match ev {
        ShardEvent::Progress(_, p) => {
            format!("PROGRESS {}", serde_json::to_string(p).unwrap_or_default())
        }
        ShardEvent::Ready(_) => "READY".into(),
        ShardEvent::Held(_) => "HELD".into(),
        ShardEvent::Result(_, r) => {
            format!("RESULT {}", serde_json::to_string(r).unwrap_or_default())
        }
        ShardEvent::Failed(_, m) => format!("FAILED {}", m.replace('\n', " ")),
    }
}

/// Decode a protocol line; `None` for anything else (passed through to stderr).
pub fn parse_child_line(line: &str) -> Option<ChildLine> {
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    Some(match kind {
        "PROGRESS" => ChildLine::Progress(serde_json::from_str(rest).ok()?),
        "READY" => ChildLine::Ready,
        "HELD" => ChildLine::Held,
        "RESULT" => match serde_json::from_str(rest) {
            Ok(r) => ChildLine::Result(Box::new(r)),
            Err(e) => ChildLine::Failed(format!("unreadable report: {e}")),
        },
        "FAILED" => ChildLine::Failed(rest.to_string()),
        _ => return None,
    })
}

/// The child side: run shard `index` of `count`, relay events to stdout, go/abort from stdin.
pub fn run_child(opts: Arc<Options>, index: usize, count: usize) -> i32 {
    let (tx, rx) = channel();
    let shard = match engine::start(opts, index, count, 0, tx) {
        Ok(s) => s,
        Err(e) => {
            println!("FAILED {e}");
            return 2;
        }
    };
    let go = shard.go_sender();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("GO") => {
                    let _ = go.send(true);
                }
                _ => break,
            }
        }
        let _ = go.send(false);
    });
    let mut out = std::io::stdout().lock();
    for ev in rx {
        let last = matches!(ev, ShardEvent::Result(..) | ShardEvent::Failed(..));
        if writeln!(out, "{}", child_line(&ev))
            .and_then(|_| out.flush())
            .is_err()
            || last
        {
            break;
        }
    }
    shard.join();
    0
}

/// The live progress line on stderr, about once a second.
struct ProgressLine {
    quiet: bool,
    tty: bool,
    scenario: Scenario,
    last: Instant,
    last_received: u64,
    printed: bool,
}

impl ProgressLine {
    fn new(quiet: bool, scenario: Scenario) -> Self {
        ProgressLine {
            quiet,
            tty: std::io::stderr().is_terminal(),
            scenario,
            last: Instant::now(),
            last_received: 0,
            printed: false,
        }
    }

    fn maybe_print(&mut self, started: Instant, p: &Progress, want: u64) {
        let now = Instant::now();
        if self.quiet || now - self.last < Duration::from_secs(1) {
            return;
        }
        let dt = (now - self.last).as_secs_f64();
        let rate = p.received.saturating_sub(self.last_received) as f64 / dt;
        self.last = now;
        self.last_received = p.received;
        let phase = match p.phase {
            engine::CONNECT => "connect",
            engine::RUN if self.scenario == Scenario::Idle => "hold",
            engine::RUN => "run",
            engine::DRAIN => "drain",
            engine::CLOSE => "close",
            _ => "start",
        };
        let what = match self.scenario {
            Scenario::Echo => "echoes/s",
            Scenario::Broadcast => "deliveries/s",
            _ => "msgs/s",
        };
        let text = format!(
            "[{:>6.1}s] {phase:<7} conns {}/{} (failed {}, dropped {})  {what} {:.0}  errors {}",
            started.elapsed().as_secs_f64(),
            p.established,
            want,
            p.failed,
            p.dropped,
            rate,
            p.errors
        );
        if self.tty {
            eprint!("\r\x1b[2K{text}");
        } else {
            eprintln!("{text}");
        }
        self.printed = true;
    }

    fn finish(&self) {
        if self.printed && self.tty {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_args, Command};

    fn opts(args: &[&str]) -> Options {
        match parse_args(args.iter().copied()).unwrap() {
            Command::Run(o) => *o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn limits_suggest_processes() {
        let o = opts(&["idle", "-c", "19990"]);
        let err = check_limits(&o, Some(20000)).unwrap_err();
        assert!(err.contains("--processes 2"), "{err}");
        let o = opts(&["idle", "-c", "30000"]);
        let err = check_limits(&o, Some(20000)).unwrap_err();
        assert!(err.contains("--processes 2"), "{err}");
        let o = opts(&["idle", "-c", "19000", "--processes", "2"]);
        assert!(check_limits(&o, Some(20000)).is_ok());
        assert!(check_limits(&o, None).is_ok());
    }

    #[test]
    fn child_protocol_round_trip() {
        let mut r = Report {
            scenario: "echo".into(),
            window_s: 2.0,
            ..Report::default()
        };
        r.tally.counters.received = 42;
        r.tally.rtt.record(12_345);
        let line = child_line(&ShardEvent::Result(0, Box::new(r.clone())));
        assert!(!line.contains('\n'));
        match parse_child_line(&line) {
            Some(ChildLine::Result(back)) => assert_eq!(*back, r),
            other => panic!("{other:?}"),
        }
        let p = Progress {
            phase: 1,
            established: 5,
            received: 9,
            ..Progress::default()
        };
        match parse_child_line(&child_line(&ShardEvent::Progress(3, p))) {
            Some(ChildLine::Progress(back)) => assert_eq!(back, p),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_child_line("READY"), Some(ChildLine::Ready)));
        assert!(matches!(parse_child_line("HELD"), Some(ChildLine::Held)));
        assert!(matches!(parse_child_line("FAILED x y"), Some(ChildLine::Failed(m)) if m == "x y"));
        assert!(matches!(
            parse_child_line("RESULT {bad"),
            Some(ChildLine::Failed(_))
        ));
        assert!(parse_child_line("thread panicked at ...").is_none());
    }
}
