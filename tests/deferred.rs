//! Deferred upgrades: `Request::defer` parks a connection while another thread decides; the
//! worker keeps serving everyone else; the handshake timeout, a client that leaves, and a
//! dropped handle all end the wait with the right answer.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::*;
use volley::protocol::frame::Frame;
use volley::{Context, Error, Handler, Message, PendingUpgrade, Request, Response, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

/// A deferred upgrade as the factory hands it out: the `token` query parameter, when the
/// request arrived, and the handle.
type Deferral = (String, Instant, PendingUpgrade<Echo>);

/// A factory that defers `/slow*` requests, handing the pending upgrades to `tx`, and accepts
/// the rest at once.
fn deferring(tx: mpsc::Sender<Deferral>) -> impl Fn(&Request<'_>) -> Upgrade<Echo> + Send + Sync {
    let tx = Mutex::new(tx);
    move |req: &Request<'_>| {
        if req.path().starts_with("/slow") {
            let (up, pending) = req.defer();
            let token = req.query_param("token").unwrap_or_default().into_owned();
            let _ = tx.lock().unwrap().send((token, Instant::now(), pending));
            up
        } else {
            Upgrade::accept(Echo)
        }
    }
}

/// The response head a raw request gets (up to the blank line).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Send one masked text frame and read its unmasked echo (payloads under 126 bytes).
fn echo_raw(s: &mut TcpStream, text: &str) -> String {
    s.write_all(&Frame::text(text.as_bytes()).masked([1, 2, 3, 4]).encode())
        .unwrap();
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).unwrap();
    assert_eq!(hdr[0], 0x81, "a final text frame");
    let mut payload = vec![0u8; usize::from(hdr[1] & 0x7f)];
    s.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

#[test]
fn a_thousand_deferred_upgrades_do_not_slow_anyone_else() {
    const N: usize = 1000;
    let delay = Duration::from_millis(200);
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(config(), deferring(tx));
    // A thread pool decides each upgrade 200 ms after it arrived.
    let rx = Arc::new(Mutex::new(rx));
    const THREADS: usize = 4;
    let pool: Vec<_> = (0..THREADS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                for _ in 0..N / THREADS {
                    let next = rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
                    let (_, arrived, pending) = next.expect("a deferred upgrade");
                    let pending: PendingUpgrade<Echo> = pending;
                    let due = arrived + delay;
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    pending.accept(Echo).expect("the client is still there");
                }
            })
        })
        .collect();

    let mut echo = Client::connect(s.addr);
    let rtt = |echo: &mut Client| {
        let t = Instant::now();
        echo.send_text("ping");
        assert_eq!(echo.recv_text(), "ping");
        t.elapsed()
    };
    let baseline: Vec<Duration> = (0..50).map(|_| rtt(&mut echo)).collect();

    let start = Instant::now();
    let mut socks: Vec<TcpStream> = (0..N)
        .map(|i| {
            let mut s = TcpStream::connect(s.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(upgrade_request(&format!("/slow?n={i}"), "").as_bytes())
                .unwrap();
            s
        })
        .collect();
    let sent = start.elapsed();
    // Echo round trips while the decisions are pending (and as they land).
    let mut during = Vec::new();
    while start.elapsed() < delay + Duration::from_millis(150) {
        during.push(rtt(&mut echo));
    }
    for (i, sock) in socks.iter_mut().enumerate() {
        let head = read_head(sock);
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade {i}: {head:?}");
    }
    let answered = start.elapsed();
    // Every connection is open and served by the handler the pool made.
    for (i, sock) in socks.iter_mut().enumerate().step_by(50) {
        assert_eq!(echo_raw(sock, &format!("hi {i}")), format!("hi {i}"));
    }
    let p99 = |v: &mut Vec<Duration>| {
        v.sort();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    };
    let mut baseline = baseline;
    let (base99, during99) = (p99(&mut baseline), p99(&mut during));
    eprintln!(
        "{N} requests sent in {sent:?}, all answered after {answered:?}; echo p99 {base99:?} \
         before, {during99:?} during ({} round trips)",
        during.len()
    );
    assert!(answered >= delay, "the upgrades waited for their decision");
    assert!(
        during.len() >= 20,
        "the echo client was served throughout ({} round trips)",
        during.len()
    );
    assert!(
        during99 < Duration::from_millis(50).max(base99 * 10),
        "echo p99 {during99:?} while upgrades were deferred (before: {base99:?})"
    );
    assert_eq!(s.handle.stats().upgrades_deferred, N as u64);
    drop(socks);
    for t in pool {
        t.join().unwrap();
    }
}

