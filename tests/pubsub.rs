//! Rooms and broadcast over real sockets: publish, skip-sender, unsubscribe, publishes from other
//! threads, ordering, slow consumers, topic events, subscriber counts, statistics.

mod util;

use std::sync::{mpsc, Mutex};
use std::time::Duration;

use util::topic_commands::TopicCommands;
use util::*;
use volley::{BackpressurePolicy, Message, Request, Upgrade};

struct App(Mutex<mpsc::Sender<(String, bool)>>);
impl volley::Factory for App {
    type Handler = TopicCommands;
    fn upgrade(&self, _req: &Request<'_>) -> Upgrade<TopicCommands> {
        Upgrade::accept(TopicCommands)
    }
    fn on_topic(&self, topic: &str, active: bool) {
        let _ = self.0.lock().unwrap().send((topic.to_string(), active));
    }
}

fn start(cfg: volley::Config) -> (TestServer, mpsc::Receiver<(String, bool)>) {
    let (tx, rx) = mpsc::channel();
    (TestServer::start(cfg, App(Mutex::new(tx))), rx)
}

fn join(c: &mut Client, topic: &str) {
    c.send_text(&format!("sub {topic}"));
    assert_eq!(c.recv_text(), format!("sub {topic} true"));
}

#[test]
fn publish_reaches_every_subscriber_and_skip_sender_works() {
    let (s, _) = start(config());
    let mut cs: Vec<Client> = (0..3).map(|_| Client::connect(s.addr)).collect();
    for c in &mut cs {
        join(c, "room");
    }
    let mut outsider = Client::connect(s.addr);
    cs[0].send_text("pub room hello all");
    for c in &mut cs {
        assert_eq!(c.recv_text(), "hello all");
    }
    cs[0].send_text("others room hello others");
    assert_eq!(cs[1].recv_text(), "hello others");
    assert_eq!(cs[2].recv_text(), "hello others");
    assert!(
        cs[0].silent_for(200),
        "the sender got its own skip-sender publish"
    );
    assert!(outsider.silent_for(50), "a non-subscriber got a publish");
    outsider.send_text("count room");
    assert_eq!(outsider.recv_text(), "count room 3");
}

#[test]
fn unsubscribe_stops_delivery_and_topics_are_listed() {
    let (s, _) = start(config());
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    join(&mut a, "x");
    join(&mut a, "y");
    join(&mut b, "x");
    a.send_text("sub x");
    assert_eq!(a.recv_text(), "sub x false");
    a.send_text("topics");
    assert_eq!(a.recv_text(), "topics x,y");
    a.send_text("unsub x");
    assert_eq!(a.recv_text(), "unsub x true");
    b.send_text("pub x only b");
    assert_eq!(b.recv_text(), "only b");
    assert!(a.silent_for(200));
    a.send_text("unsub x");
    assert_eq!(a.recv_text(), "unsub x false");
}

#[test]
fn publish_and_broadcast_from_a_non_worker_thread() {
    let (s, _) = start(config());
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    join(&mut a, "news");
    let h = s.handle.clone();
    std::thread::spawn(move || {
        h.publish("news", "extra!");
        h.broadcast("to everyone");
    })
    .join()
    .unwrap();
    assert_eq!(a.recv_text(), "extra!");
    assert_eq!(a.recv_text(), "to everyone");
    assert_eq!(b.recv_text(), "to everyone");
    assert_eq!(s.handle.subscriber_count("news"), 1);
}

#[test]
fn broadcast_variants() {
    let (s, _) = start(config());
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    a.send_text("all hi");
    assert_eq!(a.recv_text(), "hi");
    assert_eq!(b.recv_text(), "hi");
    a.send_text("allothers psst");
    assert_eq!(b.recv_text(), "psst");
    assert!(a.silent_for(200));
}

#[test]
fn order_is_kept_per_publisher_across_workers() {
    let (s, _) = start(config().workers(2));
    let mut subs: Vec<Client> = (0..6).map(|_| Client::connect(s.addr)).collect();
    for c in &mut subs {
        join(c, "seq");
    }
    let mut p = Client::connect(s.addr);
    for i in 0..200 {
        p.send_text(&format!("pub seq {i}"));
    }
    for c in &mut subs {
        for i in 0..200 {
            assert_eq!(c.recv_text(), i.to_string());
        }
    }
}

#[test]
fn topic_events_and_subscriptions_end_with_the_connection() {
    let (s, events) = start(config());
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    join(&mut a, "t");
    assert_eq!(
        events.recv_timeout(Duration::from_secs(5)).unwrap(),
        ("t".to_string(), true)
    );
    join(&mut b, "t");
    assert_eq!(s.handle.subscriber_count("t"), 2);
    drop(a);
    wait_until(5, "a's subscription ended", || {
        s.handle.subscriber_count("t") == 1
    });
    b.send_text("unsub t");
    assert_eq!(b.recv_text(), "unsub t true");
    assert_eq!(
        events.recv_timeout(Duration::from_secs(5)).unwrap(),
        ("t".to_string(), false)
    );
    assert!(s.handle.topics().is_empty());
}

fn slow_consumer(policy: BackpressurePolicy) {
    let cfg = config().max_outbound_bytes(512 << 10).backpressure(policy);
    let (s, _) = start(cfg);
    let mut fast: Vec<Client> = (0..3).map(|_| Client::connect(s.addr)).collect();
    for c in &mut fast {
        join(c, "feed");
    }
    let mut slow = Client::connect(s.addr);
    join(&mut slow, "feed");
    // 800 × 32 KiB = 25 MiB: more than the slow reader's socket buffers plus its queue limit.
    let n = 800;
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    for mut c in fast {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for i in 0..n {
                let m = c.recv();
                assert_eq!(&m.as_bytes()[..8], format!("{i:08}").as_bytes(), "order");
                assert_eq!(m.len(), 32 << 10);
            }
            tx.send(()).unwrap();
        }));
    }
    // A paced publisher (from a non-worker thread), as a feed would be.
    for i in 0..n {
        let mut m = format!("{i:08} ").into_bytes();
        m.resize(32 << 10, b'.');
        s.handle.publish("feed", Message::binary(m));
        if i % 8 == 7 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for _ in 0..3 {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a fast subscriber missed messages");
    }
    for r in readers {
        r.join().unwrap();
    }
    let st = s.handle.stats();
    match policy {
        BackpressurePolicy::Drop => {
            assert!(st.dropped_messages > 0, "{st:?}");
            assert_eq!(st.slow_consumers_closed, 0);
        }
        _ => assert_eq!(st.slow_consumers_closed, 1, "{st:?}"),
    }
    drop(slow);
}

#[test]
fn slow_consumer_is_dropped_others_get_everything_in_order() {
    slow_consumer(BackpressurePolicy::Close);
}

#[test]
fn slow_consumer_skipped_under_drop_policy() {
    slow_consumer(BackpressurePolicy::Drop);
}

#[test]
fn stats_match_what_was_sent() {
    let (s, _) = start(config());
    let mut cs: Vec<Client> = (0..3).map(|_| Client::connect(s.addr)).collect();
    for c in &mut cs {
        join(c, "r");
    }
    cs[0].send_text("pub r 12345");
    for c in &mut cs {
        assert_eq!(c.recv_text(), "12345");
    }
    wait_until(5, "stats", || {
        let st = s.handle.stats();
        // 3 "sub" + 1 "pub" in; 3 replies + 3 deliveries out.
        st.messages_in == 4 && st.messages_out == 6 && st.connections_open == 3
    });
}
