//! The opening handshake over real sockets: accept, subprotocols, rejections with their status
//! codes, plain HTTP, split and coalesced requests, connection caps.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::*;
use volley::{Context, Handler, Message, Request, Response, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

struct App;
impl volley::Factory for App {
    type Handler = Echo;
    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Echo> {
        if req.origin().is_some_and(|o| o != "http://good.example") {
            return Upgrade::reject(403, "origin not allowed\n");
        }
        if req.path() == "/private" && req.query_param("token").as_deref() != Some("s3cret") {
            return Upgrade::reject(401, "bad token\n");
        }
        match req.protocols().iter().find(|p| **p == "chat.v2") {
            Some(p) => Upgrade::accept_protocol(Echo, *p),
            None => Upgrade::accept(Echo),
        }
    }
    fn http(&self, req: &Request<'_>) -> Response {
        match req.path() {
            "/" => Response::ok("text/html", "<h1>hello</h1>"),
            "/health" => Response::ok("text/plain", "ok"),
            "/echo-room" => Response::ok(
                "text/plain",
                format!("[{}]", req.query_param("room").unwrap_or_default()),
            ),
            _ => Response::not_found(),
        }
    }
}

fn server() -> TestServer {
    TestServer::start(config(), App)
}

#[test]
fn upgrade_and_echo() {
    let s = server();
    let mut c = Client::connect(s.addr);
    assert!(c.response.starts_with("HTTP/1.1 101"));
    c.send_text("hello");
    assert_eq!(c.recv_text(), "hello");
    c.send_binary(&[1, 2, 3]);
    assert_eq!(c.recv(), Message::binary(vec![1u8, 2, 3]));
}

#[test]
fn accept_key_matches_rfc_example() {
    let s = server();
    let resp = raw_request(s.addr, upgrade_request("/", "").as_bytes());
    assert!(resp.starts_with("HTTP/1.1 101"), "{resp}");
    assert!(
        resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{resp}"
    );
}

#[test]
fn subprotocol_is_chosen_from_offers() {
    let s = server();
    let c = Client::connect_with(
        s.addr,
        "/",
        &[("Sec-WebSocket-Protocol", "chat.v1, chat.v2")],
    )
    .unwrap();
    assert!(
        c.response.contains("Sec-WebSocket-Protocol: chat.v2\r\n"),
        "{}",
        c.response
    );
    let c = Client::connect_with(s.addr, "/", &[("Sec-WebSocket-Protocol", "other")]).unwrap();
    assert!(!c
        .response
        .to_ascii_lowercase()
        .contains("sec-websocket-protocol"));
}

#[test]
fn origin_and_token_checks_reject() {
    let s = server();
    let r = Client::connect_with(s.addr, "/", &[("Origin", "http://evil.example")])
        .err()
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(Client::connect_with(s.addr, "/", &[("Origin", "http://good.example")]).is_ok());
    let r = Client::connect_with(s.addr, "/private?token=nope", &[])
        .err()
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(Client::connect_with(s.addr, "/private?token=s3cret", &[]).is_ok());
    util::wait_until(5, "rejections counted", || {
        s.handle.stats().handshakes_rejected == 2
    });
}

#[test]
fn plain_http_is_answered_by_the_factory() {
    let s = server();
    let r = raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("<h1>hello</h1>"), "{r}");
    let r = raw_request(s.addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

#[test]
fn query_parameters_are_percent_decoded() {
    let s = server();
    for (query, want) in [
        ("room=a%20b", "[a b]"),
        ("x=1&room=caf%C3%A9+au+lait", "[café au lait]"),
        ("r%6Fom=named%2Bescaped", "[named+escaped]"),
        ("room=bad%FFutf8", "[bad\u{fffd}utf8]"),
        ("room=%zz", "[%zz]"),
        ("other=1", "[]"),
    ] {
        let req = format!("GET /echo-room?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = raw_request(s.addr, req.as_bytes());
        assert!(r.ends_with(want), "{query}: {r}");
    }
}

#[test]
fn default_http_answer_is_426() {
    let s = TestServer::start(config(), |_r: &Request<'_>| Upgrade::accept(Echo));
    let r = raw_request(s.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
}

#[test]
fn bad_requests_get_their_status() {
    let s = server();
    let cases: Vec<(String, &str)> = vec![
        (
            upgrade_request("/", "").replace("Version: 13", "Version: 8"),
            "HTTP/1.1 426",
        ),
        (
            upgrade_request("/", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            "HTTP/1.1 400",
        ),
        (
            upgrade_request("/", "").replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
            "HTTP/1.1 400",
        ),
        (
            upgrade_request("/", "").replace("GET", "POST"),
            "HTTP/1.1 405",
        ),
        (
            upgrade_request("/", "").replace("HTTP/1.1", "HTTP/1.0"),
            "HTTP/1.1 400",
        ),
        (
            upgrade_request("/", "").replace("Connection: Upgrade", "Connection: keep-alive"),
            "HTTP/1.1 400",
        ),
        (
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03garbage\r\n\r\n".to_string(),
            "HTTP/1.1 400",
        ),
        (
            "GET / HTTP/1.1\r\nHost x\r\n\r\n".to_string(),
            "HTTP/1.1 400",
        ),
    ];
    for (req, want) in cases {
        let r = raw_request(s.addr, req.as_bytes());
        assert!(r.starts_with(want), "{req:?} -> {r:?}");
    }
    let r = raw_request(
        s.addr,
        upgrade_request("/", "")
            .replace("Version: 13", "Version: 8")
            .as_bytes(),
    );
    assert!(r.contains("Sec-WebSocket-Version: 13\r\n"), "{r}");
}

#[test]
fn connection_token_lists_any_case() {
    let s = server();
    let req = upgrade_request("/", "")
        .replace("Connection: Upgrade", "connection: keep-alive, UPGRADE")
        .replace("Upgrade: websocket", "upgrade: WebSocket");
    let r = raw_request(s.addr, req.as_bytes());
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
}

#[test]
fn oversized_headers_get_431() {
    let s = TestServer::start(config().max_handshake_bytes(1024), App);
    let big = format!("X-Big: {}\r\n", "a".repeat(2000));
    let r = raw_request(s.addr, upgrade_request("/", &big).as_bytes());
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // A client that never ends its headers is cut off at the limit too.
    let mut st = TcpStream::connect(s.addr).unwrap();
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    st.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    for _ in 0..100 {
        if st
            .write_all(b"X-Dribble: aaaaaaaaaaaaaaaaaaaa\r\n")
            .is_err()
        {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = st.read_to_end(&mut out);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"));
    let r = raw_request(
        s.addr,
        upgrade_request("/", &"X-H: v\r\n".repeat(100)).as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 431"), "too many headers: {r}");
}

#[test]
fn request_split_into_segments_and_coalesced_with_frames() {
    let s = server();
    // Byte by byte.
    let mut st = TcpStream::connect(s.addr).unwrap();
    st.set_nodelay(true).unwrap();
    for b in upgrade_request("/", "").as_bytes() {
        st.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut buf = [0u8; 1024];
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = st.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    // Request and the first frame in one write: the frame must not be lost.
    let mut st = TcpStream::connect(s.addr).unwrap();
    let mut bytes = upgrade_request("/", "").into_bytes();
    bytes.extend_from_slice(
        &volley::protocol::frame::Frame::text(b"early")
            .masked([1, 2, 3, 4])
            .encode(),
    );
    st.write_all(&bytes).unwrap();
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    while !got.windows(5).any(|w| w == b"early") {
        let n = st.read(&mut buf).unwrap();
        assert!(n > 0, "closed before echo");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn over_max_connections_gets_503() {
    let s = TestServer::start(config().max_connections(2), App);
    let _a = Client::connect(s.addr);
    let _b = Client::connect(s.addr);
    let r = raw_request(s.addr, upgrade_request("/", "").as_bytes());
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    drop(_a);
    util::wait_until(5, "slot freed", || {
        Client::connect_with(s.addr, "/", &[]).is_ok()
    });
}

#[test]
fn half_sent_handshake_is_dropped_at_the_timeout() {
    let s = TestServer::start(
        config().handshake_timeout(Some(Duration::from_millis(300))),
        App,
    );
    let mut st = TcpStream::connect(s.addr).unwrap();
    st.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    st.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = std::time::Instant::now();
    let mut b = [0u8; 16];
    let n = st.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to drop the socket");
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(250) && e < Duration::from_secs(3),
        "{e:?}"
    );
    util::wait_until(5, "timeout counted", || s.handle.stats().timeouts >= 1);
}
