//! The chat example across two servers sharing one Redis (`--redis`, feature `redis`), over real
//! sockets: nicknames unique across servers (and released on leave), messages, joins and
//! leaves crossing servers, the history and the member list of a room from both servers, ids
//! that do not collide. The Redis is the test's own (`util::redis_server`).
#![cfg(feature = "redis")]

mod util;

#[allow(dead_code)]
#[path = "../examples/chat/app.rs"]
mod app;

use std::net::SocketAddr;

use serde_json::{json, Value};
use volley::{RedisBridge, Server, ServerHandle};

use app::{ChatApp, ChatConfig};
use util::redis_server::Redis;
use util::{wait_until, Client};

/// A chat server as main.rs builds it with `--redis`.
struct Node {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(redis: &Redis) -> Node {
        let chat = ChatConfig {
            redis: Some(redis.url()),
            ..ChatConfig::default()
        };
        let bridge = RedisBridge::new(&redis.url()).unwrap().prefix("chat:room:");
        let server = Server::builder()
            .config(chat.server_config(util::config().max_message_size(16 << 10)))
            .bind("127.0.0.1:0")
            .bridge(bridge)
            .start(ChatApp::new(chat))
            .expect("start");
        let (addr, handle) = (server.local_addr(), server.handle());
        let thread = Some(std::thread::spawn(move || server.run().expect("run")));
        wait_until(10, "the bridge to connect", || {
            handle.stats().bridge_connected == 1
        });
        Node {
            addr,
            handle,
            thread,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A chat client: JSON in, JSON out.
struct Chat(Client);

impl Chat {
    fn connect(addr: SocketAddr) -> Chat {
        let mut c = Chat(Client::connect_with(addr, "/ws", &[]).expect("upgrade"));
        c.expect("welcome");
        c
    }

    fn send(&mut self, v: Value) {
        self.0.send_text(&v.to_string());
    }

    /// The next message of type `kind`, skipping others; an unexpected error fails the test.
    fn expect(&mut self, kind: &str) -> Value {
        loop {
            let text = self.0.recv_text();
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == kind {
                return v;
            }
            assert_ne!(v["type"], "error", "expected {kind}, got {v}");
        }
    }

    fn nick(&mut self, nick: &str) {
        self.send(json!({"type": "nick", "nick": nick}));
        assert_eq!(self.expect("nick")["nick"], nick);
    }

    /// Join `room`; returns the history it was given.
    fn join(&mut self, room: &str) -> Vec<Value> {
        self.send(json!({"type": "join", "room": room}));
        assert_eq!(self.expect("joined")["room"], room);
        self.expect("history")["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The next member list of `room`.
    fn users(&mut self) -> Vec<String> {
        let v = self.expect("users");
        let users = v["users"].as_array().unwrap();
        users
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect()
    }

    /// Wait for a member list equal to `want`.
    fn users_become(&mut self, want: &[&str]) {
        loop {
            if self.users() == want {
                return;
            }
        }
    }

    fn system_line(&mut self, text: &str) {
        loop {
            if self.expect("system")["text"] == text {
                return;
            }
        }
    }

    fn message_from(&mut self, from: &str, text: &str) -> Value {
        loop {
            let m = self.expect("message");
            if m["from"] == from && m["text"] == text {
                return m;
            }
        }
    }
}

#[test]
fn rooms_nicknames_and_history_span_two_servers() {
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis), Node::start(&redis));

    let mut ana = Chat::connect(a.addr);
    ana.nick("ana");
    let mut ben = Chat::connect(b.addr);
    // Taken on the other server (case-insensitively).
    ben.send(json!({"type": "nick", "nick": "ANA"}));
    assert_eq!(ben.expect("error")["code"], "nick_taken");
    ben.nick("ben");

    assert!(ana.join("rust").is_empty());
    ana.users_become(&["ana"]);
    wait_until(5, "A subscribed upstream", || {
        redis.channels("chat:room:*") == ["chat:room:rust"]
    });
    ben.join("rust");
    ben.users_become(&["ana", "ben"]);
    // Ben's join crossed to server A, with the member list from both servers.
    ana.system_line("ben joined");
    ana.users_become(&["ana", "ben"]);
    wait_until(5, "both servers subscribed upstream", || {
        redis.numsub("chat:room:rust") == 2
    });

    ana.send(json!({"type": "message", "text": "hello from A"}));
    let m1 = ben.message_from("ana", "hello from A");
    ben.send(json!({"type": "message", "text": "hello from B"}));
    let m2 = ana.message_from("ben", "hello from B");
    assert_ne!(m1["id"], m2["id"], "ids from two servers must not collide");
    assert!(
        m2["id"].as_u64() > m1["id"].as_u64(),
        "later lines sort later"
    );

    // A latecomer on server B gets the history said on both servers.
    let mut cy = Chat::connect(b.addr);
    cy.nick("cy");
    let history = cy.join("rust");
    let lines: Vec<(&str, &str)> = history
        .iter()
        .map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, [("ana", "hello from A"), ("ben", "hello from B")]);
    cy.users_become(&["ana", "ben", "cy"]);

    // Ana leaves: server B hears it, and her nickname is free on B.
    drop(ana);
    ben.system_line("ana left");
    ben.users_become(&["ben", "cy"]);
    cy.nick("ana");
}
