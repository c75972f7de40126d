//! The hand-off without any async runtime (`ServerHandle::hand_off`, `Ticket::adopt`, awaited
//! with `block_on`): a plain thread that accepted a socket and read its head gives it to volley;
//! the per-IP count, the client address from trusted proxies and the handshake timeout work as
//! for volley's own listener.

mod util;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::*;
use volley::protocol::frame::Frame;
use volley::{
    block_on, Config, Context, Error, Factory, HandOff, HandOffHead, Handler, Message, Request,
    Server, ServerHandle, Upgrade,
};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

fn start<F: Factory>(config: Config, factory: F) -> ServerHandle {
    let server = Server::builder().config(config).without_listener();
    server.start(factory).expect("start").handle()
}

fn upgrade_head(peer: SocketAddr) -> HandOffHead {
    HandOffHead::new("GET", "/chat", peer)
        .header("Host", "x")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
}

fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

#[test]
fn a_socket_handed_over_by_a_plain_thread_is_served_with_its_early_bytes() {
    let volley = start(config(), |_r: &Request<'_>| Upgrade::accept(Echo));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut socket, peer) = listener.accept().unwrap();
    // The "other server" read the head and, past it, one frame.
    let early = Frame::text(b"early").masked([1, 2, 3, 4]).encode();
    let Ok(HandOff::Accept { headers, ticket }) = block_on(volley.hand_off(upgrade_head(peer)))
    else {
        panic!("not accepted");
    };
    let mut response = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for (name, value) in &headers {
        response.extend(format!("{name}: {value}\r\n").bytes());
    }
    response.extend(b"\r\n");
    socket.write_all(&response).unwrap();
    ticket.adopt(socket, early).unwrap();
    let mut c = Client::over_response(client);
    assert_eq!(c.recv_text(), "early");
    c.send_text("later");
    assert_eq!(c.recv_text(), "later");
    wait_until(5, "open", || volley.stats().connections_open == 1);
}

#[test]
fn a_dropped_ticket_gives_the_per_ip_count_back() {
    let cfg = config().max_connections_per_ip(Some(1));
    let volley = start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo));
    let first = block_on(volley.hand_off(upgrade_head(peer())));
    let Ok(HandOff::Accept { ticket, .. }) = first else {
        panic!("{first:?}");
    };
    let second = block_on(volley.hand_off(upgrade_head(peer())));
    let Ok(HandOff::Reject(resp)) = second else {
        panic!("{second:?}");
    };
    assert_eq!(resp.status(), 429);
    drop(ticket);
    wait_until(5, "the count released", || {
        let again = block_on(volley.hand_off(upgrade_head(peer())));
        matches!(again, Ok(HandOff::Accept { .. }))
    });
}

#[test]
fn the_factory_sees_the_client_behind_a_trusted_proxy() {
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let cfg = config().trusted_proxies(vec!["127.0.0.0/8".parse().unwrap()]);
    let volley = start(cfg, move |r: &Request<'_>| {
        *s.lock().unwrap() = Some((r.peer_addr(), r.client_addr(), r.path().to_string()));
        Upgrade::accept(Echo)
    });
    let head = upgrade_head(peer()).header("X-Forwarded-For", "203.0.113.7");
    assert!(matches!(
        block_on(volley.hand_off(head)),
        Ok(HandOff::Accept { .. })
    ));
    let (peer_addr, client, path) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(peer_addr, peer());
    assert_eq!(client.ip().to_string(), "203.0.113.7");
    assert_eq!(path, "/chat");
}

#[test]
fn an_undecided_deferred_hand_off_is_refused_at_the_handshake_timeout() {
    let parked = Arc::new(Mutex::new(Vec::new()));
    let p = parked.clone();
    let cfg = config().handshake_timeout(Some(Duration::from_millis(200)));
    let volley = start(cfg, move |r: &Request<'_>| {
        let (up, pending) = r.defer::<Echo>();
        p.lock().unwrap().push(pending); // never decided
        up
    });
    let answer = block_on(volley.hand_off(upgrade_head(peer())));
    let Ok(HandOff::Reject(resp)) = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(resp.status(), 503);
    assert!(parked.lock().unwrap()[0].is_gone());
}

#[test]
fn invalid_and_late_hand_offs_get_clear_answers() {
    let volley = start(config(), |_r: &Request<'_>| Upgrade::accept(Echo));
    let plain = HandOffHead::new("GET", "/", peer()).header("Host", "x");
    assert!(matches!(
        block_on(volley.hand_off(plain)),
        Err(Error::NotUpgrade)
    ));
    let no_key = HandOffHead::new("GET", "/", peer())
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Version", "13");
    let Ok(HandOff::Reject(resp)) = block_on(volley.hand_off(no_key)) else {
        panic!("an invalid upgrade is refused");
    };
    assert_eq!(resp.status(), 400);
    volley.shutdown();
    block_on(volley.stopped());
    let late = block_on(volley.hand_off(upgrade_head(peer())));
    assert!(matches!(late, Err(Error::ServerStopped)), "{late:?}");
}
