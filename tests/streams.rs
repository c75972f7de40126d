//! Topic streams over real sockets: offsets and epochs, recovery after a reconnect with exactly
//! what was missed (also while others publish at full rate), explicit failure when the history
//! is too short or of another epoch, the latest publication on subscribe.

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::*;
use volley::{
    Context, Handler, HistoryOptions, Message, Recovery, Request, Server, ServerHandle, Since,
    StreamPosition, Upgrade,
};

/// Text commands: `sub TOPIC now|latest|after OFFSET EPOCH` answers `subscribed OUTCOME OFFSET
/// EPOCH` (after whatever the history sent); `pub TOPIC TEXT` publishes `m OFFSET EPOCH TEXT`
/// and answers `published OFFSET`.
struct Streams;

impl Handler for Streams {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let text = msg.as_text().unwrap_or_default().to_string();
        let words: Vec<&str> = text.splitn(5, ' ').collect();
        match words.as_slice() {
            ["sub", topic, rest @ ..] => {
                let since = match rest {
                    ["now"] => Since::Now,
                    ["latest"] => Since::Latest,
                    ["after", offset, epoch] => Since::After(StreamPosition {
                        offset: offset.parse().unwrap_or(0),
                        epoch: epoch.to_string(),
                    }),
                    _ => return,
                };
                let answer = match ctx.subscribe_stream(topic, since) {
                    None => "nohistory".to_string(),
                    Some(s) => {
                        let outcome = match s.recovery {
                            Recovery::Live => "live".to_string(),
                            Recovery::Latest => "latest".to_string(),
                            Recovery::Recovered { missed } => format!("recovered:{missed}"),
                            Recovery::Failed => "failed".to_string(),
                        };
                        let p = s.position;
                        format!("subscribed {outcome} {} {}", p.offset, p.epoch)
                    }
                };
                let _ = ctx.send(answer);
            }
            ["pub", topic, text @ ..] => {
                let text = text.join(" ");
                let answer = match ctx.publish_stream(topic, |p| envelope(p, &text)) {
                    Some(p) => format!("published {}", p.offset),
                    None => "nohistory".to_string(),
                };
                let _ = ctx.send(answer);
            }
            _ => {}
        }
    }
}

fn envelope(p: &StreamPosition, text: &str) -> Message {
    Message::text(format!("m {} {} {text}", p.offset, p.epoch))
}

