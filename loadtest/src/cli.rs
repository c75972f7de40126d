//! Command-line parsing: subcommands, flags and their defaults (the values themselves:
//! `values.rs`). Hand-rolled so every rule is unit-tested here and the binary carries no
//! argument-parsing dependency.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::target::{parse_sources, parse_url, WsUrl};
pub use crate::values::{parse_duration, parse_size};
use crate::values::{parse_num, parse_rate};

/// Longest `--duration` accepted: runs are bounded.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most connections one run may open (all processes together).
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Largest message size.
pub const MAX_SIZE: usize = 16 << 20;
/// Bytes of the broadcast payload header: publisher id (u32), sequence (u64), timestamp (u64).
pub const BROADCAST_HEADER: usize = 20;

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Open N connections; handshake rate and latency.
    Connect,
    /// Request/response echo with W messages in flight per connection.
    Echo,
    /// Publishers send into one room; every connection receives every message.
    Broadcast,
    /// Hold N connections; server memory and CPU per connection.
    Idle,
}

impl Scenario {
    /// The subcommand name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Echo => "echo",
            Scenario::Broadcast => "broadcast",
            Scenario::Idle => "idle",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "connect" => Scenario::Connect,
            "echo" => Scenario::Echo,
            "broadcast" => Scenario::Broadcast,
            "idle" => Scenario::Idle,
            _ => return None,
        })
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which scenario.
    pub scenario: Scenario,
    /// Target (the first of `urls`).
    pub url: WsUrl,
    /// Every target given: connections go to them in turn (connection `i` to `urls[i % n]`).
    pub urls: Vec<WsUrl>,
    /// Broadcast: where the publishers connect, if not with everyone else (`--publish-url`):
    /// publishers on one server, subscribers on others, to measure delivery across servers.
    pub publish_url: Option<WsUrl>,
    /// Connections, all processes together.
    pub connections: usize,
    /// Poll threads per process.
    pub threads: usize,
    /// Client processes.
    pub processes: usize,
    /// Source addresses to bind before connecting (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// New connections per second, all processes together (0: as fast as `max_pending` allows).
    pub connect_rate: f64,
    /// The connect rate rises linearly from 0 to `connect_rate` over this long.
    pub ramp_up: Duration,
    /// Most handshakes in progress at once, all processes together.
    pub max_pending: usize,
    /// Deadline for TCP connect + handshake of one connection.
    pub connect_timeout: Duration,
    /// Measurement window (echo, broadcast) or hold time (idle, connect).
    pub duration: Duration,
    /// Wait after the window for outstanding replies/deliveries before counting them lost.
    pub grace: Duration,
    /// Message payload size in bytes.
    pub size: usize,
    /// Messages in flight per connection (echo) or per publisher (broadcast).
    pub in_flight: usize,
    /// Broadcast: messages per second, all publishers together (0: only the window limits).
    pub rate: f64,
    /// Broadcast: how many of the connections publish.
    pub publishers: usize,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// `wss://`: trust the certificate authorities in this PEM file.
    pub ca: Option<PathBuf>,
    /// `wss://`: accept any certificate (loopback tests with self-signed ones).
    pub insecure: bool,
    /// Sample this server process's RSS and CPU from /proc.
    pub server_pid: Option<u32>,
    /// Write the JSON report here.
    pub json: Option<PathBuf>,
    /// Write the SVG percentile plot here.
    pub plot: Option<PathBuf>,
    /// A name for this run in reports and plots (e.g. the server's name).
    pub label: String,
    /// No progress line.
    pub quiet: bool,
    /// Internal: this process is child `index` of `count` (set by the parent).
    pub child: Option<(usize, usize)>,
}

/// `plot` subcommand options.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Output SVG.
    pub out: PathBuf,
    /// Which histogram: rtt, fanout or handshake (default: each report's main one).
    pub metric: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// JSON reports to overlay.
    pub inputs: Vec<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run a scenario.
    Run(Box<Options>),
    /// Overlay saved reports in one SVG.
    Plot(PlotOptions),
    /// Markdown comparison of saved reports: `(baseline label, inputs)`.
    Table(String, Vec<PathBuf>),
    /// Print usage.
    Help,
}

