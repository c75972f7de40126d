//! Topics across nodes through a real Redis (feature `redis`): two or three servers in this
//! process, one `redis-server` started by the test on a free loopback port (and killed after
//! it). Cross-node delivery and order, skip-sender, no duplicate on the origin node, upstream
//! SUBSCRIBE/UNSUBSCRIBE on the first/last subscriber (`PUBSUB CHANNELS`), binary payloads (all
//! byte values, empty, 4 MiB), `publish_local`, the bridge's metrics, and Redis killed and
//! restarted mid-test.
//!
//! Needs `redis-server` on PATH (Debian's `redis-server`; scripts/test.sh installs it): without
//! it these tests fail, they do not skip.
#![cfg(feature = "redis")]

mod util;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use util::redis_server::Redis;
use util::topic_commands::TopicCommands;
use util::*;
use volley::{Message, RedisBridge, Request, Server, ServerHandle, Upgrade};

// ---- nodes ----------------------------------------------------------------------------------

/// A volley server with a Redis bridge (`prefix`, `queue`), on its own thread.
struct Node {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(redis: &Redis, prefix: &str, queue: usize) -> Node {
        let bridge = RedisBridge::new(&redis.url())
            .expect("url")
            .prefix(prefix)
            .queue(queue);
        let server = Server::builder()
            .config(config())
            .bind("127.0.0.1:0")
            .bridge(bridge)
            .start(|_req: &Request<'_>| Upgrade::accept(TopicCommands))
            .expect("start");
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = Some(std::thread::spawn(move || server.run().expect("run")));
        let n = Node {
            addr,
            handle,
            thread,
        };
        wait_until(10, "the bridge to connect", || {
            n.handle.stats().bridge_connected == 1
        });
        n
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
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

fn join(c: &mut Client, topic: &str) {
    c.send_text(&format!("sub {topic}"));
    assert_eq!(c.recv_text(), format!("sub {topic} true"));
}

/// Wait until `nodes` nodes subscribe to `channel` upstream.
fn wait_numsub(redis: &Redis, channel: &str, nodes: i64) {
    wait_until(10, &format!("{nodes} subscribers of {channel}"), || {
        redis.numsub(channel) == nodes
    });
}

// ---- tests ----------------------------------------------------------------------------------

#[test]
fn publishes_reach_every_node_in_order_once_and_skip_the_sender() {
    let redis = Redis::start();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&redis, "t1:", 1024)).collect();
    let mut a1 = nodes[0].client();
    let mut a2 = nodes[0].client();
    let mut b1 = nodes[1].client();
    let mut c1 = nodes[2].client();
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        join(c, "room");
    }
    wait_numsub(&redis, "t1:room", 3);

    // Order per publisher and topic, on every node, and nothing twice (the origin node drops
    // its own messages coming back from Redis).
    for i in 0..200 {
        a1.send_text(&format!("pub room m{i}"));
    }
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        for i in 0..200 {
            assert_eq!(c.recv_text(), format!("m{i}"));
        }
    }
    // Skip-sender across nodes: everyone but a1, once.
    a1.send_text("others room not-for-a1");
    for c in [&mut a2, &mut b1, &mut c1] {
        assert_eq!(c.recv_text(), "not-for-a1");
    }
    // A handle's publish goes through the bridge; publish_local does not.
    nodes[1].handle.publish("room", "from-b-handle");
    nodes[1].handle.publish_local("room", "b-only-handle");
    b1.send_text("local room b-only-ctx");
    for c in [&mut a1, &mut a2, &mut c1] {
        assert_eq!(c.recv_text(), "from-b-handle");
    }
    assert_eq!(b1.recv_text(), "from-b-handle");
    assert_eq!(b1.recv_text(), "b-only-handle");
    assert_eq!(b1.recv_text(), "b-only-ctx");
    for c in [&mut a1, &mut a2, &mut b1, &mut c1] {
        assert!(
            c.silent_for(300),
            "a duplicate or a local-only message leaked"
        );
    }

    let (sa, sb) = (nodes[0].handle.stats(), nodes[1].handle.stats());
    assert_eq!(sa.bridge_published, 201);
    assert_eq!(sb.bridge_published, 1);
    // Node b received a's 201 (its own publish is not counted: dropped as its own).
    assert_eq!(sb.bridge_received, 201);
    assert_eq!(sa.bridge_received, 1);
    assert_eq!(sa.bridge_dropped + sb.bridge_dropped, 0);
    #[cfg(feature = "metrics")]
    {
        let m = nodes[0].handle.metrics();
        for line in [
            "volley_bridge_connected 1",
            "volley_bridge_messages_total{direction=\"published\"} 201",
            "volley_bridge_messages_total{direction=\"received\"} 1",
            "volley_bridge_messages_total{direction=\"dropped\"} 0",
            "volley_bridge_reconnects_total 0",
        ] {
            assert!(m.lines().any(|l| l == line), "no {line:?} in\n{m}");
        }
    }
}

