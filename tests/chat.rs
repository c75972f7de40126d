//! The chat example (examples/chat) driven over real sockets: nicknames, rooms, history, private
//! messages, leave notices (clean and after a missed heartbeat), every validation error, the
//! rate limit, the Origin check and the page itself.

mod util;

#[allow(dead_code)]
#[path = "../examples/chat/app.rs"]
mod app;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use volley::{CloseCode, Config};

use app::state::now_ms;
use app::{ChatApp, ChatConfig, Origins, RateLimit};
use util::{raw_request, Client, TestServer};

/// A chat server with the default chat settings.
fn server() -> TestServer {
    server_with(util::config(), ChatConfig::default())
}

fn server_with(config: Config, chat: ChatConfig) -> TestServer {
    let config = chat.server_config(config.max_message_size(16 << 10));
    TestServer::start(config, ChatApp::new(chat))
}

/// A chat client: JSON in, JSON out.
struct Chat {
    ws: Client,
    /// What `welcome` said.
    welcome: Value,
}

impl Chat {
    fn connect(addr: SocketAddr) -> Chat {
        let ws = Client::connect_with(addr, "/ws", &[]).expect("upgrade");
        let mut chat = Chat {
            ws,
            welcome: Value::Null,
        };
        chat.welcome = chat.expect("welcome");
        chat
    }

    /// Connect, take a nickname and join a room; returns after our own join notice.
    fn join_as(addr: SocketAddr, nick: &str, room: &str) -> Chat {
        let mut c = Chat::connect(addr);
        c.send(json!({"type": "nick", "nick": nick}));
        assert_eq!(c.expect("nick")["nick"], nick);
        c.join(room);
        c
    }

    fn send(&mut self, v: Value) {
        self.ws.send_text(&v.to_string());
    }

    fn recv(&mut self) -> Value {
        let text = self.ws.recv_text();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("server sent bad JSON {text:?}: {e}"))
    }

    /// The next message of type `kind`, skipping others (room-list broadcasts and the like
    /// arrive whenever anyone connects); an unexpected `error` fails the test.
    fn expect(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv();
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "error", "expected {kind}, got {v}");
        }
    }

    /// Every message up to and including the next one of type `kind`.
    fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self.recv();
            let done = v["type"] == kind;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    /// The next error; its code must be `code`.
    fn expect_error(&mut self, code: &str) -> Value {
        let e = self.expect("error");
        assert_eq!(e["code"], code, "{e}");
        assert!(e["text"].as_str().is_some_and(|t| !t.is_empty()), "{e}");
        e
    }

    /// Join `room` and check what the joiner is told: joined, history, our own notice, users.
    fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "room": room}));
        let room = room.to_lowercase(); // room names are case-insensitive
        assert_eq!(self.expect("joined")["room"], room);
        let history = self.expect("history");
        assert_eq!(history["room"], room);
        let sys = self.expect("system");
        assert!(sys["text"].as_str().unwrap().ends_with(" joined"), "{sys}");
        self.expect("users");
        history
    }

    /// The next system line in the room, then the member list that follows it.
    fn expect_notice(&mut self) -> (String, Vec<String>) {
        let sys = self.expect("system");
        let users = self.expect("users");
        (sys["text"].as_str().unwrap().to_string(), names(&users))
    }
}

