//! Heartbeats and timeouts with short settings over real sockets: dead peers are dropped within
//! ping interval + pong timeout, busy peers never are, idle and handler timers fire.

mod util;

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use util::*;
use volley::protocol::frame::OpCode;
use volley::{CloseCode, CloseFrame, Context, Handler, Message, Request, Upgrade};

struct H {
    closes: mpsc::Sender<(CloseFrame, Instant)>,
    auth: bool,
}
impl Handler for H {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        if self.auth {
            ctx.set_timer(Duration::from_millis(300), 7);
        }
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if msg.as_text() == Some("login") {
            ctx.cancel_timer(7);
        }
        let _ = ctx.send(msg);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, id: u64) {
        assert_eq!(id, 7);
        ctx.close(CloseCode(4001), "authenticate first");
    }
    fn on_close(&mut self, _: &mut Context<'_>, f: CloseFrame) {
        let _ = self.closes.send((f, Instant::now()));
    }
}

fn start(cfg: volley::Config, auth: bool) -> (TestServer, mpsc::Receiver<(CloseFrame, Instant)>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let s = TestServer::start(cfg, move |_r: &Request<'_>| {
        Upgrade::accept(H {
            closes: tx.lock().unwrap().clone(),
            auth,
        })
    });
    (s, rx)
}