#[test]
fn a_node_subscribes_upstream_on_its_first_subscriber_and_leaves_after_its_last() {
    let redis = Redis::start();
    let node = Node::start(&redis, "t2:", 1024);
    assert!(redis.channels("t2:*").is_empty());
    let mut c1 = node.client();
    let mut c2 = node.client();
    join(&mut c1, "x");
    wait_until(5, "SUBSCRIBE t2:x", || redis.channels("t2:*") == ["t2:x"]);
    join(&mut c2, "x");
    join(&mut c2, "y");
    wait_until(5, "SUBSCRIBE t2:y", || {
        redis.channels("t2:*") == ["t2:x", "t2:y"]
    });
    assert_eq!(
        redis.numsub("t2:x"),
        1,
        "one upstream subscription per node"
    );

    c1.send_text("unsub x");
    assert_eq!(c1.recv_text(), "unsub x true");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(redis.channels("t2:*"), ["t2:x", "t2:y"], "c2 still has x");
    c2.send_text("unsub x");
    assert_eq!(c2.recv_text(), "unsub x true");
    wait_until(5, "UNSUBSCRIBE t2:x", || redis.channels("t2:*") == ["t2:y"]);
    // A closing connection leaves its topics too.
    drop(c2);
    wait_until(5, "UNSUBSCRIBE t2:y", || redis.channels("t2:*").is_empty());
    // And a topic that comes back is subscribed again.
    join(&mut c1, "x");
    wait_until(5, "SUBSCRIBE t2:x again", || {
        redis.channels("t2:*") == ["t2:x"]
    });
}

#[test]
fn binary_and_text_cross_nodes_intact_and_apart() {
    let redis = Redis::start();
    let (a, b) = (
        Node::start(&redis, "t3:", 1024),
        Node::start(&redis, "t3:", 1024),
    );
    let (mut pa, mut sb) = (a.client(), b.client());
    join(&mut sb, "bin");
    wait_numsub(&redis, "t3:bin", 1);
    let all: Vec<u8> = (0..=255u8).collect();
    pa.send_binary(&all);
    pa.send_binary(b"");
    // Text that looks like our header, then a binary message of text bytes.
    pa.send_text("pub bin \u{1}\u{2}héllo\u{0}");
    pa.send_binary("text bytes".as_bytes());
    assert_eq!(sb.recv(), Message::binary(all));
    assert_eq!(sb.recv(), Message::binary(&b""[..]));
    assert_eq!(sb.recv(), Message::text("\u{1}\u{2}héllo\u{0}"));
    assert_eq!(sb.recv(), Message::binary(&b"text bytes"[..]));
    // Large enough to arrive over many reads of the bridge's subscribing connection.
    let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    pa.send_binary(&big);
    pa.send_binary(b"after the big one");
    assert_eq!(sb.recv(), Message::binary(big));
    assert_eq!(sb.recv(), Message::binary(&b"after the big one"[..]));
    assert!(sb.silent_for(200));
}