fn names(users: &Value) -> Vec<String> {
    users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn welcome_assigns_an_id_and_a_guest_nickname() {
    let srv = server();
    let a = Chat::connect(srv.addr);
    let b = Chat::connect(srv.addr);
    assert!(a.welcome["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_ne!(a.welcome["id"], b.welcome["id"]);
    assert!(a.welcome["nick"].as_str().unwrap().starts_with("guest-"));
    assert_ne!(a.welcome["nick"], b.welcome["nick"]);
    assert_eq!(b.welcome["online"], 2);
    let rooms = a.welcome["rooms"].as_array().unwrap();
    assert!(rooms
        .iter()
        .any(|r| r["name"] == "lobby" && r["members"] == 0));
    assert_eq!(a.welcome["limits"]["text"], 2000);
}

#[test]
fn nicknames_are_unique_and_checked() {
    let srv = server();
    let mut a = Chat::connect(srv.addr);
    let mut b = Chat::connect(srv.addr);
    a.send(json!({"type": "nick", "nick": " Ada "}));
    assert_eq!(a.expect("nick")["nick"], "Ada");
    // Taken, whatever the case.
    b.send(json!({"type": "nick", "nick": "ada"}));
    b.expect_error("nick_taken");
    for bad in ["", "   ", "two words", "<b>", &"x".repeat(25)] {
        b.send(json!({"type": "nick", "nick": bad}));
        b.expect_error("bad_nick");
    }
    // A freed nickname can be taken; changing only the case of your own is fine.
    a.send(json!({"type": "nick", "nick": "lovelace"}));
    a.expect("nick");
    b.send(json!({"type": "nick", "nick": "ADA"}));
    assert_eq!(b.expect("nick")["nick"], "ADA");
    b.send(json!({"type": "nick", "nick": "ada"}));
    assert_eq!(b.expect("nick")["nick"], "ada");
}

#[test]
fn rooms_carry_messages_to_their_members_only() {
    let srv = server();
    let mut a = Chat::join_as(srv.addr, "ada", "rust");
    let mut b = Chat::join_as(srv.addr, "bob", "rust");
    assert_eq!(
        a.expect_notice(),
        ("bob joined".into(), vec!["ada".into(), "bob".into()])
    );
    let mut c = Chat::join_as(srv.addr, "cy", "lobby");

    let before = now_ms();
    a.send(json!({"type": "message", "text": "hello <b>rust</b>"}));
    for m in [a.expect("message"), b.expect("message")] {
        assert_eq!(m["from"], "ada");
        assert_eq!(m["room"], "rust");
        assert_eq!(m["text"], "hello <b>rust</b>");
        assert!(m["id"].as_u64().unwrap() > 0);
        let ts = m["ts"].as_u64().unwrap();
        assert!(ts >= before && ts <= now_ms(), "{m}");
    }
    b.send(json!({"type": "message", "text": "hi ada"}));
    let m1 = a.expect("message");
    assert_eq!(m1["from"], "bob");
    // cy, in another room, got neither: the next thing cy sees is its own message.
    c.send(json!({"type": "message", "text": "anyone?"}));
    let m = c.expect("message");
    assert_eq!(
        (m["from"].as_str(), m["room"].as_str()),
        (Some("cy"), Some("lobby"))
    );
    assert!(m["id"].as_u64() > m1["id"].as_u64(), "ids grow");

    // The room list counts members.
    c.send(json!({"type": "rooms"}));
    let rooms = c.expect("rooms");
    let count = |name: &str| {
        rooms["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["members"]
            .as_u64()
    };
    assert_eq!(
        (count("rust"), count("lobby"), count("off-topic")),
        (Some(2), Some(1), Some(0))
    );
    assert_eq!(rooms["online"], 3);
}

#[test]
fn joining_sends_the_last_50_messages() {
    let rate = RateLimit {
        messages: 1000,
        ..RateLimit::default()
    };
    let srv = server_with(
        util::config(),
        ChatConfig {
            rate,
            ..ChatConfig::default()
        },
    );
    let mut a = Chat::join_as(srv.addr, "ada", "History");
    for i in 0..55 {
        a.send(json!({"type": "message", "text": format!("msg {i}")}));
    }
    for _ in 0..55 {
        a.expect("message");
    }
    let mut b = Chat::connect(srv.addr);
    let history = b.join("history");
    let msgs = history["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 50);
    assert_eq!(msgs[0]["text"], "msg 5");
    assert_eq!(msgs[49]["text"], "msg 54");
    assert!(msgs
        .windows(2)
        .all(|w| w[0]["id"].as_u64() < w[1]["id"].as_u64()));
    assert!(msgs
        .iter()
        .all(|m| m["from"] == "ada" && m["ts"].as_u64().is_some()));
}

#[test]
fn private_messages_reach_one_user() {
    let srv = server();
    let mut a = Chat::join_as(srv.addr, "ada", "lobby");
    let mut b = Chat::connect(srv.addr);
    b.send(json!({"type": "nick", "nick": "bob"}));
    b.expect("nick");
    let mut c = Chat::join_as(srv.addr, "cy", "lobby");

    // Private messages need no shared room; the name is case-insensitive.
    a.send(json!({"type": "private", "to": "BOB", "text": "psst"}));
    let got = b.expect("private");
    let echo = a.expect("private");
    assert_eq!(got, echo);
    assert_eq!(
        (got["from"].as_str(), got["to"].as_str()),
        (Some("ada"), Some("bob"))
    );
    assert_eq!(got["text"], "psst");
    assert!(got["id"].as_u64().is_some() && got["ts"].as_u64().is_some());

    a.send(json!({"type": "private", "to": "nobody", "text": "hello?"}));
    a.expect_error("no_such_user");
    a.send(json!({"type": "private", "to": "ada", "text": "me"}));
    a.expect_error("bad_request");
    a.send(json!({"type": "private", "to": "bob", "text": ""}));
    a.expect_error("bad_text");
    // cy, in the same room as ada, saw none of it: its own message comes first.
    c.send(json!({"type": "message", "text": "marker"}));
    let seen = c.until("message");
    assert!(seen.iter().all(|v| v["type"] != "private"), "{seen:?}");
    assert_eq!(seen.last().unwrap()["text"], "marker");
}

#[test]
fn leaving_and_disconnecting_are_announced() {
    let srv = server();
    let mut a = Chat::join_as(srv.addr, "ada", "rust");
    let mut b = Chat::join_as(srv.addr, "bob", "rust");
    a.expect_notice(); // bob joined

    b.send(json!({"type": "leave"}));
    assert_eq!(b.expect("left")["room"], "rust");
    assert_eq!(a.expect_notice(), ("bob left".into(), vec!["ada".into()]));
    b.send(json!({"type": "message", "text": "still there?"}));
    b.expect_error("not_in_room");
    b.send(json!({"type": "leave"}));
    b.expect_error("not_in_room");

    // Joining another room leaves the current one.
    b.join("rust");
    a.expect_notice();
    b.join("lobby");
    assert_eq!(a.expect_notice(), ("bob left".into(), vec!["ada".into()]));
    b.join("rust");
    a.expect_notice();

    // A nickname change is announced too.
    b.send(json!({"type": "nick", "nick": "bobby"}));
    assert_eq!(
        a.expect_notice(),
        (
            "bob is now known as bobby".into(),
            vec!["ada".into(), "bobby".into()]
        )
    );

    // A closed connection leaves its room, and frees its nickname.
    b.ws.send_close(1000, "bye");
    b.ws.expect_close();
    assert_eq!(a.expect_notice(), ("bobby left".into(), vec!["ada".into()]));
    let mut c = Chat::connect(srv.addr);
    c.send(json!({"type": "nick", "nick": "bobby"}));
    c.expect("nick");
}

#[test]
fn a_vanished_peer_leaves_within_the_heartbeat_window() {
    let config = util::config()
        .ping_interval(Some(Duration::from_millis(150)))
        .pong_timeout(Duration::from_millis(150));
    let srv = server_with(config, ChatConfig::default());
    let mut a = Chat::join_as(srv.addr, "ada", "rust");
    let _b = Chat::join_as(srv.addr, "ghost", "rust"); // never reads again: answers no ping
    a.expect_notice(); // ghost joined
    let start = Instant::now();
    // `a` answers pings while it waits (Client::recv does).
    assert_eq!(a.expect_notice(), ("ghost left".into(), vec!["ada".into()]));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn typing_goes_to_the_others_in_the_room() {
    let srv = server();
    let mut a = Chat::join_as(srv.addr, "ada", "rust");
    let mut b = Chat::join_as(srv.addr, "bob", "rust");
    a.expect_notice();
    a.send(json!({"type": "typing"}));
    let t = b.expect("typing");
    assert_eq!(
        (
            t["nick"].as_str(),
            t["room"].as_str(),
            t["active"].as_bool()
        ),
        (Some("ada"), Some("rust"), Some(true))
    );
    a.send(json!({"type": "typing", "active": false}));
    assert_eq!(b.expect("typing")["active"], false);
    // Not echoed to the typist: the next thing ada gets is the answer to her next message.
    a.send(json!({"type": "what"}));
    let seen = a.until("error");
    assert!(seen.iter().all(|v| v["type"] != "typing"), "{seen:?}");
}

#[test]
fn every_bad_message_gets_an_error_and_the_connection_goes_on() {
    let srv = server();
    let mut a = Chat::connect(srv.addr);
    let cases: &[(&str, &str)] = &[
        ("{not json", "bad_json"),
        ("", "bad_json"),
        ("42", "bad_request"),
        (r#"{"text":"no type"}"#, "bad_request"),
        (r#"{"type":7}"#, "bad_request"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"type":"join"}"#, "bad_request"),
        (r#"{"type":"join","room":17}"#, "bad_request"),
        (r#"{"type":"join","room":""}"#, "bad_room"),
        (r#"{"type":"join","room":"a b"}"#, "bad_room"),
        (
            r#"{"type":"message","text":"not in a room yet"}"#,
            "not_in_room",
        ),
        (r#"{"type":"typing"}"#, "not_in_room"),
    ];
    for (input, code) in cases {
        a.ws.send_text(input);
        let e = a.expect_error(code);
        assert!(!e["text"].as_str().unwrap().is_empty());
    }
    a.ws.send_binary(b"\x00\x01");
    a.expect_error("binary");

    a.join("lobby");
    a.send(json!({"type": "message", "text": " \n\t"}));
    a.expect_error("bad_text");
    a.send(json!({"type": "message", "text": "x".repeat(2001)}));
    a.expect_error("bad_text");
    // 2000 characters is fine, even as 4-byte ones.
    a.send(json!({"type": "message", "text": "🦀".repeat(2000)}));
    a.expect("message");
    // Over the chat's 8 KiB input limit, but under volley's 16 KiB: an error.
    a.send(json!({"type": "message", "text": "y".repeat(9000)}));
    a.expect_error("too_large");
    a.send(json!({"type": "nick", "nick": "still-here"}));
    a.expect("nick");
    // Over volley's max_message_size: the connection is closed with 1009 (RFC 6455 §7.4.1).
    a.send(json!({"type": "message", "text": "z".repeat(20_000)}));
    a.ws.expect_close_code(CloseCode::TOO_BIG);
}

#[test]
fn flooding_is_refused_then_closed_with_1008() {
    let rate = RateLimit {
        messages: 5,
        window: Duration::from_secs(10),
        strikes: 3,
    };
    let srv = server_with(
        util::config(),
        ChatConfig {
            rate,
            ..ChatConfig::default()
        },
    );
    let mut a = Chat::connect(srv.addr);
    for _ in 0..5 {
        a.send(json!({"type": "rooms"}));
        a.expect("rooms");
    }
    // Invalid messages count too, and the refusal comes before any parsing.
    for _ in 0..3 {
        a.ws.send_text("{not json");
        let e = a.expect_error("rate_limited");
        assert!(
            e["text"].as_str().unwrap().contains("5 messages per 10 s"),
            "{e}"
        );
    }
    a.send(json!({"type": "rooms"}));
    let close = a.ws.expect_close().expect("a close code");
    assert_eq!(close.code, CloseCode::POLICY);
    assert_eq!(close.reason, "rate limit exceeded");
}

/// The response head of a refused upgrade.
fn refused(r: Result<Client, String>) -> String {
    match r {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(head) => head,
    }
}

#[test]
fn origins_are_checked() {
    let srv = server();
    let host = srv.addr.to_string();
    let same = format!("http://{host}");
    assert!(Client::connect_with(srv.addr, "/ws", &[("Origin", &same)]).is_ok());
    assert!(
        Client::connect_with(srv.addr, "/ws", &[]).is_ok(),
        "non-browser clients send none"
    );
    let evil = Client::connect_with(srv.addr, "/ws", &[("Origin", "http://evil.example")]);
    assert!(refused(evil).starts_with("HTTP/1.1 403"));
    let wrong_path = Client::connect_with(srv.addr, "/chat", &[]);
    assert!(refused(wrong_path).starts_with("HTTP/1.1 404"));

    let list = Origins::List(vec!["https://chat.example.com".into()]);
    let srv = server_with(
        util::config(),
        ChatConfig {
            origins: list,
            ..ChatConfig::default()
        },
    );
    let ok = [("Origin", "https://chat.example.com")];
    assert!(Client::connect_with(srv.addr, "/ws", &ok).is_ok());
    let same = format!("http://{}", srv.addr);
    assert!(Client::connect_with(srv.addr, "/ws", &[("Origin", &same)]).is_err());
}

#[test]
fn the_page_is_served_from_the_same_port() {
    let srv = server();
    let get = |path: &str| {
        raw_request(
            srv.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
    };
    let page = get("/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html"));
    assert!(page.contains("Content-Security-Policy"));
    assert!(page.contains("<script src=\"app.js\""));
    assert!(get("/app.js").contains("new WebSocket"));
    assert!(get("/style.css").contains("text/css"));
    assert!(get("/missing").starts_with("HTTP/1.1 404"));
    assert!(get("/ws").starts_with("HTTP/1.1 426"));
    let post = raw_request(
        srv.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

#[test]
fn the_number_of_rooms_is_capped_and_empty_rooms_vanish() {
    let srv = server();
    let mut a = Chat::connect(srv.addr);
    let existing = a.welcome["rooms"].as_array().unwrap().len();
    // One user in each new room keeps it alive.
    let mut holders: Vec<Chat> = (existing..app::state::MAX_ROOMS)
        .map(|i| {
            let mut c = Chat::connect(srv.addr);
            c.join(&format!("room-{i}"));
            c
        })
        .collect();
    a.send(json!({"type": "join", "room": "one-too-many"}));
    a.expect_error("too_many_rooms");
    // Its last member gone, a room vanishes and makes space.
    let mut last = holders.pop().unwrap();
    last.send(json!({"type": "leave"}));
    last.expect("left");
    a.join("one-too-many");
}