/// Usage text.
pub const USAGE: &str = "\
volley-loadtest — load generator for WebSocket servers (loopback targets only)

USAGE:
    volley-loadtest <connect|echo|broadcast|idle> [ws://HOST:PORT/PATH]... [FLAGS]
    volley-loadtest plot --out FILE.svg [--metric rtt|fanout|handshake] [--title T] REPORT.json...
    volley-loadtest table [--baseline LABEL] REPORT.json...   (markdown, ratios to LABEL [volley])
    volley-loadtest chaos ws://HOST:PORT/ --server-pid PID [-d 30s] [--svg FILE] [--cycles N]
                            (chaos soak or leak check; `chaos --help` for its flags)

TARGET (default ws://127.0.0.1:9001/): 127.0.0.0/8, [::1] or localhost only; wss:// for TLS
(with --ca or --insecure). Several targets (servers sharing topics through a bridge): the
connections go to them in turn.

FLAGS (all scenarios):
    -c, --connections N     connections, all processes together        [100]
    -t, --threads T         poll threads per process                     [2]
        --processes P       client processes (each holds N/P sockets)    [1]
        --source RANGE      bind sources, e.g. 127.0.0.1-127.0.0.8       [kernel's choice]
        --connect-rate R    new connections per second (0 = unpaced)     [10000]
        --ramp-up D         raise the connect rate linearly from 0 over D [0s]
        --max-pending M     handshakes in progress at once               [512]
        --connect-timeout D TCP connect + handshake deadline             [10s]
    -d, --duration D        measurement window / hold time (max 10m)     [echo/broadcast 5s, idle 10s, connect 0s]
        --grace D           wait for outstanding replies before counting loss [2s]
        --deflate           offer permessage-deflate, report acceptance
        --ca FILE           wss://: trust the CA certificates in this PEM file
        --insecure          wss://: accept any certificate (self-signed, loopback)
        --server-pid PID    sample server RSS and CPU from /proc
        --json FILE         write the full report as JSON
        --plot FILE         write an SVG latency-percentile plot
        --label NAME        name of this run in reports and plots        [the scenario]
    -q, --quiet             no live progress line

ECHO:
    -s, --size S            payload bytes (e.g. 32, 4k, 16KiB)            [32]
    -w, --in-flight W       messages in flight per connection            [1]

BROADCAST:
    -s, --size S            payload bytes, at least 20                  [64]
        --publishers P      connections that publish                    [10]
    -r, --rate R            messages per second, all publishers         [100]
    -w, --in-flight W       own messages not yet received back, per publisher [1000]
        --publish-url URL   publishers connect here, the rest to the targets: deliveries
                            across servers are reported apart (count, rate, latency)

Durations: 500ms, 5s, 2m, or plain seconds. Sizes: 32, 4k, 4KiB, 1m.
";

/// Parse the arguments after the program name.
pub fn parse_args<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let Some(first) = args.first() else {
        return Ok(Command::Help);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "plot" => return parse_plot(&args[1..]).map(Command::Plot),
        "table" => return parse_table(&args[1..]),
        _ => {}
    }
    let scenario = Scenario::from_name(first).ok_or_else(|| {
        format!("unknown scenario {first:?}: expected connect, echo, broadcast, idle or plot")
    })?;
    parse_run(scenario, &args[1..])
}

/// Flags given as text, resolved after every flag is read (sources depend on the target's
/// family).
#[derive(Default)]
struct Given {
    urls: Vec<String>,
    publish_url: Option<String>,
    sources: Option<String>,
    label: Option<String>,
}

/// The flags and targets of a scenario run.
fn parse_run(scenario: Scenario, args: &[String]) -> Result<Command, String> {
    let mut opts = Options::defaults(scenario);
    let mut given = Given::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') || arg == "-" {
            given.urls.push(arg.clone());
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        // Boolean flags first: they take no value.
        match flag {
            "--deflate" | "--insecure" | "--quiet" | "-q" | "--help" | "-h" => {
                if inline.is_some() {
                    return Err(format!("{flag} takes no value"));
                }
                match flag {
                    "--deflate" => opts.deflate = true,
                    "--insecure" => opts.insecure = true,
                    "--help" | "-h" => return Ok(Command::Help),
                    _ => opts.quiet = true,
                }
                continue;
            }
            _ => {}
        }
        let value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value")),
            }
        };
        set_flag(&mut opts, &mut given, flag, value)?;
    }
    resolve(&mut opts, given)?;
    opts.validate()?;
    Ok(Command::Run(Box::new(opts)))
}

