//! The Prometheus exposition (`metrics` feature): served on the opted-in path, values that follow
//! the traffic the test causes, rejection reasons and close codes, a blocking handler visible in
//! the latency histograms, and `Request::server` reaching the server from a factory.
#![cfg(feature = "metrics")]

mod util;

use std::time::Duration;

use util::*;
use volley::{CloseCode, Context, Factory, Handler, Message, Request, Response, Server, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if msg.as_text() == Some("block") {
            // A timer due in 10 ms, for the loop-lag histogram to be late for.
            ctx.set_timer(Duration::from_millis(10), 1);
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = ctx.send(msg);
    }
}

/// Upgrades everything; `/health` reports open connections through `Request::server`.
struct App;
impl Factory for App {
    type Handler = Echo;
    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Echo> {
        if req.path() == "/private" {
            return Upgrade::reject(403, "no");
        }
        Upgrade::accept(Echo)
    }
    fn http(&self, req: &Request<'_>) -> Response {
        let open = req.server().stats().connections_open;
        Response::ok("text/plain", format!("open {open}"))
    }
}

fn start() -> (Server, std::net::SocketAddr) {
    let server = Server::builder()
        .config(config().workers(1))
        .bind("127.0.0.1:0")
        .metrics_path("/metrics")
        .start(App)
        .unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// The value of the sample `series` (name with labels, exactly as exposed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let resp = raw_request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = resp.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_owned()
}

#[test]
fn exposition_follows_the_traffic() {
    let (server, addr) = start();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    for t in ["one", "two", "three"] {
        a.send_text(t);
        assert_eq!(a.recv_text(), t);
    }
    b.send_binary(&[1, 2, 3]);
    assert_eq!(b.recv().as_bytes(), &[1, 2, 3]);
    // Rejections by reason: a bad version (426) and the application's refusal.
    let bad = upgrade_request("/", "").replace("Version: 13", "Version: 8");
    assert!(raw_request(addr, bad.as_bytes()).starts_with("HTTP/1.1 426"));
    assert!(
        raw_request(addr, upgrade_request("/private", "").as_bytes()).starts_with("HTTP/1.1 403")
    );
    // The factory reaches the server's statistics without globals.
    let health = raw_request(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.ends_with("open 2"), "{health}");

    let text = scrape(addr);
    assert_eq!(value(&text, "volley_connections_open{worker=\"0\"}"), 2.0);
    assert_eq!(value(&text, "volley_connections_total"), 2.0);
    assert_eq!(
        value(&text, "volley_messages_received_total{opcode=\"text\"}"),
        3.0
    );
    assert_eq!(
        value(&text, "volley_messages_received_total{opcode=\"binary\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "volley_messages_sent_total{opcode=\"text\"}"),
        3.0
    );
    assert_eq!(value(&text, "volley_bytes_received_total"), 14.0);
    assert_eq!(
        value(
            &text,
            "volley_handshakes_rejected_total{reason=\"version\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "volley_handshakes_rejected_total{reason=\"application\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "volley_handler_duration_seconds_count"), 4.0);
    assert!(value(&text, "volley_bytes_sent_total") > 0.0);

    a.send_close(1000, "bye");
    a.expect_close_code(CloseCode::NORMAL);
    drop(b); // no close frame: 1006
    wait_until(5, "both closed", || {
        server.handle().stats().connections_open == 0
    });
    let text = server.handle().metrics();
    assert_eq!(value(&text, "volley_closes_total{code=\"1000\"}"), 1.0);
    assert_eq!(value(&text, "volley_closes_total{code=\"1006\"}"), 1.0);
    assert_eq!(value(&text, "volley_connections_open{worker=\"0\"}"), 0.0);
    assert_eq!(
        value(&text, "volley_outbound_queued_bytes{worker=\"0\"}"),
        0.0
    );
    server.shutdown().unwrap();
}

#[test]
fn a_blocking_handler_shows_in_the_histograms() {
    let (server, addr) = start();
    let mut c = Client::connect(addr);
    c.send_text("quick");
    assert_eq!(c.recv_text(), "quick");
    let before = server.handle().metrics();
    // Nothing so far took 50 ms.
    let slow = |text: &str, name: &str, labels: &str| {
        value(text, &format!("{name}_bucket{{{labels}le=\"+Inf\"}}"))
            - value(text, &format!("{name}_bucket{{{labels}le=\"0.05\"}}"))
    };
    assert_eq!(slow(&before, "volley_handler_duration_seconds", ""), 0.0);

    c.send_text("block");
    assert_eq!(c.recv_text(), "block");
    std::thread::sleep(Duration::from_millis(50));
    let after = server.handle().metrics();
    // The 100 ms handler call, the 100 ms loop turn around it, and the timer it made late.
    assert_eq!(slow(&after, "volley_handler_duration_seconds", ""), 1.0);
    assert!(value(&after, "volley_handler_duration_seconds_sum") >= 0.1);
    assert!(slow(&after, "volley_loop_turn_duration_seconds", "worker=\"0\",") >= 1.0);
    assert!(slow(&after, "volley_loop_lag_seconds", "worker=\"0\",") >= 1.0);
    server.shutdown().unwrap();
}
