//! Server life: handles from other threads, stale ids, graceful shutdown, backpressure policies,
//! handler panics, statistics.

mod util;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use util::*;
use volley::{
    BackpressurePolicy, CloseCode, CloseFrame, ConnHandle, Context, Handler, Message, Request,
    Upgrade,
};

/// Hands each connection's handle to the test; echoes; panics on "panic".
struct H {
    handles: mpsc::Sender<ConnHandle>,
    closes: mpsc::Sender<CloseFrame>,
}
impl Handler for H {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let _ = self.handles.send(ctx.handle());
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if msg.as_text() == Some("panic") {
            panic!("handler bug");
        }
        if let Some(n) = msg.as_text().and_then(|t| t.strip_prefix("flood ")) {
            // Queue many 64 KiB messages without waiting for the socket.
            let chunk = Message::binary(vec![7u8; 64 << 10]);
            for _ in 0..n.parse::<usize>().unwrap() {
                let _ = ctx.send(chunk.clone());
            }
            return;
        }
        let _ = ctx.send(msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, f: CloseFrame) {
        let _ = self.closes.send(f);
    }
}

fn start(
    cfg: volley::Config,
) -> (
    TestServer,
    mpsc::Receiver<ConnHandle>,
    mpsc::Receiver<CloseFrame>,
) {
    let (htx, hrx) = mpsc::channel();
    let (ctx, crx) = mpsc::channel();
    let f = Mutex::new((htx, ctx));
    let s = TestServer::start(cfg, move |_r: &Request<'_>| {
        let g = f.lock().unwrap();
        Upgrade::accept(H {
            handles: g.0.clone(),
            closes: g.1.clone(),
        })
    });
    (s, hrx, crx)
}

#[test]
fn handle_sends_from_another_thread() {
    let (s, hrx, _) = start(config());
    let mut c = Client::connect(s.addr);
    let h = hrx.recv_timeout(Duration::from_secs(5)).unwrap();
    std::thread::spawn(move || {
        h.send("from afar").unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(c.recv_text(), "from afar");
}

#[test]
fn stale_handle_never_reaches_a_new_connection() {
    // One worker, so the new connection reuses the freed slot.
    let (s, hrx, crx) = start(config().workers(1));
    let c1 = Client::connect(s.addr);
    let h1 = hrx.recv_timeout(Duration::from_secs(5)).unwrap();
    drop(c1);
    crx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut c2 = Client::connect(s.addr);
    let h2 = hrx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(h1.id(), h2.id());
    h1.send("stale").unwrap();
    h2.send("fresh").unwrap();
    assert_eq!(c2.recv_text(), "fresh");
    assert!(c2.silent_for(200));
}

#[test]
fn handle_can_close_with_code() {
    let (s, hrx, crx) = start(config());
    let mut c = Client::connect(s.addr);
    let h = hrx.recv_timeout(Duration::from_secs(5)).unwrap();
    h.close(CloseCode(4000), "kicked").unwrap();
    let f = c.expect_close().unwrap();
    assert_eq!((f.code, f.reason.as_str()), (CloseCode(4000), "kicked"));
    c.send_close(4000, "");
    c.expect_eof();
    assert_eq!(
        crx.recv_timeout(Duration::from_secs(5)).unwrap().code,
        CloseCode(4000)
    );
}

#[test]
fn graceful_shutdown_closes_everyone_with_1001() {
    let (s, _hrx, crx) = start(config());
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(s.addr)).collect();
    for c in &mut clients {
        c.send_text("x");
        assert_eq!(c.recv_text(), "x");
    }
    let handle = s.handle.clone();
    let t = std::thread::spawn(move || s.stop());
    for c in &mut clients {
        let f = c.expect_close().unwrap();
        assert_eq!(f.code, CloseCode::GOING_AWAY);
        c.send_close(1001, "");
    }
    t.join().unwrap();
    for _ in 0..6 {
        let f = crx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(f.code, CloseCode::GOING_AWAY);
    }
    assert_eq!(handle.stats().connections_open, 0);
    assert!(
        std::net::TcpStream::connect(handle.local_addr()).is_err(),
        "still accepting"
    );
}

#[test]
fn shutdown_is_bounded_when_peers_never_answer() {
    let (s, _hrx, crx) = start(config().close_timeout(Duration::from_millis(300)));
    let _silent = Client::connect(s.addr);
    let t = std::time::Instant::now();
    s.stop();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let f = crx.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(f.code, CloseCode::ABNORMAL);
}

#[test]
fn slow_consumer_is_closed_and_others_unaffected() {
    let cfg = config()
        .max_outbound_bytes(1 << 20)
        .backpressure(BackpressurePolicy::Close);
    let (s, _hrx, crx) = start(cfg);
    let mut slow = Client::connect(s.addr);
    let mut fast = Client::connect(s.addr);
    slow.send_text("flood 200"); // 12.5 MiB, far over the 1 MiB limit; never read
    let f = crx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        f.code,
        CloseCode::ABNORMAL,
        "the close frame cannot get through a full socket"
    );
    util::wait_until(5, "slow consumer counted", || {
        s.handle.stats().slow_consumers_closed == 1
    });
    fast.send_text("hello");
    assert_eq!(fast.recv_text(), "hello");
    drop(slow);
}

