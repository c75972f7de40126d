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
//! (the echo harness, `scripts/harness/echo.rs`, does both). Blocking std sockets and threads: the point is variety, not
//! load.

mod abuse;
mod client;
mod soak;
#[path = "../../../src/protocol/test_rng.rs"]
mod test_rng;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use volley::protocol::frame::OpCode;

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
        None => soak::soak(&o),
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
