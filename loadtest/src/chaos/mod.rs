//! The chaos soak: for a set time, healthy echo and broadcast clients run beside abusive ones
//! (connections cut mid-frame and mid-handshake, half-open sockets, slow readers, ping floods,
//! oversized and invalid frames, deflate bombs, connect bursts, garbage) against one server.
//! Reports, for the healthy clients only, messages lost, reordered or corrupted (must be 0) and
//! latency percentiles; for the server, RSS over time (an SVG), open descriptors at the start
//! and the end (back to the start), and whether it stayed up. Exit status 1 if any of that
//! fails.
//!
//! `--cycles N` instead runs the leak check: N connect/upgrade/close cycles from several
//! threads and source addresses, then the server's RSS and descriptors against their start.
//!
//! The server must echo on `/` and, on `/room`, publish every message to everyone in the room
//! (`examples/echo` does both). Blocking std sockets and threads: the point is variety, not
//! load.

mod abuse;
mod client;
#[path = "../../../src/protocol/test_rng.rs"]
mod test_rng;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use volley::protocol::frame::OpCode;

use crate::hist::Hist;
use client::{Got, Ws};

const USAGE: &str = "\
volley-loadtest chaos ws://HOST:PORT/ --server-pid PID [-d 30s] [--svg FILE]
volley-loadtest chaos ws://HOST:PORT/ --server-pid PID --cycles N [--source 127.0.0.1-127.0.0.8]

The server echoes on / and broadcasts to a room on /room (examples/echo).
  -d, --duration D   how long the soak runs                              [30s]
      --echo N       healthy echo clients                                [8]
      --subscribers N healthy broadcast subscribers (one of them publishes) [4]
      --abusers N    abusive client threads                              [6]
      --svg FILE     server RSS over time
      --cycles N     leak check: N connect/upgrade/close cycles instead of the soak
      --source RANGE source addresses for the cycles                    [127.0.0.1-127.0.0.8]
";

struct Opts {
    addr: SocketAddr,
    pid: u32,
    duration: Duration,
    echo: usize,
    subscribers: usize,
    abusers: usize,
    svg: Option<String>,
    cycles: Option<u64>,
    sources: Vec<std::net::IpAddr>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:9001".parse().unwrap(),
        pid: 0,
        duration: Duration::from_secs(30),
        echo: 8,
        subscribers: 4,
        abusers: 6,
        svg: None,
        cycles: None,
        sources: (1..=8).map(|i| [127, 0, 0, i].into()).collect(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "-d" | "--duration" => o.duration = crate::cli::parse_duration(val()?)?,
            "--server-pid" => o.pid = val()?.parse().map_err(|_| "--server-pid: a pid")?,
            "--echo" => o.echo = val()?.parse().map_err(|_| "--echo: a number")?,
            "--subscribers" => {
                o.subscribers = val()?.parse().map_err(|_| "--subscribers: a number")?
            }
            "--abusers" => o.abusers = val()?.parse().map_err(|_| "--abusers: a number")?,
            "--svg" => o.svg = Some(val()?.clone()),
            "--cycles" => o.cycles = Some(val()?.parse().map_err(|_| "--cycles: a number")?),
            "--source" => {
                let v = val()?;
                let (a, b) = v.split_once('-').unwrap_or((v, v));
                let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (
                    a.parse().map_err(|_| "--source: A-B")?,
                    b.parse().map_err(|_| "--source: A-B")?,
                );
                o.sources = (u32::from(a)..=u32::from(b))
                    .map(|x| std::net::Ipv4Addr::from(x).into())
                    .collect();
            }
            url if url.starts_with("ws://") => {
                let hostport = url["ws://".len()..].split('/').next().unwrap_or("");
                o.addr = hostport
                    .to_socket_addrs()
                    .map_err(|e| format!("{url}: {e}"))?
                    .next()
                    .ok_or(format!("{url}: no address"))?;
                if !o.addr.ip().is_loopback() {
                    return Err("loopback targets only".into());
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if o.pid == 0 {
        return Err("--server-pid is required".into());
    }
    Ok(o)
}

/// Entry point: `volley-loadtest chaos ...`.
pub fn main(args: &[String]) -> u8 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("volley-loadtest chaos: {e}\n");
            }
            eprint!("{USAGE}");
            return 2;
        }
    };
    let ok = match o.cycles {
        Some(n) => leak_check(&o, n),
        None => soak(&o),
    };
    if ok {
        0
    } else {
        1
    }
}