#[test]
fn drop_policy_drops_and_counts() {
    let cfg = config()
        .max_outbound_bytes(1 << 20)
        .backpressure(BackpressurePolicy::Drop);
    let (s, _hrx, _crx) = start(cfg);
    let mut c = Client::connect(s.addr);
    c.send_text("flood 200");
    util::wait_until(5, "drops counted", || s.handle.stats().dropped_messages > 0);
    // The connection stays open; every message it does get is intact.
    let mut got = 0;
    loop {
        let m = c.recv();
        if m.as_text() == Some("after") {
            break;
        }
        assert_eq!(m.len(), 64 << 10);
        got += 1;
        if got == 1 {
            c.send_text("after");
        }
    }
    let st = s.handle.stats();
    assert!(
        got as u64 + st.dropped_messages >= 200,
        "{got} + {}",
        st.dropped_messages
    );
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    let (s, _hrx, _crx) = start(config().workers(1));
    let mut bad = Client::connect(s.addr);
    let mut good = Client::connect(s.addr);
    bad.send_text("panic");
    bad.expect_close_code(CloseCode::INTERNAL);
    good.send_text("alive");
    assert_eq!(good.recv_text(), "alive");
}

#[test]
fn stats_count_traffic() {
    let (s, _hrx, _crx) = start(config());
    let mut c = Client::connect(s.addr);
    for i in 0..10 {
        c.send_text(&format!("m{i}"));
        assert_eq!(c.recv_text(), format!("m{i}"));
    }
    util::wait_until(5, "stats", || {
        let st = s.handle.stats();
        st.messages_in == 10
            && st.messages_out == 10
            && st.bytes_in == 20
            && st.connections_open == 1
    });
    let st = s.handle.stats();
    assert_eq!(st.connections_total, 1);
    assert!(st.bytes_out >= 40, "{st:?}");
    drop(c);
    util::wait_until(5, "closed", || s.handle.stats().connections_open == 0);
}

#[test]
fn acceptor_mode_serves_too() {
    let (s, _hrx, _crx) = start(config().accept_mode(volley::AcceptMode::Acceptor));
    let mut cs: Vec<Client> = (0..8).map(|_| Client::connect(s.addr)).collect();
    for (i, c) in cs.iter_mut().enumerate() {
        c.send_text(&i.to_string());
        assert_eq!(c.recv_text(), i.to_string());
    }
    let _ = Arc::new(());
}

/// Sends 100 messages of 64 KiB at once to a client that does not read, and reports what each
/// send returned.
struct Flood(mpsc::Sender<Vec<String>>);
impl Handler for Flood {
    fn on_message(&mut self, ctx: &mut Context<'_>, _msg: Message) {
        let chunk = Message::binary(vec![7u8; 64 << 10]);
        let outcomes = (0..100)
            .map(|_| match ctx.send(chunk.clone()) {
                Ok(()) => "queued".to_string(),
                Err(volley::Error::OutboundFull { queued, max }) => {
                    assert!(queued > 0 && queued + (64 << 10) > max, "{queued} of {max}");
                    "refused".to_string()
                }
                Err(volley::Error::Closed) => "closed".to_string(),
                Err(e) => format!("{e}"),
            })
            .collect();
        let _ = self.0.send(outcomes);
    }
}

/// Every send says whether it was queued: `Ok`, or `Error::OutboundFull` when the backpressure
/// policy refused it; under `Close` the sends after that one are `Error::Closed`.
#[test]
fn sends_report_whether_they_were_queued_or_refused() {
    for policy in [BackpressurePolicy::Drop, BackpressurePolicy::Close] {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let cfg = config().max_outbound_bytes(1 << 20).backpressure(policy);
        let s = TestServer::start(cfg, move |_r: &Request<'_>| {
            Upgrade::accept(Flood(tx.lock().unwrap().clone()))
        });
        let mut c = Client::connect(s.addr);
        c.send_text("go");
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let count = |what: &str| got.iter().filter(|o| *o == what).count();
        let queued = count("queued");
        assert!(queued >= 16, "{policy:?}: {got:?}");
        assert_eq!(&got[..16], &vec!["queued".to_string(); 16][..]);
        match policy {
            BackpressurePolicy::Drop => {
                assert_eq!(queued + count("refused"), 100, "{got:?}");
                assert!(count("refused") > 0, "{got:?}");
                util::wait_until(5, "drops counted", || {
                    s.handle.stats().dropped_messages == count("refused") as u64
                });
            }
            _ => {
                assert_eq!(count("refused"), 1, "{got:?}");
                assert_eq!(queued + 1 + count("closed"), 100, "{got:?}");
                let first_refused = got.iter().position(|o| o == "refused").unwrap();
                assert!(got[first_refused + 1..].iter().all(|o| o == "closed"));
            }
        }
    }
}