/// Set what a flag with a value says; `value` takes the value (only for a known flag).
fn set_flag(
    opts: &mut Options,
    given: &mut Given,
    flag: &str,
    mut value: impl FnMut() -> Result<String, String>,
) -> Result<(), String> {
    match flag {
        "-c" | "--connections" => opts.connections = parse_num(flag, &value()?)?,
        "-t" | "--threads" => opts.threads = parse_num(flag, &value()?)?,
        "--processes" => opts.processes = parse_num(flag, &value()?)?,
        "--source" => given.sources = Some(value()?),
        "--connect-rate" => opts.connect_rate = parse_rate(flag, &value()?)?,
        "--max-pending" => opts.max_pending = parse_num(flag, &value()?)?,
        "--ramp-up" => opts.ramp_up = parse_duration(&value()?)?,
        "--connect-timeout" => opts.connect_timeout = parse_duration(&value()?)?,
        "-d" | "--duration" => opts.duration = parse_duration(&value()?)?,
        "--grace" => opts.grace = parse_duration(&value()?)?,
        "-s" | "--size" => opts.size = parse_size(&value()?)?,
        "-w" | "--in-flight" => opts.in_flight = parse_num(flag, &value()?)?,
        "-r" | "--rate" => opts.rate = parse_rate(flag, &value()?)?,
        "--publishers" => opts.publishers = parse_num(flag, &value()?)?,
        "--publish-url" => given.publish_url = Some(value()?),
        "--server-pid" => opts.server_pid = Some(parse_num(flag, &value()?)?),
        "--json" => opts.json = Some(PathBuf::from(value()?)),
        "--ca" => opts.ca = Some(PathBuf::from(value()?)),
        "--plot" => opts.plot = Some(PathBuf::from(value()?)),
        "--label" => given.label = Some(value()?),
        "--child" => {
            let v = value()?;
            let (i, n) = v.split_once('/').ok_or("--child: expected I/N")?;
            let (i, n): (usize, usize) = (parse_num(flag, i)?, parse_num(flag, n)?);
            if n == 0 || i >= n {
                return Err("--child: expected I/N with I < N".into());
            }
            opts.child = Some((i, n));
        }
        _ => return Err(format!("unknown flag {flag:?} (see --help)")),
    }
    Ok(())
}

/// Resolve the flags given as text: targets, the publishers' target, sources, label.
fn resolve(opts: &mut Options, given: Given) -> Result<(), String> {
    if !given.urls.is_empty() {
        opts.urls = given
            .urls
            .iter()
            .map(|u| parse_url(u))
            .collect::<Result<_, _>>()?;
        opts.url = opts.urls[0].clone();
    }
    if let Some(u) = given.publish_url {
        opts.publish_url = Some(parse_url(&u)?);
    }
    if let Some(spec) = given.sources {
        opts.sources = parse_sources(&spec, opts.url.addr.ip())?;
    }
    if let Some(l) = given.label {
        opts.label = l;
    }
    Ok(())
}

/// The default target.
const DEFAULT_URL: &str = "ws://127.0.0.1:9001/";

