//! Fan-out queue work: delivering one 64-byte message to 10,000 local subscribers.
//!
//! - `publish_shared`: what a worker does for a publish — the frame is encoded once and each
//!   subscriber's outbound queue receives a clone of the same `Bytes` (a reference count).
//! - `send_each`: the per-connection send path — each connection encodes its own frame
//!   (header + payload copied into a new buffer), as `Context::send` does for small messages.
//!
//! Both push into the runtime's own `OutQueue` (exposed with `--features bench-internals`);
//! sockets are not involved (their writes cost the same in both paths).
//!
//! Run: `cargo bench --features bench-internals --bench fanout`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use volley::bench_internals::OutQueue;
use volley::protocol::frame::Frame;

const SUBSCRIBERS: usize = 10_000;

fn fanout(c: &mut Criterion) {
    let payload = [b'x'; 64];
    let mut g = c.benchmark_group("fanout_64B_to_10k");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    // Live subscribers: queues that have carried frames before (their ring buffer is allocated
    // and now empty), as on a connection that has been open a while.
    let fresh = || {
        (0..SUBSCRIBERS)
            .map(|_| {
                let mut q = OutQueue::default();
                q.push(Frame::text(b"warm").encode());
                q.write_to(&mut std::io::sink()).unwrap();
                q
            })
            .collect::<Vec<_>>()
    };
    g.bench_function("publish_shared", |b| {
        b.iter_batched(
            fresh,
            |mut queues| {
                let frame = Frame::text(&payload).encode();
                for q in &mut queues {
                    q.push(frame.clone());
                }
                queues
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("send_each", |b| {
        b.iter_batched(
            fresh,
            |mut queues| {
                for q in &mut queues {
                    q.push(Frame::text(&payload).encode());
                }
                queues
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
