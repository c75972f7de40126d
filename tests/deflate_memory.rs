//! What a dedicated permessage-deflate connection holds, counted exactly with a counting global
//! allocator (live heap bytes): a `Config::dedicated_deflate` preset's compressor (classic zlib,
//! allocating through Rust's allocator) and its receiving window, after both directions have
//! compressed a chat stream; and what is left after an idle release. One test in this binary,
//! so nothing else allocates while it measures.

#[path = "../benches/common/counting.rs"]
mod counting;

use std::sync::atomic::Ordering;

use counting::LIVE;
use volley::protocol::deflate::{
    Compressor, CompressorConfig, DeflateEngine, InflateState, Inflater,
};
use volley::DeflateWindow;

const STREAM: &str = include_str!("../benches/data/chat-stream.jsonl");

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn compressor(w: DeflateWindow) -> Compressor {
    let mut c = CompressorConfig::default();
    c.window_bits = w.bits();
    c.mem_level = w.mem_level();
    c.engine = DeflateEngine::Zlib;
    Compressor::new(c)
}

#[test]
fn dedicated_contexts_hold_what_their_windows_say() {
    let messages: Vec<&[u8]> = STREAM.lines().map(str::as_bytes).take(500).collect();
    // The worker's inflater and scratch buffers exist before any connection does.
    let mut inflater = Inflater::new();
    let mut scratch = Vec::with_capacity(64 << 10);
    let mut client = compressor(DeflateWindow::K32);
    client.compress(b"warm up the inflater", &mut scratch);
    let mut warm = InflateState::new(true, 15);
    inflater
        .message(&mut warm, true, &scratch, 1 << 20)
        .unwrap();
    // Printed at the end: a captured `eprintln!` allocates, which would count.
    let mut report: Vec<(DeflateWindow, DeflateWindow, usize, usize)> = Vec::with_capacity(3);
    for (ours, theirs) in [
        (DeflateWindow::B512, DeflateWindow::K4),
        (DeflateWindow::K4, DeflateWindow::K4),
        (DeflateWindow::K16, DeflateWindow::K1),
    ] {
        let mut peer = compressor(theirs);
        let before = live();
        let mut conn = Box::new((compressor(ours), InflateState::new(false, theirs.bits())));
        for m in &messages {
            scratch.clear();
            conn.0.compress(m, &mut scratch);
            scratch.clear();
            peer.compress(m, &mut scratch);
            let back = inflater
                .message(&mut conn.1, true, &scratch, 1 << 20)
                .unwrap();
            assert_eq!(back.as_bytes(), *m);
            drop(back);
        }
        let held = live() - before;
        let expected = ours.compressor_bytes() + theirs.bytes();
        assert!(
            held.abs_diff(expected) < expected / 10,
            "{ours:?}/{theirs:?}: {held} B against an estimate of {expected} B"
        );
        if (ours, theirs) == (DeflateWindow::B512, DeflateWindow::K4) {
            assert!(held <= 16 << 10, "the 4 KiB class holds {held} B");
        }
        // Idle: the compressor goes down to its window; the stream goes on afterwards.
        assert!(conn.0.release());
        let idle = live() - before;
        assert!(
            idle <= ours.bytes() + theirs.bytes() + 256,
            "{ours:?}/{theirs:?}: {idle} B after release"
        );
        drop(conn);
        assert_eq!(live(), before, "{ours:?}/{theirs:?} leaked");
        report.push((ours, theirs, held, idle));
    }
    for (ours, theirs, held, idle) in report {
        eprintln!("{ours:?}/{theirs:?}: {held} B live, {idle} B after the idle release");
    }
}