#[test]
fn redis_killed_and_restarted_mid_test() {
    let mut redis = Redis::start();
    let queue = 16;
    let (a, b) = (
        Node::start(&redis, "t4:", queue),
        Node::start(&redis, "t4:", queue),
    );
    let (mut a1, mut a2, mut b1) = (a.client(), a.client(), b.client());
    for c in [&mut a1, &mut a2, &mut b1] {
        join(c, "room");
    }
    wait_numsub(&redis, "t4:room", 2);
    a1.send_text("pub room before");
    for c in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(c.recv_text(), "before");
    }

    redis.kill();
    wait_until(10, "both bridges to see Redis gone", || {
        a.handle.stats().bridge_connected == 0 && b.handle.stats().bridge_connected == 0
    });
    // Local delivery goes on; publishes for other nodes pile up to the queue, then drop.
    let sent = 300;
    for i in 0..sent {
        a1.send_text(&format!("pub room down{i}"));
    }
    for c in [&mut a1, &mut a2] {
        for i in 0..sent {
            assert_eq!(c.recv_text(), format!("down{i}"));
        }
    }
    let dropped = a.handle.stats().bridge_dropped;
    // At most the queue and one pipeline that failed wait; the rest is dropped and counted.
    assert!(
        dropped >= sent - 2 * queue as u64 && dropped <= sent,
        "dropped {dropped} of {sent}"
    );

    redis.spawn();
    wait_until(15, "both bridges back", || {
        a.handle.stats().bridge_connected == 1 && b.handle.stats().bridge_connected == 1
    });
    wait_numsub(&redis, "t4:room", 2);
    assert!(a.handle.stats().bridge_reconnects >= 1);
    assert!(b.handle.stats().bridge_reconnects >= 1);

    a1.send_text("pub room after");
    for c in [&mut a1, &mut a2] {
        assert_eq!(c.recv_text(), "after");
    }
    // b may get some of the held publishes first (in order, those sent after b subscribed
    // again), then "after".
    let mut last = None;
    loop {
        let t = b1.recv_text();
        if t == "after" {
            break;
        }
        let i: u64 = t
            .strip_prefix("down")
            .expect("a held publish")
            .parse()
            .unwrap();
        assert!(
            last.is_none_or(|l| i > l),
            "out of order: {i} after {last:?}"
        );
        assert!(i < sent);
        last = Some(i);
    }
    // And from b to a too.
    b1.send_text("pub room from-b");
    for c in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(c.recv_text(), "from-b");
    }
    let _ = TcpStream::connect(("127.0.0.1", redis.port)).expect("redis is up");
}

/// Users across nodes: `send_to_user` on one node reaches the user's connections on both, and
/// `disconnect_user` on the other closes them all; another user is not touched.
#[test]
fn users_are_reached_and_disconnected_across_nodes() {
    let redis = Redis::start();
    let a = Node::start(&redis, "u:", 1024);
    let b = Node::start(&redis, "u:", 1024);
    let mut on_a = a.client();
    let mut on_b = b.client();
    let mut other = b.client();
    for (c, user) in [(&mut on_a, "ann"), (&mut on_b, "ann"), (&mut other, "bob")] {
        c.send_text(&format!("user {user}"));
        assert_eq!(c.recv_text(), format!("user {user}"));
    }
    // (The internal topics' names start with a NUL byte.)
    wait_numsub(&redis, "u:\0user/ann", 2);
    a.handle.send_to_user("ann", "from a");
    assert_eq!(on_a.recv_text(), "from a");
    assert_eq!(on_b.recv_text(), "from a");
    assert!(other.silent_for(100));
    wait_numsub(&redis, "u:\0kick/ann", 2);
    b.handle
        .disconnect_user("ann", volley::CloseCode(4001), "bye");
    for c in [&mut on_a, &mut on_b] {
        let f = c.expect_close().expect("a close frame");
        assert_eq!(f.code, volley::CloseCode(4001));
    }
    b.handle.send_to_user("bob", "still here");
    assert_eq!(other.recv_text(), "still here");
}
