//! Restarts: `stop_accepting` (listeners closed, established connections served),
//! `shutdown_with` (a chosen close code after everything queued: nothing published before the
//! call is lost), and the signal helper (SIGTERM starts the graceful shutdown).

mod util;

use std::net::TcpStream;
use std::time::Duration;

use util::*;
use volley::{AcceptMode, CloseCode, Context, Handler, Message, Request, Server, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("all");
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

fn stop_accepting_keeps_serving(mode: AcceptMode) {
    let s = TestServer::start(config().workers(2).accept_mode(mode), |_r: &Request<'_>| {
        Upgrade::accept(Echo)
    });
    let mut a = Client::connect(s.addr);
    a.send_text("before");
    assert_eq!(a.recv_text(), "before");
    s.handle.stop_accepting();
    wait_until(5, "the listeners to close", || {
        TcpStream::connect(s.addr).is_err()
    });
    a.send_text("still served");
    assert_eq!(a.recv_text(), "still served");
}

#[test]
fn stop_accepting_closes_the_listeners_and_keeps_serving() {
    stop_accepting_keeps_serving(AcceptMode::ReusePort);
}

#[test]
fn stop_accepting_in_acceptor_mode() {
    stop_accepting_keeps_serving(AcceptMode::Acceptor);
}

#[test]
fn shutdown_with_delivers_everything_queued_before_the_close_frame() {
    let server = Server::builder()
        .config(config().workers(2))
        .bind("127.0.0.1:0")
        .start(|_r: &Request<'_>| Upgrade::accept(Echo))
        .unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    let runner = std::thread::spawn(move || server.run());
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    wait_until(5, "subscribed", || handle.subscriber_count("all") == 4);
    // Published from another thread, then the shutdown right away: every message must reach
    // every client, in order, before the 1012 close.
    for i in 0..200 {
        handle.publish("all", format!("m{i}"));
    }
    handle.shutdown_with(
        CloseCode::SERVICE_RESTART,
        "restarting",
        Duration::from_secs(3),
    );
    for c in &mut clients {
        for i in 0..200 {
            assert_eq!(c.recv_text(), format!("m{i}"));
        }
        let close = c.expect_close().expect("a close frame with a code");
        assert_eq!(close.code, CloseCode::SERVICE_RESTART);
        assert_eq!(close.reason, "restarting");
        c.send_close(1012, "");
    }
    runner.join().unwrap().unwrap();
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

#[cfg(unix)]
#[test]
fn sigterm_starts_a_graceful_shutdown() {
    let server = Server::builder()
        .config(config().workers(1))
        .bind("127.0.0.1:0")
        .start(|_r: &Request<'_>| Upgrade::accept(Echo))
        .unwrap();
    let (addr, handle) = (server.local_addr(), server.handle());
    // Installed before it returns: the signal below cannot reach the default action.
    let guard = handle
        .shutdown_on_signals(CloseCode::SERVICE_RESTART, "signal", Duration::from_secs(2))
        .unwrap();
    let runner = std::thread::spawn(move || server.run());
    let mut c = Client::connect(addr);
    c.send_text("hi");
    assert_eq!(c.recv_text(), "hi");
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    let close = c.expect_close().expect("a close frame");
    assert_eq!(close.code, CloseCode::SERVICE_RESTART);
    c.send_close(1012, "");
    runner.join().unwrap().unwrap();
    drop(guard);
}
