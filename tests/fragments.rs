//! Sending a message in fragments (`Context::send_*_fragment`) and a large transfer paced by the
//! queue (`ReadStreamer`), over real sockets: the client's frame reader (the library's, which
//! refuses any interleaving RFC 6455 forbids) sees control frames between fragments and whole
//! messages only after the fragmented one; the streamer never lets the queue grow past its
//! high-water mark.

mod util;

use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use util::*;
use volley::{Context, Error, Handler, Message, ReadStreamer, Request, Upgrade};

const FILE: usize = 8 << 20;
const HIGH_WATER: usize = 256 << 10;
const CHUNK: usize = 64 << 10;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

struct App {
    streamer: Option<ReadStreamer<Cursor<Vec<u8>>>>,
    /// The most the connection had queued while streaming.
    peak: Arc<AtomicUsize>,
}

impl App {
    fn track(&self, ctx: &Context<'_>) {
        self.peak
            .fetch_max(ctx.buffered_amount(), Ordering::Relaxed);
    }
}

impl Handler for App {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("news");
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        match msg.as_text() {
            Some("interleave") => {
                ctx.send_text_fragment("Hel", false).unwrap();
                ctx.ping(b"between").unwrap();
                // Whole messages wait for the fragmented one to end.
                ctx.send("whole").unwrap();
                ctx.publish("news", "published");
                ctx.send_text_fragment("lo, ", false).unwrap();
                assert!(ctx.is_sending_fragments());
                ctx.send_text_fragment("world", true).unwrap();
                assert!(!ctx.is_sending_fragments());
            }
            Some("mix") => {
                ctx.send_binary_fragment(&b"ab"[..], false).unwrap();
                let wrong = ctx.send_text_fragment("no", true);
                ctx.send(format!(
                    "{:?}",
                    wrong.map_err(|e| matches!(e, Error::FragmentKind))
                ))
                .unwrap();
                ctx.send_binary_fragment(&b"cd"[..], true).unwrap();
            }
            Some("file") => {
                let mut s = ReadStreamer::new(Cursor::new(pattern(FILE)))
                    .chunk_size(CHUNK)
                    .high_water(HIGH_WATER);
                let done = s.pump(ctx).unwrap();
                self.track(ctx);
                if !done {
                    self.streamer = Some(s);
                }
            }
            _ => drop(ctx.send(msg)),
        }
    }

    fn on_drain(&mut self, ctx: &mut Context<'_>) {
        if let Some(s) = self.streamer.as_mut() {
            if s.pump(ctx).unwrap() {
                self.streamer = None;
            }
            self.track(ctx);
        }
    }
}

fn server(peak: Arc<AtomicUsize>) -> TestServer {
    TestServer::start(config(), move |_r: &Request<'_>| {
        Upgrade::accept(App {
            streamer: None,
            peak: peak.clone(),
        })
    })
}

#[test]
fn control_frames_go_between_fragments_and_whole_messages_after() {
    let s = server(Arc::default());
    let mut c = Client::connect(s.addr);
    c.send_text("interleave");
    match c.next() {
        Got::Ping(p) => assert_eq!(p, b"between"),
        other => panic!("expected the ping between the fragments, got {other:?}"),
    }
    assert_eq!(c.recv_text(), "Hello, world");
    let mut rest = [c.recv_text(), c.recv_text()];
    rest.sort();
    assert_eq!(rest, ["published".to_string(), "whole".to_string()]);
    // The connection goes on as usual.
    c.send_text("echo");
    assert_eq!(c.recv_text(), "echo");
}

#[test]
fn a_fragment_of_the_other_kind_is_refused() {
    let s = server(Arc::default());
    let mut c = Client::connect(s.addr);
    c.send_text("mix");
    assert_eq!(c.recv().as_bytes(), b"abcd");
    assert_eq!(c.recv_text(), "Err(true)");
}

#[test]
fn a_large_transfer_is_paced_by_the_queue() {
    let peak = Arc::new(AtomicUsize::new(0));
    let s = server(peak.clone());
    let mut c = Client::connect(s.addr);
    c.send_text("file");
    // A slow start: the server must wait, not buffer the file.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let m = c.recv();
    assert_eq!(m.len(), FILE);
    assert!(
        m.as_bytes() == pattern(FILE).as_slice(),
        "the file changed on the way"
    );
    let peak = peak.load(Ordering::Relaxed);
    eprintln!("peak queue while streaming {FILE} bytes: {peak} bytes");
    assert!(
        peak <= HIGH_WATER + CHUNK + 64,
        "the queue reached {peak} bytes (high water {HIGH_WATER})"
    );
    c.send_text("after");
    assert_eq!(c.recv_text(), "after");
}
