//! Timing wheel costs with 100,000 live timers spread over 0–60 s at a 10 ms tick:
//! schedule + cancel, re-arm of a random live timer, and poll cost per fired timer.
//!
//! The wheel is crate-private, so its source is included directly.

// `cargo clippy --all-targets` checks bench targets with `cfg(test)` but without the test
// harness, so the wheel's inline `#[cfg(test)]` helpers look unused there (and only there).
#[cfg_attr(test, allow(dead_code))]
#[path = "../src/runtime/timer.rs"]
mod timer;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use timer::{TimerKey, TimerWheel};

/// Live timers in every benchmark.
const LIVE: usize = 100_000;
/// Operations per measured iteration of the schedule/cancel benchmarks.
const BATCH: usize = 1_000;
/// Tick granularity.
const TICK: Duration = Duration::from_millis(10);
/// Deadlines are spread uniformly over this span.
const SPAN: Duration = Duration::from_secs(60);

/// The runtime's payload shape: (slot, generation, kind).
type Payload = (u32, u32, u8);

#[path = "../src/protocol/test_rng.rs"]
mod test_rng;
use test_rng::Rng;

/// The tests' PRNG at the path the included timer's own tests name it by.
mod protocol {
    pub(crate) use crate::test_rng;
}

/// Deadlines for the bench.
trait Deadlines {
    fn deadline(&mut self, origin: Instant) -> Instant;
}

impl Deadlines for Rng {
    /// A deadline uniformly in `origin .. origin + SPAN`.
    fn deadline(&mut self, origin: Instant) -> Instant {
        origin + Duration::from_nanos(self.next() % SPAN.as_nanos() as u64)
    }
}

/// A wheel at `origin` holding `LIVE` timers, with their keys.
fn populated(origin: Instant, rng: &mut Rng) -> (TimerWheel<Payload>, Vec<TimerKey>) {
    let mut wheel = TimerWheel::new(TICK, origin);
    let keys = (0..LIVE as u32)
        .map(|i| wheel.schedule(rng.deadline(origin), (i, 0, 0)))
        .collect();
    assert_eq!(wheel.len(), LIVE);
    (wheel, keys)
}

fn bench_timer(c: &mut Criterion) {
    let origin = Instant::now();
    let mut group = c.benchmark_group("timer");

    // Schedule a timer and cancel it again (the connection closed before its timeout).
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("schedule+cancel/100k_live", |b| {
        let mut rng = Rng(0x1234_5678);
        let (mut wheel, _keys) = populated(origin, &mut rng);
        let deadlines: Vec<Instant> = (0..BATCH).map(|_| rng.deadline(origin)).collect();
        b.iter(|| {
            for (i, &deadline) in deadlines.iter().enumerate() {
                let key = wheel.schedule(deadline, (i as u32, 1, 1));
                black_box(wheel.cancel(key));
            }
        });
        assert_eq!(wheel.len(), LIVE);
    });

    // Re-arm a random live timer: cancel it and schedule it at a new deadline (an idle
    // timeout pushed out by activity). Touches entries all over the slab, as a server would.
    group.bench_function("rearm_random/100k_live", |b| {
        let mut rng = Rng(0x9abc_def0);
        let (mut wheel, mut keys) = populated(origin, &mut rng);
        let picks: Vec<(usize, Instant)> = (0..BATCH)
            .map(|_| (rng.next() as usize % LIVE, rng.deadline(origin)))
            .collect();
        b.iter(|| {
            for &(i, deadline) in &picks {
                if let Some(value) = wheel.cancel(keys[i]) {
                    keys[i] = wheel.schedule(deadline, value);
                }
            }
        });
        assert_eq!(wheel.len(), LIVE);
    });

    // Poll tick by tick through the whole 60 s until all 100k have fired, as a worker woken
    // every tick would: includes cascading and the empty-tick overhead.
    group.throughput(Throughput::Elements(LIVE as u64));
    group.bench_function("poll_every_tick/per_fired", |b| {
        let mut rng = Rng(0x0bad_cafe);
        let mut fired = Vec::with_capacity(LIVE);
        b.iter_batched(
            || populated(origin, &mut rng).0,
            |mut wheel| {
                let ticks = (SPAN.as_nanos() / TICK.as_nanos()) as u32;
                for t in 1..=ticks {
                    wheel.poll(origin + TICK * t, &mut fired);
                    black_box(&fired);
                    fired.clear();
                }
                assert!(wheel.is_empty());
                wheel
            },
            BatchSize::LargeInput,
        );
    });

    // Sleep until next_deadline, poll, repeat: the worker's real loop.
    group.bench_function("poll_at_next_deadline/per_fired", |b| {
        let mut rng = Rng(0x5eed_5eed);
        let mut fired = Vec::with_capacity(LIVE);
        b.iter_batched(
            || populated(origin, &mut rng).0,
            |mut wheel| {
                while let Some(next) = wheel.next_deadline() {
                    wheel.poll(next, &mut fired);
                    black_box(&fired);
                    fired.clear();
                }
                wheel
            },
            BatchSize::LargeInput,
        );
    });

    // One poll 60 s later fires everything (a worker that stalled).
    group.bench_function("poll_one_jump/per_fired", |b| {
        let mut rng = Rng(0xfeed_f00d);
        let mut fired = Vec::with_capacity(LIVE);
        b.iter_batched(
            || populated(origin, &mut rng).0,
            |mut wheel| {
                wheel.poll(origin + SPAN, &mut fired);
                assert_eq!(fired.len(), LIVE);
                fired.clear();
                wheel
            },
            BatchSize::LargeInput,
        );
    });

    // The worker asks for its poll timeout once per loop.
    group.throughput(Throughput::Elements(1));
    group.bench_function("timeout/100k_live", |b| {
        let mut rng = Rng(0x7777_7777);
        let (wheel, _keys) = populated(origin, &mut rng);
        b.iter(|| black_box(&wheel).timeout(black_box(origin)));
    });
    group.finish();
}

criterion_group!(benches, bench_timer);
criterion_main!(benches);