/// The server's resident memory and open descriptors now; `None` once it is gone.
fn server_sample(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = crate::procstat::parse_rss(&status)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// Wait (up to `secs`) for the server's descriptors to come back to `baseline`.
fn settle(pid: u32, baseline: usize, secs: u64) -> Option<(u64, usize)> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = server_sample(pid)?;
        if s.1 <= baseline || Instant::now() >= end {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[derive(Default)]
struct Healthy {
    sent: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    reordered: AtomicU64,
    corrupted: AtomicU64,
    errors: Mutex<Vec<String>>,
    rtt: Mutex<Hist>,
}

impl Healthy {
    fn error(&self, what: String) {
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }
}

/// A payload whose content is checkable: `tag:seq:` then bytes derived from both.
fn payload(tag: &str, seq: u64, len: usize) -> String {
    let mut s = format!("{tag}:{seq}:");
    let mut rng = test_rng::Rng(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    while s.len() < len {
        s.push((b'a' + rng.below(26) as u8) as char);
    }
    s
}

fn echo_client(addr: SocketAddr, id: usize, stop: &AtomicBool, h: &Healthy) {
    let mut ws = match Ws::connect(addr, "/", &[]) {
        Ok(ws) => ws,
        Err(e) => return h.error(format!("echo {id}: connect: {e}")),
    };
    let tag = format!("e{id}");
    let mut seq = 0u64;
    while !stop.load(Relaxed) {
        let len = 16 + (seq as usize * 97) % 8000;
        let msg = payload(&tag, seq, len);
        let t = Instant::now();
        if let Err(e) = ws.send(OpCode::Text, msg.as_bytes()) {
            return h.error(format!("echo {id}: send: {e}"));
        }
        h.sent.fetch_add(1, Relaxed);
        match ws.recv() {
            Ok(Got::Text(back)) if back == msg => {
                h.received.fetch_add(1, Relaxed);
                h.rtt.lock().unwrap().record(t.elapsed().as_nanos() as u64);
            }
            Ok(Got::Text(back)) => {
                let same_tag = back.starts_with(&format!("{tag}:"));
                if same_tag {
                    h.reordered.fetch_add(1, Relaxed);
                } else {
                    h.corrupted.fetch_add(1, Relaxed);
                }
                return h.error(format!("echo {id}: got another message than #{seq}"));
            }
            Ok(other) => {
                h.lost.fetch_add(1, Relaxed);
                return h.error(format!("echo {id}: #{seq}: got {other:?}"));
            }
            Err(e) => {
                h.lost.fetch_add(1, Relaxed);
                return h.error(format!("echo {id}: #{seq}: {e}"));
            }
        }
        seq += 1;
    }
    ws.close();
}

/// A room member: checks that the publisher's messages arrive whole and in order. Member 0
/// publishes too, paced, and stops at `stop`; every member then reads until it has seen the
/// last one published.
fn member(
    addr: SocketAddr,
    id: usize,
    stop: &AtomicBool,
    published: &AtomicU64,
    joined: &AtomicU64,
    h: &Healthy,
) {
    let mut ws = match Ws::connect(addr, "/room", &[]) {
        Ok(ws) => ws,
        Err(e) => return h.error(format!("member {id}: connect: {e}")),
    };
    joined.fetch_add(1, Relaxed);
    let publisher = id == 0;
    let mut next = 0u64;
    let mut last_pub = Instant::now();
    loop {
        if publisher && !stop.load(Relaxed) && last_pub.elapsed() >= Duration::from_millis(5) {
            let seq = published.load(Relaxed);
            let msg = payload("b", seq, 64 + (seq as usize * 31) % 1000);
            if let Err(e) = ws.send(OpCode::Text, msg.as_bytes()) {
                return h.error(format!("publisher: send: {e}"));
            }
            published.store(seq + 1, Relaxed);
            h.sent.fetch_add(1, Relaxed);
            last_pub = Instant::now();
        }
        if stop.load(Relaxed) && next >= published.load(Relaxed) {
            break;
        }
        let _ = ws
            .stream
            .set_read_timeout(Some(Duration::from_millis(if publisher {
                5
            } else {
                5000
            })));
        match ws.recv() {
            Ok(Got::Text(m)) => check_room_message(&m, id, &mut next, h),
            Ok(Got::Binary(b)) if b.iter().all(|&x| x == b'x') => {}
            Ok(other) => return h.error(format!("member {id}: got {other:?}")),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Relaxed) && next >= published.load(Relaxed) {
                    break;
                }
                if !publisher {
                    let missing = published.load(Relaxed).saturating_sub(next);
                    h.lost.fetch_add(missing, Relaxed);
                    return h.error(format!("member {id}: nothing for 5 s, {missing} missing"));
                }
            }
            Err(e) => return h.error(format!("member {id}: {e}")),
        }
    }
    ws.close();
}

/// Count a text message a room member got: the next publish (or a gap, or one out of order), a
/// slow reader's filler (skipped), or a corrupted one.
fn check_room_message(m: &str, id: usize, next: &mut u64, h: &Healthy) {
    let mut parts = m.splitn(3, ':');
    let (tag, seq) = (
        parts.next(),
        parts.next().and_then(|s| s.parse::<u64>().ok()),
    );
    match (tag, seq) {
        (Some("b"), Some(seq)) if m == payload("b", seq, m.len()) => {
            if seq != *next {
                if seq > *next {
                    h.lost.fetch_add(seq - *next, Relaxed);
                } else {
                    h.reordered.fetch_add(1, Relaxed);
                }
                h.error(format!("member {id}: expected #{next}, got #{seq}"));
            }
            h.received.fetch_add(1, Relaxed);
            *next = seq + 1;
        }
        // The slow readers' 64 KiB messages share the room; skip them.
        _ if m.bytes().all(|b| b == b'x') => {}
        _ => {
            h.corrupted.fetch_add(1, Relaxed);
            h.error(format!(
                "member {id}: corrupted message of {} bytes",
                m.len()
            ));
        }
    }
}

fn soak(o: &Opts) -> bool {
    // One round trip first, so the server has finished starting (its listener may accept
    // before every worker's descriptors exist) and the baseline is a serving server's.
    if let Err(e) = cycle(o.addr, [127, 0, 0, 1].into()) {
        eprintln!("chaos: the server does not echo: {e}");
        return false;
    }
    std::thread::sleep(Duration::from_millis(300));
    let Some((rss0, fds0)) = server_sample(o.pid) else {
        eprintln!("chaos: no server process {}", o.pid);
        return false;
    };
    eprintln!(
        "chaos: {} against {} for {:?}: {} echo clients, {} room members, {} abusers",
        o.pid, o.addr, o.duration, o.echo, o.subscribers, o.abusers
    );
    let crowd = Crowd::new();
    let threads = crowd.spawn(o);
    // Sample the server while it runs.
    let start = Instant::now();
    let mut samples = vec![(0.0, rss0)];
    let mut alive = true;
    while start.elapsed() < o.duration {
        std::thread::sleep(Duration::from_millis(250));
        match server_sample(o.pid) {
            Some((rss, _)) => samples.push((start.elapsed().as_secs_f64(), rss)),
            None => {
                alive = false;
                break;
            }
        }
    }
    crowd.stop.store(true, Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // A fresh client is still served.
    let served = Ws::connect(o.addr, "/", &[]).and_then(|mut ws| {
        ws.send(OpCode::Text, b"still there?")?;
        let ok = matches!(ws.recv()?, Got::Text(t) if t == "still there?");
        ws.close();
        Ok(ok)
    });
    let end = settle(o.pid, fds0, 15);
    alive &= end.is_some() && matches!(served, Ok(true));
    let (rss1, fds1) = end.unwrap_or((0, usize::MAX));
    let server = Seen {
        alive,
        rss: [
            rss0,
            samples.iter().map(|s| s.1).max().unwrap_or(rss0),
            rss1,
        ],
        fds: [fds0, fds1],
    };
    samples.push((start.elapsed().as_secs_f64(), rss1));
    crowd.verdict(o, &server, &samples)
}

/// What the soak's clients share: the stop flag, the healthy clients' findings, the room's
/// publish count, the abusers' deflate bomb and how often each abuse ran.
struct Crowd {
    stop: Arc<AtomicBool>,
    healthy: Arc<Healthy>,
    published: Arc<AtomicU64>,
    joined: Arc<AtomicU64>,
    bomb: Arc<abuse::Bomb>,
    abused: Arc<Mutex<Vec<u64>>>,
}

/// The server during the soak: still up and serving; RSS at the start, its peak, at the end;
/// descriptors at the start and the end.
struct Seen {
    alive: bool,
    rss: [u64; 3],
    fds: [usize; 2],
}

impl Crowd {
    fn new() -> Self {
        Crowd {
            stop: Arc::default(),
            healthy: Arc::default(),
            published: Arc::default(),
            joined: Arc::default(),
            bomb: Arc::new(abuse::Bomb::new()),
            abused: Arc::new(Mutex::new(vec![0u64; abuse::BEHAVIOURS.len()])),
        }
    }

    /// Start the room members (the publisher waits for the others), the echo clients and the
    /// abusers; their threads, in that order.
    fn spawn(&self, o: &Opts) -> Vec<std::thread::JoinHandle<()>> {
        let mut threads = Vec::new();
        let members = o.subscribers.max(1) as u64;
        for id in (1..o.subscribers.max(1)).chain([0]) {
            let (stop, published, joined, h, addr) = (
                self.stop.clone(),
                self.published.clone(),
                self.joined.clone(),
                self.healthy.clone(),
                o.addr,
            );
            threads.push(std::thread::spawn(move || {
                if id == 0 {
                    while joined.load(Relaxed) < members - 1 {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                member(addr, id, &stop, &published, &joined, &h)
            }));
        }
        for id in 0..o.echo {
            let (stop, h, addr) = (self.stop.clone(), self.healthy.clone(), o.addr);
            threads.push(std::thread::spawn(move || echo_client(addr, id, &stop, &h)));
        }
        for a in 0..o.abusers {
            let (stop, bomb, abused, addr) = (
                self.stop.clone(),
                self.bomb.clone(),
                self.abused.clone(),
                o.addr,
            );
            threads.push(std::thread::spawn(move || {
                let mut i = a;
                while !stop.load(Relaxed) {
                    let (_, f) = abuse::BEHAVIOURS[i % abuse::BEHAVIOURS.len()];
                    f(addr, &bomb);
                    abused.lock().unwrap()[i % abuse::BEHAVIOURS.len()] += 1;
                    i += 1;
                }
            }));
        }
        threads
    }

    /// Print what the soak found (and the RSS plot); whether it passed.
    fn verdict(&self, o: &Opts, server: &Seen, samples: &[(f64, u64)]) -> bool {
        let h = &self.healthy;
        let rtt = h.rtt.lock().unwrap();
        let (lost, reordered, corrupted) = (
            h.lost.load(Relaxed),
            h.reordered.load(Relaxed),
            h.corrupted.load(Relaxed),
        );
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!("chaos soak, {:?}:", o.duration);
        println!(
            "  healthy: {} messages sent, {} received ({} broadcast publishes); lost {lost}, \
             reordered {reordered}, corrupted {corrupted}",
            h.sent.load(Relaxed),
            h.received.load(Relaxed),
            self.published.load(Relaxed)
        );
        println!(
            "  echo round trip: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} samples)",
            rtt.at(50.0) as f64 / 1e6,
            rtt.at(99.0) as f64 / 1e6,
            rtt.at(99.9) as f64 / 1e6,
            rtt.max() as f64 / 1e6,
            rtt.count()
        );
        let abused = self.abused.lock().unwrap();
        let list: Vec<String> = abuse::BEHAVIOURS
            .iter()
            .zip(abused.iter())
            .map(|((name, _), n)| format!("{name} {n}"))
            .collect();
        println!("  abusive: {}", list.join(", "));
        let ([rss0, peak, rss1], [fds0, fds1]) = (server.rss, server.fds);
        println!(
            "  server: {}; RSS {:.1} MiB at the start, {:.1} MiB peak, {:.1} MiB at the end; \
             descriptors {fds0} at the start, {fds1} at the end",
            if server.alive {
                "up and serving"
            } else {
                "DOWN or not serving"
            },
            mib(rss0),
            mib(peak),
            mib(rss1)
        );
        for e in h.errors.lock().unwrap().iter() {
            println!("  healthy client error: {e}");
        }
        if let Some(path) = &o.svg {
            match std::fs::write(path, rss_svg(samples, "server RSS during the chaos soak")) {
                Ok(()) => println!("  RSS plot: {path}"),
                Err(e) => eprintln!("chaos: {path}: {e}"),
            }
        }
        let errors = !h.errors.lock().unwrap().is_empty();
        let ok = server.alive
            && lost == 0
            && reordered == 0
            && corrupted == 0
            && !errors
            && fds1 <= fds0;
        println!("  {}", if ok { "PASSED" } else { "FAILED" });
        ok
    }
}

/// The leak check: `n` connect/upgrade/echo/close cycles from 8 threads, each binding to the
/// source addresses in turn; then RSS and descriptors against their values after a warm-up
/// (within 10%).
fn leak_check(o: &Opts, n: u64) -> bool {
    if server_sample(o.pid).is_none() {
        eprintln!("chaos: no server process {}", o.pid);
        return false;
    }
    // Warm up first: the first connections make the workers' buffers, pools and tables, which
    // live as long as the server and are not a leak. The baseline is taken after them.
    // Measured: RSS settles within the first ~50,000 cycles (allocator arenas of the worker
    // threads), then stays flat; the warm-up is a quarter of the run, at most 50,000.
    let warm = (n / 4).clamp(1, 50_000);
    for i in 0..warm {
        let _ = cycle(o.addr, o.sources[i as usize % o.sources.len()]);
    }
    let Some((rss0, fds0)) = settle(o.pid, usize::MAX, 0) else {
        return false;
    };
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (done, failed, sources, addr) =
                (done.clone(), failed.clone(), o.sources.clone(), o.addr);
            std::thread::spawn(move || {
                let mut i = t;
                while done.fetch_add(1, Relaxed) < n {
                    let src = sources[i % sources.len()];
                    i += 1;
                    let ok = cycle(addr, src).is_ok();
                    if !ok {
                        failed.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut peak = rss0;
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        if let Some((rss, _)) = server_sample(o.pid) {
            peak = peak.max(rss);
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let end = settle(o.pid, fds0, 15);
    let (rss1, fds1) = end.unwrap_or((0, usize::MAX));
    let kib = |b: u64| b / 1024;
    let failed = failed.load(Relaxed);
    println!(
        "leak check: {n} connect/upgrade/echo/close cycles in {secs:.1} s ({:.0}/s), {failed} \
         failed (after {warm} to warm up)",
        n as f64 / secs
    );
    println!(
        "  server RSS {} KiB at the start, {} KiB peak, {} KiB at the end ({:+.1}%); descriptors \
         {fds0} at the start, {fds1} at the end",
        kib(rss0),
        kib(peak),
        kib(rss1),
        (rss1 as f64 / rss0 as f64 - 1.0) * 100.0
    );
    let ok = end.is_some()
        && failed == 0
        && (rss1 as f64) <= rss0 as f64 * 1.10
        && fds1 as f64 <= fds0 as f64 * 1.10;
    println!("  {}", if ok { "PASSED" } else { "FAILED" });
    ok
}

fn cycle(addr: SocketAddr, src: std::net::IpAddr) -> std::io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::new(src, 0).into())?;
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    let stream: TcpStream = sock.into();
    let mut ws = Ws::upgrade(stream, addr, "/", &[])?;
    ws.send(OpCode::Text, b"cycle")?;
    match ws.recv()? {
        Got::Text(t) if t == "cycle" => {}
        other => return Err(std::io::Error::other(format!("echo: {other:?}"))),
    }
    ws.close();
    Ok(())
}

/// A line plot of (seconds, bytes) as an SVG document.
fn rss_svg(samples: &[(f64, u64)], title: &str) -> String {
    let (w, h, pad) = (720.0, 320.0, 50.0);
    let tmax = samples.iter().map(|s| s.0).fold(1e-9, f64::max);
    let ymax = samples.iter().map(|s| s.1).max().unwrap_or(1).max(1) as f64 * 1.1;
    let x = |t: f64| pad + t / tmax * (w - 2.0 * pad);
    let y = |b: f64| h - pad - b / ymax * (h - 2.0 * pad);
    let points: Vec<String> = samples
        .iter()
        .map(|&(t, b)| format!("{:.1},{:.1}", x(t), y(b as f64)))
        .collect();
    let mib = ymax / (1 << 20) as f64;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{pad}\" y=\"20\" font-size=\"14\">{title}</text>\n\
         <line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\n\
         <text x=\"{pad}\" y=\"{lb}\">0 s</text><text x=\"{r}\" y=\"{lb}\" \
         text-anchor=\"end\">{tmax:.0} s</text>\n\
         <text x=\"5\" y=\"{pad}\">{mib:.1} MiB</text><text x=\"5\" y=\"{b}\">0</text>\n\
         <polyline fill=\"none\" stroke=\"#4f46e5\" stroke-width=\"2\" points=\"{pts}\"/>\n</svg>\n",
        b = h - pad,
        r = w - pad,
        lb = h - pad + 18.0,
        pts = points.join(" ")
    )
}
