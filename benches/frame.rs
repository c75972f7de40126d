//! Frame reading cost for small messages, where per-frame overhead dominates: header decoding
//! alone, one masked text frame through [`Reader::read`] (decode, checks, unmask, UTF-8, split),
//! and a read buffer of 100 back-to-back frames, as a busy connection delivers them.
//!
//! Run: `cargo bench --bench frame` (results read as frames/second). Each `read` iteration gets a
//! fresh copy of the input (made outside the timed part), since reading unmasks in place.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use volley::protocol::frame::{Frame, FrameHeader, OpCode};
use volley::protocol::reader::{Reader, ReaderConfig, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn config() -> ReaderConfig {
    ReaderConfig {
        role: Role::Server,
        max_frame_size: 16 << 20,
        max_message_size: 64 << 20,
    }
}

/// A masked text frame whose whole size (header included) is `frame_len` bytes.
fn text_frame(frame_len: usize) -> Vec<u8> {
    let payload_len = frame_len - FrameHeader::encoded_len(frame_len as u64 - 6, true);
    let payload: Vec<u8> = (0..payload_len).map(|i| b'a' + (i % 26) as u8).collect();
    let frame = Frame::text(&payload).masked(KEY).encode().to_vec();
    assert_eq!(frame.len(), frame_len);
    frame
}

/// Read every event out of `buf`; returns how many there were.
fn drain(reader: &mut Reader, buf: &mut BytesMut, cfg: &ReaderConfig) -> usize {
    let mut n = 0;
    while let Some(event) = reader.read(buf, cfg).expect("valid input") {
        black_box(event);
        n += 1;
    }
    n
}

fn frames(c: &mut Criterion) {
    let cfg = config();
    let mut group = c.benchmark_group("frame");
    for size in [20usize, 125] {
        let frame = text_frame(size);

        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("decode_header", format!("{size}B")), |b| {
            b.iter(|| FrameHeader::decode(black_box(&frame)))
        });

        group.bench_function(BenchmarkId::new("read_1", format!("{size}B")), |b| {
            let mut reader = Reader::new();
            b.iter_batched(
                || BytesMut::from(&frame[..]),
                |mut buf| reader.read(&mut buf, &cfg).expect("valid input"),
                BatchSize::SmallInput,
            )
        });

        let hundred = frame.repeat(100);
        group.throughput(Throughput::Elements(100));
        group.bench_function(BenchmarkId::new("read_100", format!("{size}B")), |b| {
            let mut reader = Reader::new();
            b.iter_batched(
                || BytesMut::from(&hundred[..]),
                |mut buf| assert_eq!(drain(&mut reader, &mut buf, &cfg), 100),
                BatchSize::SmallInput,
            )
        });
    }

    // The same 100 frames of 125-byte payload as 10 messages of 10 fragments (reassembled).
    let payload = [b'x'; 119];
    let mut fragmented = Vec::new();
    for _ in 0..10 {
        for i in 0..10 {
            let op = if i == 0 {
                OpCode::Text
            } else {
                OpCode::Continuation
            };
            fragmented.extend_from_slice(
                &Frame::new(op, &payload)
                    .with_fin(i == 9)
                    .masked(KEY)
                    .encode(),
            );
        }
    }
    group.throughput(Throughput::Elements(100));
    group.bench_function("read_100_fragmented/125B", |b| {
        let mut reader = Reader::new();
        b.iter_batched(
            || BytesMut::from(&fragmented[..]),
            |mut buf| assert_eq!(drain(&mut reader, &mut buf, &cfg), 10),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