impl Options {
    /// Every option at its default for `scenario` (the values USAGE shows in brackets).
    pub fn defaults(scenario: Scenario) -> Options {
        let (duration, size, in_flight) = match scenario {
            Scenario::Connect => (Duration::ZERO, 32, 1),
            Scenario::Idle => (Duration::from_secs(10), 32, 1),
            Scenario::Echo => (Duration::from_secs(5), 32, 1),
            Scenario::Broadcast => (Duration::from_secs(5), 64, 1000),
        };
        Options {
            scenario,
            url: parse_url(DEFAULT_URL).expect("the default URL is valid"),
            urls: vec![parse_url(DEFAULT_URL).expect("the default URL is valid")],
            publish_url: None,
            connections: 100,
            threads: 2,
            processes: 1,
            sources: Vec::new(),
            connect_rate: 10_000.0,
            ramp_up: Duration::ZERO,
            max_pending: 512,
            connect_timeout: Duration::from_secs(10),
            duration,
            grace: Duration::from_secs(2),
            size,
            in_flight,
            rate: 100.0,
            publishers: 10,
            deflate: false,
            ca: None,
            insecure: false,
            server_pid: None,
            json: None,
            plot: None,
            label: scenario.name().to_string(),
            quiet: false,
            child: None,
        }
    }

    /// Which target connection `index` goes to: an index into `urls`, or `urls.len()` for
    /// `publish_url` (broadcast publishers, when it is set and not one of `urls`). A broadcast publisher's id is its
    /// connection index, so a receiver knows its publisher's target too.
    pub fn target_of(&self, index: u64) -> usize {
        let publisher = self.scenario == Scenario::Broadcast && index < self.publishers as u64;
        if let Some(p) = self.publish_url.as_ref().filter(|_| publisher) {
            // The publishers' server may be one of the targets too: then it is that one.
            let same = self.urls.iter().position(|u| u.addr == p.addr);
            same.unwrap_or(self.urls.len())
        } else {
            (index % self.urls.len().max(1) as u64) as usize
        }
    }

    /// The URL of target `t` (see [`Options::target_of`]).
    pub fn target_url(&self, t: usize) -> &WsUrl {
        self.urls
            .get(t)
            .or(self.publish_url.as_ref())
            .unwrap_or(&self.url)
    }

