//! The client's real address behind proxies: the PROXY protocol (v1 and v2, IPv4 and IPv6) on a
//! listener that expects it, the forwarding headers of trusted proxies (the right-most untrusted
//! hop wins), spoofed headers from anyone else ignored, and a bad PROXY header closing only its
//! own socket.

mod util;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use util::*;
use volley::protocol::proxy::V2_SIGNATURE;
use volley::{Context, Factory, Handler, Message, Request, Response, Upgrade};

/// Answers any message with "peer CLIENT_ADDR" as the connection saw it.
struct Who;
impl Handler for Who {
    fn on_message(&mut self, ctx: &mut Context<'_>, _msg: Message) {
        let text = format!("client {}", ctx.client_addr());
        let _ = ctx.send_text(&text);
    }
}

struct App;
impl Factory for App {
    type Handler = Who;
    fn upgrade(&self, _req: &Request<'_>) -> Upgrade<Who> {
        Upgrade::accept(Who)
    }
    fn http(&self, req: &Request<'_>) -> Response {
        Response::ok("text/plain", format!("client {}", req.client_addr()))
    }
}

/// A raw HTTP request after `prefix` (a PROXY header); the response body.
fn http_body(addr: SocketAddr, prefix: &[u8], headers: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(prefix).unwrap();
    s.write_all(format!("GET /who HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(out)
}

fn v2_ipv6(src: &str, port: u16) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.extend_from_slice(&[0x21, 0x21, 0, 36]);
    v.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&443u16.to_be_bytes());
    v
}

#[test]
fn proxy_protocol_v1_and_v2_give_the_client_address() {
    let s = TestServer::start(config().workers(1).proxy_protocol(true), App);
    let v1 = b"PROXY TCP4 203.0.113.7 198.51.100.1 51000 443\r\n";
    assert_eq!(http_body(s.addr, v1, ""), "client 203.0.113.7:51000");
    let v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51001 443\r\n";
    assert_eq!(http_body(s.addr, v1_6, ""), "client [2001:db8::7]:51001");
    assert_eq!(
        http_body(s.addr, &v2_ipv6("2001:db8::9", 51002), ""),
        "client [2001:db8::9]:51002"
    );
    let mut v2_4 = V2_SIGNATURE.to_vec();
    v2_4.extend_from_slice(&[
        0x21, 0x11, 0, 12, 192, 0, 2, 10, 127, 0, 0, 1, 0xC8, 0x0B, 1, 187,
    ]);
    assert_eq!(http_body(s.addr, &v2_4, ""), "client 192.0.2.10:51211");

    // Over a WebSocket too: the handler's context has it.
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .write_all(b"PROXY TCP4 203.0.113.50 198.51.100.1 40000 443\r\n")
        .unwrap();
    let mut c = Client::over(stream, "/").expect("upgrade");
    c.send_text("who?");
    assert_eq!(c.recv_text(), "client 203.0.113.50:40000");
}

#[test]
fn a_bad_proxy_header_closes_only_that_socket() {
    let s = TestServer::start(config().workers(1).proxy_protocol(true), App);
    let mut good = TcpStream::connect(s.addr).unwrap();
    good.write_all(b"PROXY TCP4 203.0.113.1 198.51.100.1 1000 443\r\n")
        .unwrap();
    let mut good = Client::over(good, "/").expect("upgrade");
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PROXY TCP4 not-an-ip 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 203.0.113.1 198.51.100.1 99999 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ] {
        let mut s2 = TcpStream::connect(s.addr).unwrap();
        s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s2.write_all(bad).unwrap();
        let mut out = Vec::new();
        // Closed without an answer (no HTTP parsing of a connection that failed its header).
        let _ = s2.read_to_end(&mut out);
        assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    }
    good.send_text("still here");
    assert_eq!(good.recv_text(), "client 203.0.113.1:1000");
}

#[test]
fn forwarding_headers_count_only_from_trusted_proxies() {
    // Untrusted: loopback is not in the list, so the headers are a client's claim, ignored.
    let s = TestServer::start(
        config().trusted_proxies(vec!["10.0.0.0/8".parse().unwrap()]),
        App,
    );
    let body = http_body(s.addr, b"", "X-Forwarded-For: 203.0.113.9\r\n");
    assert!(body.starts_with("client 127.0.0.1:"), "{body}");

    // Trusted loopback and 10/8: the right-most hop that is not a trusted proxy wins.
    let s = TestServer::start(
        config().trusted_proxies(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]),
        App,
    );
    let xff = "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nX-Forwarded-For: 10.1.2.3\r\n";
    assert_eq!(http_body(s.addr, b"", xff), "client 203.0.113.9:0");
    let fwd = "Forwarded: for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"\r\n";
    assert_eq!(http_body(s.addr, b"", fwd), "client [2001:db8::17]:0");
    // Every hop trusted: the left-most one.
    assert_eq!(
        http_body(s.addr, b"", "X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n"),
        "client 10.0.0.1:0"
    );
    // An unparsable hop stops the walk at the last address known.
    let body = http_body(s.addr, b"", "X-Forwarded-For: 203.0.113.9, bogus\r\n");
    assert!(body.starts_with("client 127.0.0.1:"), "{body}");
}
