//! Unmasking throughput (RFC 6455 §5.3): the word-wise [`apply_mask`] against the byte loop
//! [`apply_mask_bytewise`], at payload sizes from a chat message to a file upload.
//!
//! Run: `cargo bench --bench mask` (results read as bytes/second).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use volley::protocol::mask::{apply_mask, apply_mask_bytewise};

const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (1024, "1KiB"),
    (16 * 1024, "16KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn unmask(c: &mut Criterion) {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut group = c.benchmark_group("unmask");
    for (size, label) in SIZES {
        // One byte in so the payload starts unaligned, as it does after a frame header.
        let mut buf = vec![0x5au8; size + 1];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("apply_mask", label), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[1..]), black_box(mask), 0))
        });
        group.bench_function(BenchmarkId::new("bytewise", label), |b| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf[1..]), black_box(mask), 0))
        });
    }
    group.finish();
}

criterion_group!(benches, unmask);
criterion_main!(benches);