#[test]
fn a_deferred_upgrade_can_be_refused_from_another_thread() {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(config(), deferring(tx));
    let decider = std::thread::spawn(move || {
        for _ in 0..2 {
            let (token, _, pending): Deferral = rx.recv().unwrap();
            if token == "good" {
                pending.accept(Echo).unwrap();
            } else {
                pending
                    .reject(Response::new(401).body("bad token\n"))
                    .unwrap();
            }
        }
    });
    let refused = raw_request(s.addr, upgrade_request("/slow?token=bad", "").as_bytes());
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.ends_with("bad token\n"), "{refused}");
    let mut ok = Client::connect_with(s.addr, "/slow?token=good", &[]).expect("accepted");
    ok.send_text("through");
    assert_eq!(ok.recv_text(), "through");
    decider.join().unwrap();
    assert_eq!(s.handle.stats().rejected_by_application, 1);
}

#[test]
fn frames_sent_before_the_decision_are_handled_after_it() {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(config(), deferring(tx));
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A pipelining client: the request and a frame in one write, before any answer.
    let mut bytes = upgrade_request("/slow", "").into_bytes();
    bytes.extend_from_slice(&Frame::text(b"early").masked([9, 8, 7, 6]).encode());
    sock.write_all(&bytes).unwrap();
    let (_, _, pending): Deferral = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    pending.accept(Echo).unwrap();
    assert!(read_head(&mut sock).starts_with("HTTP/1.1 101"));
    let mut hdr = [0u8; 2];
    sock.read_exact(&mut hdr).unwrap();
    let mut payload = vec![0u8; usize::from(hdr[1])];
    sock.read_exact(&mut payload).unwrap();
    assert_eq!(payload, b"early");
}

#[test]
fn the_handle_knows_when_the_client_has_gone() {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(config(), deferring(tx));
    let mut sock = TcpStream::connect(s.addr).unwrap();
    sock.write_all(upgrade_request("/slow", "").as_bytes())
        .unwrap();
    let (_, _, pending): Deferral = rx.recv().unwrap();
    assert!(!pending.is_gone());
    drop(sock);
    wait_until(5, "the handle to see the client leave", || {
        pending.is_gone()
    });
    assert!(matches!(pending.accept(Echo), Err(Error::Closed)));
    wait_until(5, "the socket to be released", || {
        s.handle.stats().connections_open == 0
    });
    // The worker is fine: a new client is served.
    let mut c = Client::connect(s.addr);
    c.send_text("after");
    assert_eq!(c.recv_text(), "after");
}

#[test]
fn an_undecided_upgrade_gets_503_at_the_handshake_timeout() {
    let (tx, rx) = mpsc::channel();
    let cfg = config().handshake_timeout(Some(Duration::from_millis(300)));
    let s = TestServer::start(cfg, deferring(tx));
    let t = Instant::now();
    let resp = std::thread::spawn({
        let addr = s.addr;
        move || raw_request(addr, upgrade_request("/slow", "").as_bytes())
    });
    let (_, _, pending): Deferral = rx.recv().unwrap();
    let resp = resp.join().unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert!(pending.is_gone());
    assert!(matches!(pending.accept(Echo), Err(Error::Closed)));
    let st = s.handle.stats();
    assert_eq!((st.rejected_undecided, st.timeouts), (1, 1));
}

#[test]
fn a_dropped_handle_answers_500() {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start(config(), deferring(tx));
    let dropper = std::thread::spawn(move || {
        let (_, _, pending): Deferral = rx.recv().unwrap();
        drop(pending);
    });
    let resp = raw_request(s.addr, upgrade_request("/slow", "").as_bytes());
    assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
    dropper.join().unwrap();
}