fn server(size: usize) -> TestServer {
    let builder = Server::builder()
        .config(config())
        .history("room.", HistoryOptions::new(size, Duration::from_secs(60)));
    TestServer::start_with(builder, |_r: &Request<'_>| Upgrade::accept(Streams))
}

/// What a client received: stream messages as (offset, epoch), and the last answer.
#[derive(Debug, Default)]
struct Seen {
    offsets: Vec<u64>,
    epoch: String,
}

impl Seen {
    fn note(&mut self, text: &str) -> bool {
        let mut w = text.split(' ');
        if w.next() != Some("m") {
            return false;
        }
        self.offsets.push(w.next().unwrap().parse().unwrap());
        self.epoch = w.next().unwrap().to_string();
        true
    }
}

/// Read until an answer (a text not starting with "m "), noting stream messages.
fn until_answer(c: &mut Client, seen: &mut Seen) -> String {
    loop {
        let t = c.recv_text();
        if !seen.note(&t) {
            return t;
        }
    }
}

/// Read stream messages until offset `last` has arrived.
fn until_offset(c: &mut Client, seen: &mut Seen, last: u64) {
    while seen.offsets.last().is_none_or(|&o| o < last) {
        let t = c.recv_text();
        assert!(seen.note(&t), "unexpected {t}");
    }
}

/// (outcome, offset, epoch) of a `subscribed` answer.
fn subscribed(answer: &str) -> (String, u64, String) {
    let w: Vec<&str> = answer.split(' ').collect();
    assert_eq!(w[0], "subscribed", "{answer}");
    (w[1].to_string(), w[2].parse().unwrap(), w[3].to_string())
}

fn publish(h: &ServerHandle, topic: &str, n: usize) -> StreamPosition {
    let mut last = None;
    for i in 0..n {
        last = h.publish_stream(topic, |p| envelope(p, &format!("x{i}")));
    }
    last.expect("the topic keeps a history")
}

#[test]
fn an_offline_client_resumes_with_exactly_what_it_missed_then_live() {
    let s = server(2000);
    let mut a = Client::connect(s.addr);
    a.send_text("sub room.a now");
    let (outcome, offset, epoch) = subscribed(&until_answer(&mut a, &mut Seen::default()));
    assert_eq!((outcome.as_str(), offset), ("live", 0));
    publish(&s.handle, "room.a", 10);
    let mut seen = Seen::default();
    until_offset(&mut a, &mut seen, 10);
    assert_eq!(seen.offsets, (1..=10).collect::<Vec<_>>());
    drop(a);
    // Offline while 1,000 are published (from a handle and from another connection).
    publish(&s.handle, "room.a", 500);
    let mut other = Client::connect(s.addr);
    for i in 0..500 {
        other.send_text(&format!("pub room.a y{i}"));
        assert!(other.recv_text().starts_with("published "));
    }
    let mut b = Client::connect(s.addr);
    b.send_text(&format!("sub room.a after 10 {epoch}"));
    let mut seen = Seen::default();
    let answer = until_answer(&mut b, &mut seen);
    assert_eq!(subscribed(&answer), ("recovered:1000".into(), 1010, epoch));
    assert_eq!(
        seen.offsets,
        (11..=1010).collect::<Vec<_>>(),
        "exactly the missed"
    );
    publish(&s.handle, "room.a", 5);
    until_offset(&mut b, &mut seen, 1015);
    assert_eq!(seen.offsets, (11..=1015).collect::<Vec<_>>(), "then live");
    wait_until(5, "counted", || s.handle.stats().recoveries == 1);
}

/// Publishers at full rate (two threads through the handle, one connection through its
/// context) while clients resume from random earlier positions: each gets one unbroken run of
/// offsets from its position on, no gap, no duplicate, in order.
#[test]
fn resuming_while_others_publish_at_full_rate_has_no_gap_and_no_duplicate() {
    let s = server(100_000);
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for t in 0..2 {
        let (h, stop) = (s.handle.clone(), stop.clone());
        publishers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                h.publish_stream("room.busy", |p| envelope(p, &format!("t{t}")));
            }
        }));
    }
    let addr = s.addr;
    let stop2 = stop.clone();
    publishers.push(std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        while !stop2.load(Ordering::Relaxed) {
            c.send_text("pub room.busy c");
            c.recv_text();
        }
    }));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..12 {
        std::thread::sleep(Duration::from_millis(20));
        // A position somewhere in the recent past of the stream.
        let mut probe = Client::connect(s.addr);
        probe.send_text("sub room.busy now");
        let (_, now, epoch) = subscribed(&until_answer(&mut probe, &mut Seen::default()));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let from = now.saturating_sub(rng % 3000);
        let mut c = Client::connect(s.addr);
        c.send_text(&format!("sub room.busy after {from} {epoch}"));
        let mut seen = Seen::default();
        let answer = until_answer(&mut c, &mut seen);
        let (outcome, at, _) = subscribed(&answer);
        assert!(outcome.starts_with("recovered:"), "round {round}: {answer}");
        until_offset(&mut c, &mut seen, at + 200);
        let want: Vec<u64> = (from + 1..=*seen.offsets.last().unwrap()).collect();
        assert_eq!(
            seen.offsets, want,
            "round {round}: from {from}, answered at {at}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.join().unwrap();
    }
}

