//! A 1 GiB upload through one connection, streamed (`Streaming`) with `max_message_size` at its
//! default (16 MiB): the process's peak RSS grows by less than 32 MiB. The client sends one
//! binary message of 1,024 fragments of 1 MiB over a real socket; the handler checks every
//! chunk against the pattern sent and counts the bytes. Alone in its file (its own process), so
//! no other test's memory is measured with it.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use util::*;
use volley::protocol::frame::{Frame, OpCode};
use volley::{Chunk, Context, Handler, Request, Streaming, Upgrade};

const MIB: usize = 1 << 20;
const FRAGMENTS: usize = 1024;

/// Byte `i` of every fragment.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

struct Sink {
    offset: usize,
    received: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
}

impl Handler for Sink {
    fn on_chunk(&mut self, ctx: &mut Context<'_>, chunk: Chunk) {
        // Check a few bytes of each chunk (all of them would cost more than the transfer).
        let data = chunk.as_bytes();
        for k in [0, data.len() / 2, data.len().saturating_sub(1)] {
            if k < data.len() && data[k] != pattern((self.offset + k) % MIB) {
                self.bad.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.offset += data.len();
        self.received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if chunk.is_last() {
            let _ = ctx.send_text(&format!("{}", self.offset));
        }
    }
}

/// Peak resident set of this process, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_1_gib_upload_keeps_rss_growth_under_32_mib() {
    let received = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let (r, b) = (received.clone(), bad.clone());
    let cfg = config().streaming(Some(Streaming::over(64 << 10)));
    assert_eq!(cfg.max_message_size, 16 << 20, "the default");
    let s = TestServer::start(cfg, move |_req: &Request<'_>| {
        Upgrade::accept(Sink {
            offset: 0,
            received: r.clone(),
            bad: b.clone(),
        })
    });
    let mut c = Client::connect(s.addr);
    let payload: Vec<u8> = (0..MIB).map(pattern).collect();
    let key = [0x11, 0x22, 0x33, 0x44];
    // Three frames, masked once each: first, middle (sent 1,022 times), last.
    let first = Frame::new(OpCode::Binary, &payload)
        .with_fin(false)
        .masked(key)
        .encode();
    let middle = Frame::new(OpCode::Continuation, &payload)
        .with_fin(false)
        .masked(key)
        .encode();
    let last = Frame::new(OpCode::Continuation, &payload)
        .masked(key)
        .encode();
    let before = peak_rss();
    c.stream.write_all(&first).unwrap();
    for _ in 0..FRAGMENTS - 2 {
        c.stream.write_all(&middle).unwrap();
    }
    c.stream.write_all(&last).unwrap();
    assert_eq!(c.recv_text(), (FRAGMENTS * MIB).to_string());
    let growth = peak_rss().saturating_sub(before);
    eprintln!(
        "1 GiB streamed upload: peak RSS grew by {:.1} MiB",
        growth as f64 / MIB as f64
    );
    assert_eq!(received.load(Ordering::Relaxed), (FRAGMENTS * MIB) as u64);
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "chunks differ from what was sent"
    );
    assert!(growth < 32 << 20, "peak RSS grew by {growth} bytes");
    s.stop();
}
