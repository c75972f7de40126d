//! Per-connection message and byte rate limits (`Config::message_rate`, `byte_rate`): over them
//! the connection is closed with 1008 or the message dropped, per the policy, and counted.

mod util;

use std::time::Duration;

use util::*;
use volley::{
    CloseCode, Context, Handler, Message, Rate, RateLimitPolicy, RateLimited, Request, Upgrade,
};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

#[test]
fn over_the_message_rate_closes_with_1008() {
    let cfg = config().message_rate(Some(Rate::new(1.0, 5)));
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    let mut c = Client::connect(s.addr);
    for i in 0..8 {
        c.send_text(&format!("m{i}"));
    }
    for i in 0..5 {
        assert_eq!(c.recv_text(), format!("m{i}"));
    }
    let close = c.expect_close().expect("a close frame");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::POLICY, "rate limit")
    );
    assert!(s.handle.stats().rate_limited >= 1);
}

#[test]
fn over_the_rate_drops_under_the_drop_policy_and_refills() {
    let cfg = config()
        .message_rate(Some(Rate::new(4.0, 3)))
        .rate_limit_policy(RateLimitPolicy::Drop);
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    let mut c = Client::connect(s.addr);
    for i in 0..6 {
        c.send_text(&format!("m{i}"));
    }
    for i in 0..3 {
        assert_eq!(c.recv_text(), format!("m{i}"));
    }
    // The rest were dropped, the connection is open, and the bucket refills (4 per second).
    assert!(c.silent_for(150));
    std::thread::sleep(Duration::from_millis(400));
    c.send_text("later");
    assert_eq!(c.recv_text(), "later");
    assert_eq!(s.handle.stats().rate_limited, 3);
}

#[test]
fn over_the_byte_rate_is_limited_too() {
    let cfg = config().byte_rate(Some(Rate::new(100.0, 3000)));
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    let mut c = Client::connect(s.addr);
    let kb = vec![7u8; 1000];
    for _ in 0..4 {
        c.send_binary(&kb);
    }
    for _ in 0..3 {
        assert_eq!(c.recv().len(), 1000);
    }
    c.expect_close_code(CloseCode::POLICY);
}

/// Tells the client about each refusal and closes after three in a row: what the chat does.
struct Strict;
impl Handler for Strict {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
    fn on_rate_limited(&mut self, ctx: &mut Context<'_>, info: RateLimited) {
        if info.in_a_row >= 3 {
            ctx.close(CloseCode::POLICY, "flooding");
        } else {
            let _ = ctx.send(format!("slow down {} ({} bytes)", info.in_a_row, info.len));
        }
    }
}

#[test]
fn the_handler_hears_of_each_refusal_and_can_close_after_strikes() {
    let cfg = config()
        .message_rate(Some(Rate::new(0.5, 2)))
        .rate_limit_policy(RateLimitPolicy::Drop);
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Strict));
    let mut c = Client::connect(s.addr);
    for m in ["a", "b", "cc", "ddd", "e"] {
        c.send_text(m);
    }
    assert_eq!(c.recv_text(), "a");
    assert_eq!(c.recv_text(), "b");
    assert_eq!(c.recv_text(), "slow down 1 (2 bytes)");
    assert_eq!(c.recv_text(), "slow down 2 (3 bytes)");
    let close = c.expect_close().expect("a close frame");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::POLICY, "flooding")
    );
    assert_eq!(s.handle.stats().rate_limited, 3);
}

#[test]
fn under_the_close_policy_the_handler_can_say_goodbye_first() {
    let cfg = config().message_rate(Some(Rate::new(0.1, 1)));
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Strict));
    let mut c = Client::connect(s.addr);
    c.send_text("a");
    c.send_text("b");
    assert_eq!(c.recv_text(), "a");
    assert_eq!(c.recv_text(), "slow down 1 (1 bytes)");
    let close = c.expect_close().expect("a close frame");
    assert_eq!(close.code, CloseCode::POLICY);
}