#[test]
fn recovery_fails_explicitly_when_the_history_is_too_short() {
    let s = server(10);
    let mut c = Client::connect(s.addr);
    c.send_text("sub room.short now");
    let (_, _, epoch) = subscribed(&until_answer(&mut c, &mut Seen::default()));
    drop(c);
    publish(&s.handle, "room.short", 50);
    let mut c = Client::connect(s.addr);
    c.send_text(&format!("sub room.short after 5 {epoch}"));
    let mut seen = Seen::default();
    let answer = until_answer(&mut c, &mut seen);
    assert_eq!(subscribed(&answer), ("failed".into(), 50, epoch.clone()));
    assert!(
        seen.offsets.is_empty(),
        "nothing partial: {:?}",
        seen.offsets
    );
    // Live from the current position, nothing older and nothing twice.
    publish(&s.handle, "room.short", 3);
    until_offset(&mut c, &mut seen, 53);
    assert_eq!(seen.offsets, vec![51, 52, 53]);
    // The last 10 can still be recovered; a position ahead of the stream cannot.
    let mut d = Client::connect(s.addr);
    d.send_text(&format!("sub room.short after 43 {epoch}"));
    let mut seen = Seen::default();
    let (outcome, _, _) = subscribed(&until_answer(&mut d, &mut seen));
    assert_eq!(outcome, "recovered:10");
    assert_eq!(seen.offsets, (44..=53).collect::<Vec<_>>());
    let mut e = Client::connect(s.addr);
    e.send_text(&format!("sub room.short after 99 {epoch}"));
    assert_eq!(
        subscribed(&until_answer(&mut e, &mut Seen::default())).0,
        "failed"
    );
    wait_until(5, "counted", || s.handle.stats().recoveries_failed == 2);
}

#[test]
fn a_position_of_another_epoch_cannot_be_recovered() {
    let s = server(100);
    let old = publish(&s.handle, "room.e", 5);
    s.stop();
    // A restart: the in-memory history starts over, with a new epoch.
    let s = server(100);
    publish(&s.handle, "room.e", 7);
    let mut c = Client::connect(s.addr);
    c.send_text(&format!("sub room.e after 3 {}", old.epoch));
    let mut seen = Seen::default();
    let (outcome, offset, epoch) = subscribed(&until_answer(&mut c, &mut seen));
    assert_eq!((outcome.as_str(), offset), ("failed", 7));
    assert_ne!(epoch, old.epoch);
    assert!(seen.offsets.is_empty());
}

#[test]
fn latest_mode_sends_the_last_publication_first() {
    let s = server(100);
    let mut c = Client::connect(s.addr);
    c.send_text("sub room.l latest");
    let (outcome, offset, _) = subscribed(&until_answer(&mut c, &mut Seen::default()));
    assert_eq!(
        (outcome.as_str(), offset),
        ("live", 0),
        "nothing published yet"
    );
    publish(&s.handle, "room.l", 4);
    let mut d = Client::connect(s.addr);
    d.send_text("sub room.l latest");
    let mut seen = Seen::default();
    let (outcome, offset, _) = subscribed(&until_answer(&mut d, &mut seen));
    assert_eq!((outcome.as_str(), offset), ("latest", 4));
    assert_eq!(seen.offsets, vec![4]);
    publish(&s.handle, "room.l", 1);
    until_offset(&mut d, &mut seen, 5);
    assert_eq!(seen.offsets, vec![4, 5]);
}

#[test]
fn topics_without_a_history_are_refused_by_the_stream_calls() {
    let s = server(100);
    let mut c = Client::connect(s.addr);
    c.send_text("sub news now");
    assert_eq!(c.recv_text(), "nohistory");
    c.send_text("pub news hello");
    assert_eq!(c.recv_text(), "nohistory");
    assert!(s
        .handle
        .publish_stream("news", |p| envelope(p, "x"))
        .is_none());
    let started = Instant::now();
    assert!(c.silent_for(100), "nothing else arrives");
    assert!(started.elapsed() < Duration::from_secs(5));
}
