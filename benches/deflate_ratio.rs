//! What permessage-deflate buys on chat traffic: bytes on the wire per message, CPU per message
//! and memory per connection for each mode, on a stream recorded from the chat example
//! (`benches/data/chat-stream.jsonl`, 3,000 server messages of one room as a client received
//! them, median 82 bytes; `scripts/record-chat.py` made it).
//!
//! Modes: off; shared (one zlib-rs compressor per worker, reset after every message); and the
//! dedicated presets (`Config::dedicated_deflate`: classic zlib with context takeover, window
//! 512 B to 32 KiB with the matching memLevel), all at level 1 and compressing every message
//! (threshold 0). The table (printed first) gives bytes per message on the wire (frame header
//! included) and live heap per connection; criterion then times compressing the stream
//! (`compress/MODE`) and inflating it back through an `Inflater` with the connection's window
//! (`inflate/MODE`), per message (elements/s).
//!
//! Run: `cargo bench --bench deflate_ratio` (briefly: `-- --warm-up-time 1 --measurement-time 2`).

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{BenchmarkId, Criterion, Throughput};
use volley::protocol::deflate::{
    Compressor, CompressorConfig, DeflateEngine, InflateState, Inflater,
};
use volley::DeflateWindow;

#[path = "common/counting.rs"]
mod counting;
use counting::LIVE;

const STREAM: &str = include_str!("data/chat-stream.jsonl");

/// A mode: its name, the compressor (None: off) and the client's window (for the receiving
/// side; None: the client resets after every message).
struct Mode {
    name: String,
    compressor: Option<CompressorConfig>,
    peer_window: Option<u8>,
}

fn modes() -> Vec<Mode> {
    let mut modes = vec![
        Mode {
            name: "off".into(),
            compressor: None,
            peer_window: None,
        },
        Mode {
            name: "shared".into(),
            compressor: Some(config(15, 4, true, DeflateEngine::ZlibRs)),
            peer_window: None,
        },
    ];
    for w in DeflateWindow::ALL {
        modes.push(Mode {
            name: format!("dedicated-{}", label(w)),
            compressor: Some(config(w.bits(), w.mem_level(), false, DeflateEngine::Zlib)),
            peer_window: Some(w.bits()),
        });
    }
    // What dedicated mode ran before classic zlib: zlib-rs at window 15, memLevel 4.
    modes.push(Mode {
        name: "dedicated-32k-zlib-rs".into(),
        compressor: Some(config(15, 4, false, DeflateEngine::ZlibRs)),
        peer_window: Some(15),
    });
    modes
}

fn label(w: DeflateWindow) -> String {
    match w.bytes() {
        512 => "512".into(),
        n => format!("{}k", n >> 10),
    }
}

fn config(bits: u8, mem: u8, nct: bool, engine: DeflateEngine) -> CompressorConfig {
    let mut c = CompressorConfig::default();
    c.level = 1;
    c.window_bits = bits;
    c.mem_level = mem;
    c.no_context_takeover = nct;
    c.engine = engine;
    c
}

/// A server frame's header length for a payload of `len` bytes.
fn header(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Each message's payload as this mode sends it.
fn payloads(mode: &Mode, messages: &[&[u8]]) -> Vec<Vec<u8>> {
    let Some(cfg) = mode.compressor else {
        return messages.iter().map(|m| m.to_vec()).collect();
    };
    let mut c = Compressor::new(cfg);
    messages
        .iter()
        .map(|m| {
            let mut out = Vec::new();
            c.compress(m, &mut out);
            out
        })
        .collect()
}

fn print_table(messages: &[&[u8]]) {
    let n = messages.len();
    let raw: usize = messages.iter().map(|m| m.len()).sum();
    println!(
        "chat stream: {n} messages, {:.1} bytes of JSON per message",
        raw as f64 / n as f64
    );
    println!(
        "{:<24} {:>12} {:>8} {:>14} {:>14}",
        "mode", "wire B/msg", "ratio", "compressor B", "receive B"
    );
    for mode in modes() {
        let wire: usize = payloads(&mode, messages)
            .iter()
            .map(|p| header(p.len()) + p.len())
            .sum();
        let plain_wire: usize = messages.iter().map(|m| header(m.len()) + m.len()).sum();
        // Live heap of one connection's compressor after the whole stream, and of its receiving
        // side (the client's window) after inflating it.
        let compressor = mode.compressor.map_or(0, |cfg| {
            let before = LIVE.load(Ordering::Relaxed);
            let mut c = Box::new(Compressor::new(cfg));
            let mut out = Vec::new();
            for m in messages {
                out.clear();
                c.compress(m, &mut out);
            }
            drop(out);
            let live = LIVE.load(Ordering::Relaxed) - before;
            drop(c);
            live
        });
        let receive = mode.peer_window.map_or(0, |bits| {
            let cfg = config(bits, 1, false, DeflateEngine::Zlib);
            let p = payloads(
                &Mode {
                    name: String::new(),
                    compressor: Some(cfg),
                    peer_window: None,
                },
                messages,
            );
            // The worker's inflater exists before the connection does.
            let mut inflater = Inflater::new();
            let mut warm = InflateState::new(true, 15);
            let _ = inflater.message(&mut warm, true, &[0x00], 1 << 20);
            let before = LIVE.load(Ordering::Relaxed);
            let mut state = Box::new(InflateState::new(false, bits));
            for (payload, m) in p.iter().zip(messages) {
                let back = inflater
                    .message(&mut state, true, payload, 1 << 20)
                    .unwrap();
                assert_eq!(back.as_bytes(), *m);
            }
            LIVE.load(Ordering::Relaxed) - before
        });
        println!(
            "{:<24} {:>12.1} {:>8.2} {:>14} {:>14}",
            mode.name,
            wire as f64 / n as f64,
            plain_wire as f64 / wire as f64,
            compressor,
            receive
        );
    }
    println!();
}

fn bench(c: &mut Criterion, messages: &[&[u8]]) {
    let mut group = c.benchmark_group("chat-stream");
    group.throughput(Throughput::Elements(messages.len() as u64));
    for mode in modes() {
        let Some(cfg) = mode.compressor else {
            continue;
        };
        group.bench_function(BenchmarkId::new("compress", &mode.name), |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                // A fresh connection per pass: the stream as one connection sends it.
                let mut c = Compressor::new(cfg);
                let mut total = 0;
                for m in messages {
                    out.clear();
                    c.compress(black_box(m), &mut out);
                    total += out.len();
                }
                black_box(total)
            });
        });
        let payloads = payloads(&mode, messages);
        let (nct, bits) = match mode.peer_window {
            Some(bits) => (false, bits),
            None => (true, 15),
        };
        group.bench_function(BenchmarkId::new("inflate", &mode.name), |b| {
            let mut inflater = Inflater::new();
            b.iter(|| {
                let mut state = InflateState::new(nct, bits);
                let mut total = 0;
                for p in &payloads {
                    total += inflater
                        .message(&mut state, true, black_box(p), 1 << 20)
                        .unwrap()
                        .len();
                }
                black_box(total)
            });
        });
    }
    group.finish();
}

fn main() {
    let messages: Vec<&[u8]> = STREAM.lines().map(str::as_bytes).collect();
    print_table(&messages);
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &messages);
    criterion.final_summary();
}