    /// Check the combination of options; a clear message for the first one out of range.
    pub fn validate(&self) -> Result<(), String> {
        let (connections, publishers, size) = (self.connections, self.publishers, self.size);
        if self.url.tls && self.ca.is_none() && !self.insecure {
            return Err("a wss:// target needs --ca FILE (or --insecure)".into());
        }
        if !self.url.tls && (self.ca.is_some() || self.insecure) {
            return Err("--ca and --insecure are for wss:// targets".into());
        }
        if connections == 0 || connections > MAX_CONNECTIONS {
            return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if self.threads == 0 || self.threads > 64 {
            return Err("--threads must be 1..=64".into());
        }
        if self.processes == 0 || self.processes > 64 {
            return Err("--processes must be 1..=64".into());
        }
        if self.processes > connections {
            return Err("--processes must not exceed --connections".into());
        }
        if self.ramp_up > Duration::from_secs(120) {
            return Err("--ramp-up is capped at 120s".into());
        }
        if self.max_pending == 0 {
            return Err("--max-pending must be at least 1".into());
        }
        if self.duration > MAX_DURATION {
            return Err(format!(
                "--duration is capped at {}s",
                MAX_DURATION.as_secs()
            ));
        }
        if self.grace > Duration::from_secs(60) {
            return Err("--grace is capped at 60s".into());
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > Duration::from_secs(120) {
            return Err("--connect-timeout must be in (0, 120s]".into());
        }
        if size > MAX_SIZE {
            return Err(format!("--size is capped at {MAX_SIZE} bytes"));
        }
        if self.in_flight == 0 || self.in_flight > 1_000_000 {
            return Err("--in-flight must be 1..=1000000".into());
        }
        let tls = self.url.tls;
        if self
            .urls
            .iter()
            .chain(&self.publish_url)
            .any(|u| u.tls != tls)
        {
            return Err("targets must all be ws:// or all wss://".into());
        }
        if self.publish_url.is_some() && self.scenario != Scenario::Broadcast {
            return Err("--publish-url is for the broadcast scenario".into());
        }
        if self.urls.len() > 64 {
            return Err("at most 64 targets".into());
        }
        if self.scenario == Scenario::Broadcast {
            if size < BROADCAST_HEADER {
                return Err(format!(
                    "broadcast --size must be at least {BROADCAST_HEADER} (publisher, sequence, timestamp)"
                ));
            }
            if publishers == 0 || publishers > connections {
                return Err("--publishers must be 1..=connections".into());
            }
            // Every connection tracks the next sequence number of every publisher.
            if (connections as u128) * (publishers as u128) > 200_000_000 {
                return Err("--publishers × --connections is too large (limit 2e8)".into());
            }
        }
        Ok(())
    }
}

fn parse_plot(args: &[String]) -> Result<PlotOptions, String> {
    let mut out = None;
    let mut metric = None;
    let mut title = None;
    let mut inputs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |f: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{f} needs a value"))
        };
        match a.as_str() {
            "--out" | "-o" => out = Some(PathBuf::from(value(a)?)),
            "--metric" => {
                let m = value(a)?;
                if !matches!(m.as_str(), "rtt" | "fanout" | "handshake") {
                    return Err(format!(
                        "--metric: expected rtt, fanout or handshake, not {m:?}"
                    ));
                }
                metric = Some(m);
            }
            "--title" => title = Some(value(a)?),
            f if f.starts_with('-') => return Err(format!("plot: unknown flag {f:?}")),
            p => inputs.push(PathBuf::from(p)),
        }
    }
    let out = out.ok_or("plot: --out FILE is required")?;
    if inputs.is_empty() {
        return Err("plot: give at least one JSON report".into());
    }
    Ok(PlotOptions {
        out,
        metric,
        title,
        inputs,
    })
}

fn parse_table(args: &[String]) -> Result<Command, String> {
    let mut baseline = "volley".to_string();
    let mut inputs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--baseline" => baseline = it.next().cloned().ok_or("--baseline needs a value")?,
            f if f.starts_with('-') => return Err(format!("table: unknown flag {f:?}")),
            p => inputs.push(PathBuf::from(p)),
        }
    }
    if inputs.is_empty() {
        return Err("table: give at least one JSON report".into());
    }
    Ok(Command::Table(baseline, inputs))
}

