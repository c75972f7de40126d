//! volley behind axum on one port (feature `axum`), over real sockets: the app of
//! examples/axum serves its JSON API, its page and `/ws` (handed over to volley) on one
//! listener; deflate is negotiated through the hand-off; frames sent in the same write as the
//! request head survive (hyper's read buffer); a REST publish reaches the WebSocket clients;
//! both servers shut down gracefully; bad hand-offs get clear answers.
#![cfg(feature = "axum")]

mod util;

#[path = "../examples/axum/app.rs"]
#[allow(dead_code)]
mod app;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use app::{AppState, Rooms};
use bytes::{Bytes, BytesMut};
use util::*;
use volley::protocol::deflate::{Compressor, CompressorConfig, Decompressor};
use volley::protocol::frame::Frame;
use volley::protocol::handshake;
use volley::protocol::reader::{Event, Reader, ReaderConfig, Role};
use volley::{block_on, CloseCode, Config, Error, HandOff, HandOffHead, Server, ServerHandle};

/// The example's app on a free port, on a tokio runtime of its own.
struct App {
    addr: SocketAddr,
    volley: ServerHandle,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    fn start(config: Config) -> App {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (lines, rx) = tokio::sync::mpsc::unbounded_channel();
        let rooms = Rooms {
            users: app::users(),
            lines,
            runtime: rt.handle().clone(),
        };
        let server = Server::builder()
            .config(config)
            .without_listener()
            .start(rooms);
        let volley = server.unwrap().handle();
        assert!(volley.local_addrs().is_empty());
        let state = AppState {
            volley: volley.clone(),
            log: Default::default(),
        };
        rt.spawn(app::log_lines(rx, state.clone()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = app::router(state).into_make_service_with_connect_info::<SocketAddr>();
        let served = rt.spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        App {
            addr,
            volley,
            rt,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// A plain HTTP/1.1 request; the whole response.
    fn http(&self, method: &str, path: &str, body: &str) -> String {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        raw_request(self.addr, req.as_bytes())
    }

    fn join(&self, room: &str, token: &str) -> Client {
        let path = format!("/ws?room={room}&token={token}");
        Client::connect_with(self.addr, &path, &[]).expect("upgrade")
    }

    /// Wait until `room` has `n` subscribers (the socket is adopted after the 101 went out).
    fn wait_members(&self, room: &str, n: usize) {
        wait_until(5, "members", || self.volley.subscriber_count(room) == n);
    }

    /// Shut both servers down gracefully and wait for them.
    fn shutdown(&mut self) {
        self.volley.shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            self.rt.block_on(served).unwrap();
        }
        block_on(self.volley.stopped());
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[test]
fn the_app_serves_rest_a_page_and_websockets_on_one_port() {
    let app = App::start(config());
    assert!(app.http("GET", "/", "").contains("<title>volley in axum"));
    assert!(app.http("GET", "/api/messages", "").ends_with("[]"));
    let mut alice = app.join("lobby", "alice-token");
    app.wait_members("lobby", 1);
    alice.send_text("hello");
    let got = alice.recv_text();
    assert!(
        got.contains(r#""user":"alice""#) && got.contains("hello"),
        "{got}"
    );
    assert!(app.http("GET", "/api/messages", "").contains("hello"));
    assert_eq!(app.volley.stats().connections_open, 1);
}

#[test]
fn a_rest_publish_reaches_the_websocket_clients_of_its_room() {
    let app = App::start(config());
    let mut alice = app.join("r1", "alice-token");
    let mut bob = app.join("r1", "bob-token");
    let mut other = app.join("r2", "bob-token");
    app.wait_members("r1", 2);
    app.wait_members("r2", 1);
    let body = r#"{"topic":"r1","user":"","text":"from REST"}"#;
    assert!(app
        .http("POST", "/api/publish", body)
        .starts_with("HTTP/1.1 200"));
    for c in [&mut alice, &mut bob] {
        let got = c.recv_text();
        assert!(
            got.contains("from REST") && got.contains(r#""user":"api""#),
            "{got}"
        );
    }
    assert!(other.silent_for(200));
}

/// A client that offers permessage-deflate, sends compressed frames and inflates replies.
fn deflate_round_trip(addr: SocketAddr, text: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let key = handshake::generate_key();
    let offer = [(
        "Sec-WebSocket-Extensions".to_string(),
        "permessage-deflate; client_max_window_bits".to_string(),
    )];
    let mut req = Vec::new();
    let path = "/ws?room=z&token=alice-token";
    handshake::write_client_request(&mut req, "localhost", path, &key, &offer);
    s.write_all(&req).unwrap();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 65536];
    let (n, ext) = loop {
        if let Some(r) = handshake::parse_response(&buf, &key).unwrap() {
            break r;
        }
        let k = s.read(&mut chunk).unwrap();
        assert!(k > 0, "eof before the 101");
        buf.extend_from_slice(&chunk[..k]);
    };
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    let _ = buf.split_to(n);
    std::thread::sleep(Duration::from_millis(100)); // adopted, subscribed
    let mut out = Vec::new();
    Compressor::new(CompressorConfig::default()).compress(text.as_bytes(), &mut out);
    let frame = Frame::text(&out).compressed().masked([1, 2, 3, 4]).encode();
    s.write_all(&frame).unwrap();
    let mut reader = Reader::new();
    reader.set_compression(ext.is_some());
    let cfg = ReaderConfig {
        role: Role::Client,
        max_frame_size: 1 << 24,
        max_message_size: 1 << 24,
    };
    loop {
        match reader.read(&mut buf, &cfg).unwrap() {
            Some(Event::Compressed { payload, .. }) => {
                let mut d = Decompressor::new(15, true);
                let text = d.decompress(&payload, 1 << 24).unwrap();
                return (head, String::from_utf8(text.to_vec()).unwrap());
            }
            Some(other) => panic!("expected a compressed message, got {other:?}"),
            None => {
                let k = s.read(&mut chunk).unwrap();
                assert!(k > 0, "eof");
                buf.extend_from_slice(&chunk[..k]);
            }
        }
    }
}

#[test]
fn deflate_is_negotiated_through_the_hand_off() {
    let app = App::start(config());
    let text = "the same words again and again, ".repeat(100);
    let (head, got) = deflate_round_trip(app.addr, &text);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    assert!(
        got.contains(&text),
        "the compressed message came back whole"
    );
}

#[test]
fn frames_sent_with_the_request_head_are_not_lost() {
    let app = App::start(config());
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut bytes = upgrade_request("/ws?room=p&token=bob-token", "").into_bytes();
    bytes.extend(Frame::text(b"early bird").masked([9, 8, 7, 6]).encode());
    s.write_all(&bytes).unwrap(); // one write: hyper reads the frame with the head
    let mut c = Client::over_response(s);
    let got = c.recv_text();
    assert!(got.contains("early bird") && got.contains("bob"), "{got}");
}

#[test]
fn both_servers_shut_down_gracefully() {
    let mut app = App::start(config());
    let mut alice = app.join("lobby", "alice-token");
    app.wait_members("lobby", 1);
    app.shutdown();
    alice.expect_close_code(CloseCode::GOING_AWAY);
    assert!(app.volley.is_stopped());
    assert!(
        TcpStream::connect(app.addr).is_err(),
        "axum stopped listening"
    );
}

#[test]
fn bad_hand_offs_get_clear_answers() {
    let app = App::start(config());
    let plain = app.http("GET", "/ws", "");
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    let path = "/ws?room=a&token=wrong";
    let refused = Client::connect_with(app.addr, path, &[])
        .err()
        .expect("refused");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let not_ws = HandOffHead::new("GET", "/ws", app.addr);
    assert!(matches!(
        block_on(app.volley.hand_off(not_ws)),
        Err(Error::NotUpgrade)
    ));
    assert_eq!(app.volley.stats().connections_open, 0);
}

#[test]
fn adopting_after_shutdown_is_an_error() {
    let mut app = App::start(config());
    let head = HandOffHead::new("GET", "/ws?token=alice-token", app.addr)
        .header("Host", "x")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13");
    let Ok(HandOff::Accept { headers, ticket }) = block_on(app.volley.hand_off(head.clone()))
    else {
        panic!("not accepted");
    };
    assert!(headers
        .iter()
        .any(|(n, v)| n == "Sec-WebSocket-Accept" && !v.is_empty()));
    app.shutdown();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let adopted = ticket.adopt(socket, Bytes::new());
    assert!(matches!(adopted, Err(Error::ServerStopped)), "{adopted:?}");
    let again = block_on(app.volley.hand_off(head));
    assert!(matches!(again, Err(Error::ServerStopped)), "{again:?}");
}
