//! permessage-deflate codec: throughput of compress and decompress for a 1 KiB JSON chat message
//! and a 64 KiB text, "dedicated" (context takeover: one compressor per connection, messages
//! refer to earlier ones) against "shared" (no context takeover: reset after every message, so
//! one compressor can serve a whole worker), plus the memory each codec context holds.
//!
//! Run: `cargo bench --bench deflate` (briefly: `-- --warm-up-time 1 --measurement-time 2`).
//! The memory table is printed first; it counts live heap bytes with a wrapping global
//! allocator, so it is exact for this build.

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{BenchmarkId, Criterion, Throughput};
use volley::protocol::deflate::{Compressor, CompressorConfig, Decompressor, DeflateEngine};

#[path = "common/counting.rs"]
mod counting;
use counting::LIVE;

/// The tests' deterministic generator, so every run compresses the same bytes.
#[path = "../src/protocol/test_rng.rs"]
mod test_rng;
use test_rng::Rng;

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by",
    "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there",
    "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other",
    "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make", "like",
    "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no",
    "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "server",
    "socket", "message", "deflate", "window", "frame", "latency", "room", "general",
];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

fn sentence(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `count` distinct chat events of exactly 1024 bytes of JSON each.
fn chat_messages(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..count)
        .map(|i| {
            let mut json = String::from("{\"type\":\"chat\",\"messages\":[");
            for j in 0.. {
                let words = 8 + (rng.next() % 10) as usize;
                let event = format!(
                    "{{\"id\":{},\"room\":\"general\",\"user\":\"{}\",\"ts\":{},\"text\":\"{}\"}}",
                    1_000_000 + i * 8 + j,
                    rng.pick(USERS),
                    1_700_000_000 + rng.next() % 100_000,
                    sentence(&mut rng, words)
                );
                // Room left for `,`, `],"pad":""}` and at least one pad byte.
                if json.len() + event.len() + 14 > 1024 {
                    break;
                }
                if j > 0 {
                    json.push(',');
                }
                json.push_str(&event);
            }
            json.push_str("],\"pad\":\"");
            while json.len() < 1024 - 2 {
                json.push('x');
            }
            json.push_str("\"}");
            assert_eq!(json.len(), 1024);
            json.into_bytes()
        })
        .collect()
}

/// `count` distinct texts of exactly 64 KiB.
fn texts(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..count)
        .map(|_| {
            let mut text = String::new();
            while text.len() < 64 << 10 {
                let words = 6 + (rng.next() % 14) as usize;
                text.push_str(&sentence(&mut rng, words));
                text.push_str(".\n");
            }
            text.truncate(64 << 10);
            text.into_bytes()
        })
        .collect()
}

fn config(
    window_bits: u8,
    mem_level: u8,
    level: u8,
    no_context_takeover: bool,
) -> CompressorConfig {
    let mut config = CompressorConfig::default();
    config.window_bits = window_bits;
    config.mem_level = mem_level;
    config.level = level;
    config.no_context_takeover = no_context_takeover;
    config
}

/// Live heap bytes per context: `N` contexts built and used once, divided by `N`.
fn bytes_per_context<T>(make: impl Fn() -> T, use_it: impl Fn(&mut T)) -> usize {
    const N: usize = 32;
    let before = LIVE.load(Ordering::Relaxed);
    let mut all: Vec<T> = Vec::with_capacity(N);
    let vec_bytes = LIVE.load(Ordering::Relaxed) - before;
    for _ in 0..N {
        all.push(make());
    }
    for context in &mut all {
        use_it(context);
    }
    let after = LIVE.load(Ordering::Relaxed);
    drop(all);
    (after - before - vec_bytes) / N
}

