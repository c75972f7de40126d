//! The soak itself: healthy echo and room clients that check every message they get back
//! (lost, reordered, corrupted), run beside the abusers for the set time, then the verdict.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use volley::protocol::frame::OpCode;

use super::client::{Got, Ws};
use super::{abuse, cycle, rss_svg, server_sample, settle, test_rng, Opts};
use crate::hist::Hist;

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

pub(super) fn soak(o: &Opts) -> bool {
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
