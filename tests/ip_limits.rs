//! Per-IP limits on the client address: open connections per IP, handshakes per IP per second
//! (429 with Retry-After), IPv6 grouped by prefix, and a table that stays bounded while an
//! attacker cycles through addresses. Client addresses are set with `X-Forwarded-For` from the
//! loopback, configured as a trusted proxy.

mod util;

use util::*;
use volley::{Context, Handler, Message, Rate, Request, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

fn from(addr: std::net::SocketAddr, ip: &str) -> Result<Client, String> {
    Client::connect_with(addr, "/", &[("X-Forwarded-For", ip)])
}

/// The refusal's response head (the upgrade must fail).
fn refused(addr: std::net::SocketAddr, ip: &str) -> String {
    match from(addr, ip) {
        Ok(_) => panic!("{ip} was let in"),
        Err(head) => head,
    }
}

#[test]
fn connections_per_ip_are_capped() {
    let cfg = config()
        .trusted_proxies(vec!["127.0.0.0/8".parse().unwrap()])
        .max_connections_per_ip(Some(2));
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    let mut a = from(s.addr, "203.0.113.1").unwrap();
    let _b = from(s.addr, "203.0.113.1").unwrap();
    let refused = refused(s.addr, "203.0.113.1");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("Retry-After: 1"), "{refused}");
    // Another address is not affected; one of the first closes and a slot frees up.
    let _other = from(s.addr, "203.0.113.2").unwrap();
    a.send_close(1000, "");
    a.expect_close();
    wait_until(5, "the slot to be released", || {
        from(s.addr, "203.0.113.1").is_ok()
    });
    assert!(s.handle.stats().rejected_per_ip >= 1);
}

#[test]
fn handshakes_per_ip_are_rate_limited_and_ipv6_is_grouped() {
    let cfg = config()
        .trusted_proxies(vec!["127.0.0.0/8".parse().unwrap()])
        .handshakes_per_ip(Some(Rate::new(0.5, 3)));
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    // A burst of 3, then 429 with the seconds until the next token (2 s at 0.5/s).
    let kept: Vec<Client> = (0..3)
        .map(|_| from(s.addr, "198.51.100.7").unwrap())
        .collect();
    let refused = refused(s.addr, "198.51.100.7");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("Retry-After: 2"), "{refused}");
    // Two addresses of one /64 share a bucket; another /64 has its own.
    for i in 1..=3 {
        from(s.addr, &format!("2001:db8:1:2::{i}")).unwrap();
    }
    assert!(from(s.addr, "2001:db8:1:2:ffff::9").is_err());
    assert!(from(s.addr, "2001:db8:1:3::1").is_ok());
    drop(kept);
}

#[test]
fn the_table_stays_bounded_under_address_cycling() {
    let cfg = config()
        .trusted_proxies(vec!["127.0.0.0/8".parse().unwrap()])
        .handshakes_per_ip(Some(Rate::new(10.0, 10)))
        .max_tracked_ips(100);
    let s = TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    let keep = from(s.addr, "192.0.2.1").unwrap();
    // 2,000 distinct addresses, each connecting once and leaving.
    for i in 0..2_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let mut c = from(s.addr, &ip).unwrap();
        c.send_close(1000, "");
        let _ = c.expect_close();
        assert!(
            s.handle.tracked_ips() <= 101 + 1,
            "{} tracked",
            s.handle.tracked_ips()
        );
    }
    // The address with an open connection was never forgotten: its count still holds.
    assert!(s.handle.tracked_ips() >= 1);
    drop(keep);
}