#[test]
fn silent_peer_is_pinged_then_dropped_with_1006() {
    let iv = Duration::from_millis(200);
    let pong = Duration::from_millis(200);
    let (s, rx) = start(config().ping_interval(Some(iv)).pong_timeout(pong), false);
    let mut c = Client::connect(s.addr);
    let t0 = Instant::now();
    // The client sees the ping but does not answer.
    assert!(matches!(c.next(), Got::Ping(_)));
    let (f, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(f.code, CloseCode::ABNORMAL);
    assert_eq!(f.reason, "timeout");
    let took = at - t0;
    assert!(took >= iv + pong - Duration::from_millis(20), "{took:?}");
    assert!(
        took <= iv + pong + Duration::from_millis(150),
        "dropped late: {took:?}"
    );
    assert_eq!(c.next(), Got::Eof);
    wait_until(5, "timeout counted", || s.handle.stats().timeouts == 1);
}

#[test]
fn peer_answering_pings_stays() {
    // A pong timeout much longer than the interval: pings must still come every interval.
    let (s, rx) = start(
        config()
            .ping_interval(Some(Duration::from_millis(100)))
            .pong_timeout(Duration::from_secs(5)),
        false,
    );
    let mut c = Client::connect(s.addr);
    let end = Instant::now() + Duration::from_millis(1000);
    let mut pings = 0;
    while Instant::now() < end {
        c.stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        match c.next_timeout() {
            Some(Got::Ping(p)) => {
                pings += 1;
                c.send_frame(OpCode::Pong, true, &p);
            }
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    assert!(pings >= 6, "{pings} pings in 1 s at a 100 ms interval");
    assert!(rx.try_recv().is_err(), "closed a live peer");
}

#[test]
fn busy_peer_is_never_pinged_or_dropped() {
    let (s, rx) = start(
        config()
            .ping_interval(Some(Duration::from_millis(150)))
            .pong_timeout(Duration::from_millis(100)),
        false,
    );
    let mut c = Client::connect(s.addr);
    let end = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < end {
        c.send_text("busy");
        match c.next() {
            Got::Msg(m) => assert_eq!(m.as_text(), Some("busy")),
            other => panic!("a busy peer got {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(rx.try_recv().is_err());
}

#[test]
fn idle_timeout_closes_with_1000() {
    let (s, rx) = start(
        config()
            .ping_interval(None)
            .idle_timeout(Some(Duration::from_millis(300))),
        false,
    );
    let mut c = Client::connect(s.addr);
    let f = c.expect_close().unwrap();
    assert_eq!(
        (f.code, f.reason.as_str()),
        (CloseCode::NORMAL, "idle timeout")
    );
    c.send_close(1000, "");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap().0.code,
        CloseCode::NORMAL
    );
}

#[test]
fn handler_timer_closes_unauthenticated_with_4001() {
    let (s, _rx) = start(config(), true);
    let mut late = Client::connect(s.addr);
    let mut prompt = Client::connect(s.addr);
    prompt.send_text("login");
    assert_eq!(prompt.recv_text(), "login");
    let f = late.expect_close().unwrap();
    assert_eq!(f.code, CloseCode(4001));
    assert!(prompt.silent_for(400), "an authenticated client was closed");
}

#[test]
fn close_timeout_drops_peer_that_never_answers_close() {
    let (s, rx) = start(config().close_timeout(Duration::from_millis(300)), true);
    let mut c = Client::connect(s.addr);
    // The auth timer closes with 4001; we never answer the close frame.
    assert_eq!(c.expect_close().unwrap().code, CloseCode(4001));
    let (f, _) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(f.code, CloseCode::ABNORMAL);
    assert_eq!(c.next(), Got::Eof);
}

struct Idle;
impl Handler for Idle {}

/// A client that sends part of a request and its FIN at once (both arrive before the worker
/// reads) is dropped when the FIN is seen, not at the handshake timeout: a short read does not
/// end the read loop when the readiness event already reported the peer's end.
#[test]
fn data_and_fin_in_one_event_end_the_connection_at_once() {
    let s = TestServer::start(
        config().handshake_timeout(Some(Duration::from_secs(30))),
        |_r: &Request<'_>| Upgrade::accept(Idle),
    );
    for _ in 0..20 {
        let mut c = std::net::TcpStream::connect(s.addr).unwrap();
        std::io::Write::write_all(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut b = [0u8; 64];
        let t = Instant::now();
        let n = std::io::Read::read(&mut c, &mut b);
        assert!(
            matches!(n, Ok(0)),
            "the server kept the connection ({n:?} after {:?})",
            t.elapsed()
        );
    }
}

/// Closes the connection from a handler timer, `after` its open.
struct CloseLater {
    after: Duration,
    closes: mpsc::Sender<(CloseFrame, Instant)>,
}
impl Handler for CloseLater {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(self.after, 1);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        ctx.close(CloseCode::NORMAL, "bye");
    }
    fn on_close(&mut self, _: &mut Context<'_>, f: CloseFrame) {
        let _ = self.closes.send((f, Instant::now()));
    }
}

/// The close deadline outlives the heartbeat: a peer pinged before our close frame, that then
/// keeps streaming a large frame (read straight into its frame buffer) and never answers the
/// close, is dropped `close_timeout` after the close frame, not a ping interval later.
#[test]
fn close_timeout_holds_while_the_peer_streams_a_large_frame() {
    let iv = Duration::from_millis(1500);
    let close_timeout = Duration::from_millis(300);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let cfg = config()
        .ping_interval(Some(iv))
        .pong_timeout(Duration::from_secs(30))
        .close_timeout(close_timeout);
    let s = TestServer::start(cfg, move |_r: &Request<'_>| {
        Upgrade::accept(CloseLater {
            after: iv + Duration::from_millis(300),
            closes: tx.lock().unwrap().clone(),
        })
    });
    let mut c = Client::connect(s.addr);
    // The start of a 4 MiB binary frame: its header and 64 KiB, then silence until the ping.
    let len = 4 << 20;
    let frame = volley::protocol::frame::Frame::binary(&vec![7u8; len])
        .masked([1, 2, 3, 4])
        .encode();
    c.send_raw(&frame[..64 << 10]);
    assert!(
        matches!(c.next(), Got::Ping(_)),
        "the heartbeat pings first"
    );
    // Our timer closes; the peer does not answer the close but sends on, 16 KiB every 20 ms.
    let Got::Close(Some(f)) = c.next() else {
        panic!("expected the server's close frame")
    };
    assert_eq!(f.code, CloseCode::NORMAL);
    let closed_at = Instant::now();
    let mut writer = c.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        for chunk in frame[64 << 10..].chunks(16 << 10) {
            if writer.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (f, dropped_at) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(f.code, CloseCode::ABNORMAL);
    assert_eq!(f.reason, "close timeout");
    let took = dropped_at - closed_at;
    assert!(
        took < close_timeout + Duration::from_millis(700),
        "dropped {took:?} after the close frame; the close timeout is {close_timeout:?}"
    );
    assert_eq!(c.next(), Got::Eof);
    sender.join().unwrap();
}