/// The arguments a child process gets: the parent's, minus output files and `--processes`, plus
/// `--child I/N` and `--quiet`.
pub fn child_args(parent: &[String], index: usize, count: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(parent.len() + 3);
    let mut it = parent.iter();
    while let Some(a) = it.next() {
        let flag = a.split_once('=').map_or(a.as_str(), |(f, _)| f);
        let drop = matches!(
            flag,
            "--json" | "--plot" | "--processes" | "--server-pid" | "--child"
        );
        if drop {
            if !a.contains('=') {
                it.next();
            }
            continue;
        }
        out.push(a.clone());
    }
    out.push("--child".into());
    out.push(format!("{index}/{count}"));
    out.push("--quiet".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse_args(args.iter().copied()).unwrap() {
            Command::Run(o) => *o,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "-1s", "abc", "5h", "NaN", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32").unwrap(), 32);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("16kb").unwrap(), 16384);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("0").unwrap(), 0);
        for bad in ["", "k", "-1", "4x", "1.5k", "99999999999999999999k"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_per_scenario() {
        let o = run(&["echo"]);
        assert_eq!(o.scenario, Scenario::Echo);
        assert_eq!(o.url.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!((o.connections, o.threads, o.processes), (100, 2, 1));
        assert_eq!((o.size, o.in_flight), (32, 1));
        assert_eq!(o.duration, Duration::from_secs(5));
        assert_eq!(o.label, "echo");
        let o = run(&["broadcast"]);
        assert_eq!((o.size, o.in_flight, o.publishers), (64, 1000, 10));
        assert_eq!(run(&["connect"]).duration, Duration::ZERO);
        assert_eq!(run(&["idle"]).duration, Duration::from_secs(10));
    }

    #[test]
    fn flags_both_spellings() {
        let o = run(&[
            "echo",
            "ws://127.0.0.1:9100/x",
            "-c",
            "1000",
            "--size=4k",
            "--in-flight",
            "4",
            "--threads=3",
            "--processes",
            "2",
            "--source",
            "127.0.0.1-127.0.0.4",
            "-d",
            "2s",
            "--grace=500ms",
            "--ramp-up",
            "3s",
            "--connect-rate",
            "0",
            "--deflate",
            "--server-pid",
            "42",
            "--json",
            "out.json",
            "--plot=p.svg",
            "--label",
            "volley",
            "-q",
        ]);
        assert_eq!(o.url.path, "/x");
        assert_eq!(
            (o.connections, o.size, o.in_flight, o.threads, o.processes),
            (1000, 4096, 4, 3, 2)
        );
        assert_eq!(o.sources.len(), 4);
        assert_eq!(o.duration, Duration::from_secs(2));
        assert_eq!(o.grace, Duration::from_millis(500));
        assert_eq!(o.ramp_up, Duration::from_secs(3));
        assert_eq!(o.connect_rate, 0.0);
        assert!(o.deflate && o.quiet);
        assert_eq!(o.server_pid, Some(42));
        assert_eq!(o.json.as_deref(), Some(std::path::Path::new("out.json")));
        assert_eq!(o.plot.as_deref(), Some(std::path::Path::new("p.svg")));
        assert_eq!(o.label, "volley");
        assert_eq!(o.child, None);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &["nope"][..],
            &["echo", "--connections"],
            &["echo", "-c", "0"],
            &["echo", "-c", "x"],
            &["echo", "--bogus", "1"],
            &["echo", "ws://10.0.0.1/"],
            // Several targets are fine, but not plain and TLS mixed.
            &["echo", "ws://127.0.0.1/", "wss://127.0.0.1/"],
            &["echo", "-d", "11m"],
            &["echo", "-w", "0"],
            &["echo", "--processes", "3", "-c", "2"],
            &["echo", "--deflate=1"],
            &["echo", "--source", "10.0.0.1"],
            &["broadcast", "-s", "8"],
            &["broadcast", "--publishers", "0"],
            &["broadcast", "-c", "5", "--publishers", "6"],
            &["echo", "--child", "2/2"],
            &["echo", "-r", "-5"],
        ] {
            assert!(
                parse_args(bad.iter().copied()).is_err(),
                "{bad:?} should fail"
            );
        }
    }

    #[test]
    fn help_and_plot() {
        assert!(matches!(
            parse_args(Vec::<String>::new()).unwrap(),
            Command::Help
        ));
        assert!(matches!(parse_args(["--help"]).unwrap(), Command::Help));
        assert!(matches!(parse_args(["echo", "-h"]).unwrap(), Command::Help));
        match parse_args([
            "plot", "--out", "a.svg", "--metric", "rtt", "x.json", "y.json",
        ])
        .unwrap()
        {
            Command::Plot(p) => {
                assert_eq!(p.inputs.len(), 2);
                assert_eq!(p.metric.as_deref(), Some("rtt"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_args(["plot", "x.json"]).is_err());
        match parse_args(["table", "--baseline", "v", "a.json"]).unwrap() {
            Command::Table(b, i) => assert_eq!((b.as_str(), i.len()), ("v", 1)),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse_args(["table", "a.json"]).unwrap(), Command::Table(b, _) if b == "volley")
        );
        assert!(parse_args(["table"]).is_err());
        assert!(parse_args(["plot", "--out", "a.svg"]).is_err());
        assert!(parse_args(["plot", "--out", "a.svg", "--metric", "cpu", "x.json"]).is_err());
    }

    #[test]
    fn several_targets_and_a_publish_url() {
        let o = run(&[
            "broadcast",
            "ws://127.0.0.1:9001/",
            "ws://127.0.0.1:9002/",
            "--publishers",
            "2",
            "--publish-url",
            "ws://127.0.0.1:9003/",
        ]);
        assert_eq!(o.urls.len(), 2);
        assert_eq!(o.url.addr, "127.0.0.1:9001".parse().unwrap());
        // Publishers 0 and 1 on the publish target, the rest in turn.
        let t: Vec<usize> = (0..6).map(|i| o.target_of(i)).collect();
        assert_eq!(t, [2, 2, 0, 1, 0, 1]);
        assert_eq!(o.target_url(2).addr, "127.0.0.1:9003".parse().unwrap());
        assert_eq!(o.target_url(1).addr, "127.0.0.1:9002".parse().unwrap());
        // A publish URL that is one of the targets is that target.
        let o = run(&[
            "broadcast",
            "ws://127.0.0.1:9001/",
            "ws://127.0.0.1:9002/",
            "--publish-url",
            "ws://127.0.0.1:9002/",
        ]);
        assert_eq!(
            (o.target_of(0), o.target_of(10), o.target_of(11)),
            (1, 0, 1)
        );
        // Without --publish-url, publishers too go in turn.
        let o = run(&["broadcast", "ws://127.0.0.1:9001/", "ws://127.0.0.1:9002/"]);
        assert_eq!(o.target_of(1), 1);
        let err = |args: &[&str]| match parse_args(args.iter().copied()) {
            Err(e) => e,
            Ok(_) => panic!("{args:?} accepted"),
        };
        assert!(err(&["echo", "--publish-url", "ws://127.0.0.1:9/"]).contains("broadcast"));
    }

    #[test]
    fn child_args_drop_outputs_and_add_index() {
        let parent: Vec<String> = [
            "idle",
            "-c",
            "100",
            "--processes",
            "2",
            "--json",
            "a.json",
            "--plot=b.svg",
            "--server-pid",
            "9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = child_args(&parent, 1, 2);
        assert_eq!(c, ["idle", "-c", "100", "--child", "1/2", "--quiet"]);
        let o = run(&c.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.child, Some((1, 2)));
        assert_eq!(o.processes, 1);
    }

    #[test]
    fn per_scenario_defaults_validate() {
        for sc in [
            Scenario::Connect,
            Scenario::Echo,
            Scenario::Broadcast,
            Scenario::Idle,
        ] {
            let o = Options::defaults(sc);
            assert_eq!(o.validate(), Ok(()), "{sc:?}");
            assert_eq!(o.label, sc.name());
        }
        let b = Options::defaults(Scenario::Broadcast);
        assert_eq!((b.size, b.in_flight), (64, 1000));
        assert_eq!(
            Options::defaults(Scenario::Connect).duration,
            Duration::ZERO
        );
    }

    #[test]
    fn validation_rejects_bad_combinations() {
        let mut o = Options::defaults(Scenario::Broadcast);
        o.publishers = o.connections + 1;
        assert!(o.validate().unwrap_err().contains("--publishers"));
        let mut o = Options::defaults(Scenario::Echo);
        o.processes = 8;
        o.connections = 4;
        assert!(o.validate().unwrap_err().contains("--processes"));
        let mut o = Options::defaults(Scenario::Broadcast);
        o.size = 4;
        assert!(o.validate().unwrap_err().contains("at least"));
        // The same small size is fine for echo.
        let mut o = Options::defaults(Scenario::Echo);
        o.size = 4;
        assert_eq!(o.validate(), Ok(()));
    }
}