fn print_memory_table() {
    let chat = chat_messages(8);
    let text = texts(1);
    println!("permessage-deflate memory per context (live heap bytes; zlib-rs, then classic zlib)");
    println!(
        "{:<28} {:>10} {:>16} {:>16}",
        "context", "bytes", "1 KiB JSON ->", "64 KiB text ->"
    );
    for (window_bits, mem_level) in [
        (15, 9),
        (15, 8),
        (15, 4),
        (15, 1),
        (12, 4),
        (10, 4),
        (10, 1),
        (9, 1),
    ] {
        for (level, engine) in [6, 2, 1]
            .into_iter()
            .flat_map(|l| [(l, DeflateEngine::ZlibRs), (l, DeflateEngine::Zlib)])
        {
            let mut cfg = config(window_bits, mem_level, level, false);
            cfg.engine = engine;
            let per = bytes_per_context(
                || Compressor::new(cfg),
                |c| {
                    let mut out = Vec::new();
                    c.compress(&chat[0], &mut out);
                },
            );
            // Ratio with context takeover: the eighth of eight chat messages, and one text.
            let mut c = Compressor::new(cfg);
            let mut out = Vec::new();
            for msg in &chat {
                out.clear();
                c.compress(msg, &mut out);
            }
            let chat_len = out.len();
            out.clear();
            Compressor::new(cfg).compress(&text[0], &mut out);
            println!(
                "{:<28} {:>10} {:>16} {:>16}",
                format!("{engine:?} w{window_bits} m{mem_level} l{level}"),
                per,
                chat_len,
                out.len()
            );
        }
    }
    let mut payload = Vec::new();
    Compressor::new(CompressorConfig::default()).compress(&chat[0], &mut payload);
    for window_bits in [15, 9] {
        let per = bytes_per_context(
            || Decompressor::new(window_bits, false),
            |d| {
                let _ = d.decompress(&payload, 1 << 20);
            },
        );
        println!("{:<28} {:>10}", format!("decompressor w{window_bits}"), per);
    }
    let per = bytes_per_context(
        || flate2::Compress::new(flate2::Compression::default(), false),
        |c| {
            let mut out = Vec::with_capacity(2048);
            let _ = c.compress_vec(&chat[0], &mut out, flate2::FlushCompress::Sync);
        },
    );
    println!("{:<28} {:>10}", "flate2::Compress (15/8)", per);
    println!();
}

/// The modes benched: name, window bits, memory level, level, no context takeover. "dedicated"
/// and "shared" use the defaults of `DeflateOptions`; the others show what a setting changes.
const MODES: &[(&str, u8, u8, u8, bool)] = &[
    ("dedicated", 15, 4, 1, false),
    ("shared", 15, 4, 1, true),
    ("dedicated-w10", 10, 4, 1, false),
    ("dedicated-l2", 15, 4, 2, false),
    ("dedicated-l6-m8", 15, 8, 6, false),
];

fn bench_codec(c: &mut Criterion) {
    let inputs = [("json-1KiB", chat_messages(64)), ("text-64KiB", texts(4))];
    for (input_name, messages) in &inputs {
        let len = messages[0].len() as u64;
        let mut group = c.benchmark_group(format!("deflate/{input_name}"));
        group.throughput(Throughput::Bytes(len));
        for &(mode, window_bits, mem_level, level, shared) in MODES {
            let cfg = config(window_bits, mem_level, level, shared);

            group.bench_function(BenchmarkId::new("compress", mode), |b| {
                let mut compressor = Compressor::new(cfg);
                let mut out = Vec::with_capacity(2 * len as usize);
                let mut i = 0;
                b.iter(|| {
                    out.clear();
                    compressor.compress(black_box(&messages[i % messages.len()]), &mut out);
                    i += 1;
                    black_box(out.len())
                });
            });

            // The payloads of one compressor, in order; replaying them in a cycle stays valid
            // (the first was compressed from an empty window and refers to nothing).
            let mut compressor = Compressor::new(cfg);
            let payloads: Vec<Vec<u8>> = messages
                .iter()
                .map(|m| {
                    let mut out = Vec::new();
                    compressor.compress(m, &mut out);
                    out
                })
                .collect();
            let mut check = Decompressor::new(window_bits, shared);
            for _ in 0..2 {
                for (p, m) in payloads.iter().zip(messages) {
                    assert_eq!(&check.decompress(p, 1 << 20).unwrap()[..], &m[..]);
                }
            }
            group.bench_function(BenchmarkId::new("decompress", mode), |b| {
                let mut decompressor = Decompressor::new(window_bits, shared);
                let mut i = 0;
                b.iter(|| {
                    let out = decompressor
                        .decompress(black_box(&payloads[i % payloads.len()]), 16 << 20)
                        .unwrap();
                    i += 1;
                    black_box(out.len())
                });
            });
        }
        group.finish();
    }
}

fn main() {
    print_memory_table();
    let mut criterion = Criterion::default().configure_from_args();
    bench_codec(&mut criterion);
    criterion.final_summary();
}
