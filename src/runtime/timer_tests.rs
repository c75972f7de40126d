//! Unit tests of `runtime/timer.rs`.

use super::*;
use crate::protocol::test_rng::Rng;
use std::collections::{BTreeMap, HashMap};

/// Tick length used by most tests.
const TICK: Duration = Duration::from_millis(10);

/// `origin + nanos`.
fn at(origin: Instant, nanos: u64) -> Instant {
    origin + Duration::from_nanos(nanos)
}

/// `origin + ms` milliseconds.
fn ms(origin: Instant, ms: u64) -> Instant {
    origin + Duration::from_millis(ms)
}

/// Polls and returns what fired.
fn poll<T>(wheel: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
    let mut fired = Vec::new();
    wheel.poll(now, &mut fired);
    fired
}

#[test]
fn sizes() {
    type Payload = (u32, u32, u8);
    assert_eq!(std::mem::size_of::<Entry<Payload>>(), 32);
    assert_eq!(std::mem::size_of::<SlabSlot<Entry<Payload>>>(), 32);
    assert_eq!(std::mem::size_of::<TimerKey>(), 8);
    assert_eq!(std::mem::size_of::<Option<TimerKey>>(), 8);
    assert_eq!(std::mem::size_of::<Level>(), 8 + 64 * 8);
}

#[test]
fn empty_wheel() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::<u32>::new(TICK, origin);
    assert!(wheel.is_empty());
    assert_eq!(wheel.len(), 0);
    assert_eq!(wheel.next_deadline(), None);
    assert_eq!(wheel.timeout(origin), None);
    assert!(poll(&mut wheel, ms(origin, 1_000_000)).is_empty());
    assert!(format!("{wheel:?}").starts_with("TimerWheel"));
}

#[test]
fn fires_in_deadline_order_and_never_early() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    // (deadline in ms, id); several share a tick, some not on a tick boundary.
    let plan = [
        (250, 0),
        (15, 1),
        (20, 2),
        (1_000, 3),
        (11, 4),
        (250, 5),
        (70_000, 6),
    ];
    for &(deadline, id) in &plan {
        wheel.schedule(ms(origin, deadline), id);
    }
    assert_eq!(wheel.len(), plan.len());
    // 11 ms and 15 ms round up to 20 ms: nothing at 19.999 ms.
    assert!(poll(&mut wheel, at(origin, 19_999_999)).is_empty());
    assert_eq!(poll(&mut wheel, ms(origin, 20)), vec![1, 2, 4]);
    assert!(poll(&mut wheel, ms(origin, 249)).is_empty());
    assert_eq!(poll(&mut wheel, ms(origin, 250)), vec![0, 5]);
    // One big jump fires the rest in deadline order.
    assert_eq!(poll(&mut wheel, ms(origin, 100_000)), vec![3, 6]);
    assert!(wheel.is_empty());
}

#[test]
fn same_tick_fires_in_scheduling_order_across_cascades() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(Duration::from_nanos(1), origin);
    let deadline = at(origin, 64 * 64 * 5 + 7);
    wheel.schedule(deadline, 0); // level 2
    assert!(poll(&mut wheel, at(origin, 64 * 64 * 5)).is_empty());
    wheel.schedule(deadline, 1); // level 0 now; 0 has cascaded there first
    wheel.schedule(deadline, 2);
    assert_eq!(poll(&mut wheel, deadline), vec![0, 1, 2]);
}

#[test]
fn cancel_removes_and_returns_payload() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    let a = wheel.schedule(ms(origin, 100), 'a');
    let b = wheel.schedule(ms(origin, 100), 'b');
    let c = wheel.schedule(ms(origin, 100), 'c');
    let far = wheel.schedule(ms(origin, 3_600_000), 'f');
    assert_eq!(wheel.cancel(b), Some('b'));
    assert_eq!(wheel.cancel(b), None);
    assert_eq!(wheel.cancel(far), Some('f'));
    assert_eq!(wheel.len(), 2);
    assert_eq!(poll(&mut wheel, ms(origin, 100)), vec!['a', 'c']);
    assert_eq!(wheel.cancel(a), None);
    assert_eq!(wheel.cancel(c), None);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn cancel_head_middle_tail_of_a_slot() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    let keys: Vec<_> = (0..6).map(|i| wheel.schedule(ms(origin, 50), i)).collect();
    assert_eq!(wheel.cancel(keys[0]), Some(0));
    assert_eq!(wheel.cancel(keys[5]), Some(5));
    assert_eq!(wheel.cancel(keys[2]), Some(2));
    assert_eq!(poll(&mut wheel, ms(origin, 50)), vec![1, 3, 4]);
    // Cancelling every entry of a slot clears its bitmap bit.
    let k = wheel.schedule(ms(origin, 80), 9);
    assert_eq!(wheel.cancel(k), Some(9));
    assert_eq!(wheel.next_deadline(), None);
    assert!(wheel.levels.iter().all(|l| l.occupied == 0));
}

#[test]
fn stale_key_after_fire_and_slot_reuse_is_inert() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    let old = wheel.schedule(ms(origin, 10), 1);
    assert_eq!(poll(&mut wheel, ms(origin, 10)), vec![1]);
    let new = wheel.schedule(ms(origin, 50), 2);
    assert_eq!(old.index, new.index, "the slab slot is reused");
    assert_eq!(wheel.cancel(old), None);
    assert_eq!(wheel.len(), 1);
    assert_eq!(poll(&mut wheel, ms(origin, 50)), vec![2]);
    // Same after a cancel.
    let k1 = wheel.schedule(ms(origin, 100), 3);
    assert_eq!(wheel.cancel(k1), Some(3));
    let k2 = wheel.schedule(ms(origin, 100), 4);
    assert_eq!(k1.index, k2.index);
    assert_eq!(wheel.cancel(k1), None);
    assert_eq!(wheel.cancel(k2), Some(4));
}

#[test]
fn sequence_wraps_past_zero() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    wheel.next_seq = NonZeroU32::MAX;
    let a = wheel.schedule(ms(origin, 10), 1);
    let b = wheel.schedule(ms(origin, 10), 2);
    assert_eq!(a.seq, NonZeroU32::MAX);
    assert_eq!(b.seq, NonZeroU32::MIN);
    assert_eq!(wheel.cancel(a), Some(1));
    assert_eq!(wheel.cancel(b), Some(2));
}

#[test]
fn rearm_by_cancel_and_schedule() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    let mut key = wheel.schedule(ms(origin, 1_000), "idle");
    // Activity every 500 ms pushes the deadline out; it never fires meanwhile.
    for step in 1..=10u64 {
        let now = ms(origin, step * 500);
        assert!(poll(&mut wheel, now).is_empty());
        assert_eq!(wheel.cancel(key), Some("idle"));
        key = wheel.schedule(now + Duration::from_secs(1), "idle");
        assert_eq!(wheel.len(), 1);
    }
    assert!(poll(&mut wheel, ms(origin, 5_999)).is_empty());
    assert_eq!(poll(&mut wheel, ms(origin, 6_000)), vec!["idle"]);
    assert_eq!(wheel.cancel(key), None);
}

#[test]
fn every_level_wraps_around() {
    // 1 ns ticks so block boundaries of every level (up to 2^60 ticks, ~36 years) can be
    // reached with plain `Instant` arithmetic.
    let origin = Instant::now();
    for level in 0..LEVELS - 1 {
        let span = 1u64 << (LEVEL_BITS as usize * level);
        let block = span << LEVEL_BITS; // one turn of this level
        for turn in [1u64, 2] {
            let mut wheel = TimerWheel::new(Duration::from_nanos(1), origin);
            // Park just before the end of a turn of `level`.
            let start = turn * block - 3;
            let Some(start_at) = origin.checked_add(Duration::from_nanos(start)) else {
                continue;
            };
            assert!(poll(&mut wheel, start_at).is_empty());
            // Deadlines straddling the boundary, some far into the next turn.
            let offsets = [
                1,
                2,
                3,
                4,
                span,
                span + 1,
                2 * span + 5,
                63 * span,
                block + 1,
            ];
            for (id, &off) in offsets.iter().enumerate() {
                wheel.schedule(at(origin, start + off), (id, start + off));
            }
            let mut seen = Vec::new();
            // Poll at every deadline, and one tick before it.
            let mut times: Vec<u64> = offsets.iter().map(|&o| start + o).collect();
            times.extend(offsets.iter().map(|&o| start + o - 1));
            times.sort_unstable();
            for now in times {
                for (id, deadline) in poll(&mut wheel, at(origin, now)) {
                    assert_eq!(deadline, now, "level {level} turn {turn} id {id}");
                    seen.push(id);
                }
            }
            // Deadline order; equal deadlines (level 0 repeats offsets) by id.
            let mut expected: Vec<usize> = (0..offsets.len()).collect();
            expected.sort_by_key(|&id| (offsets[id], id));
            assert_eq!(seen, expected, "level {level} turn {turn}");
            assert!(wheel.is_empty());
        }
    }
}

#[test]
fn top_level_and_huge_deadlines() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(Duration::from_nanos(1), origin);
    // 2^62 ns ≈ 146 years: lands in level 10.
    let Some(far) = origin.checked_add(Duration::from_nanos(1 << 62)) else {
        return;
    };
    let key = wheel.schedule(far, 1);
    assert!(matches!(wheel.loc_of(1 << 62), Loc::Slot { level: 10, .. }));
    assert!(poll(&mut wheel, far - Duration::from_nanos(1)).is_empty());
    assert_eq!(poll(&mut wheel, far), vec![1]);
    assert_eq!(wheel.cancel(key), None);
    // A deadline beyond what `Instant` can represent (or at the very end of it) clamps
    // rather than panicking.
    let mut wheel = TimerWheel::new(Duration::MAX, origin);
    wheel.schedule(origin + Duration::from_secs(1), 2);
    assert!(wheel.next_deadline().is_some());
}

#[test]
fn hours_long_deadlines_fire_on_time_when_sleeping_until_next_deadline() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    let hour = 3_600_000;
    let deadlines = [
        hour,
        5 * hour + 7,
        24 * hour,
        7 * 24 * hour + 3,
        30 * 24 * hour,
    ];
    for (id, &d) in deadlines.iter().enumerate() {
        wheel.schedule(ms(origin, d), id);
    }
    // A worker that sleeps exactly until `next_deadline` each time.
    let mut wakeups = 0;
    let mut fired_at = Vec::new();
    while let Some(wake) = wheel.next_deadline() {
        wakeups += 1;
        assert!(wakeups < 100, "busy ticking");
        for id in poll(&mut wheel, wake) {
            fired_at.push((id, wake));
        }
    }
    assert_eq!(fired_at.len(), deadlines.len());
    for (id, when) in fired_at {
        // Exactly the deadline rounded up to the 10 ms tick.
        let d = Duration::from_millis(deadlines[id]);
        let rounded = d.as_millis().div_ceil(10) * 10;
        assert_eq!(when - origin, Duration::from_millis(rounded as u64));
    }
    // Each timer costs at most one wake per level it cascades through, not one per tick.
    assert!(wakeups <= deadlines.len() * 5, "{wakeups} wakeups");
}

#[test]
fn ten_thousand_timers_in_one_slot() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    let n = 10_000u32;
    // All in the same level-2 slot to start with (same tick, 50 s out), so they cascade.
    let keys: Vec<_> = (0..n)
        .map(|i| wheel.schedule(ms(origin, 50_000), i))
        .collect();
    for key in keys.iter().step_by(3) {
        assert!(wheel.cancel(*key).is_some());
    }
    let expected: Vec<u32> = (0..n).filter(|i| i % 3 != 0).collect();
    assert_eq!(wheel.len(), expected.len());
    assert!(poll(&mut wheel, ms(origin, 49_999)).is_empty());
    assert_eq!(poll(&mut wheel, ms(origin, 50_000)), expected);
    assert!(wheel.is_empty());
    // And 10k in a level-0 slot.
    let keys: Vec<_> = (0..n)
        .map(|i| wheel.schedule(ms(origin, 50_100), i))
        .collect();
    assert_eq!(wheel.cancel(keys[9_999]), Some(9_999));
    assert_eq!(
        poll(&mut wheel, ms(origin, 60_000)),
        (0..9_999).collect::<Vec<_>>()
    );
}

#[test]
fn past_deadlines_fire_at_next_poll() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    assert!(poll(&mut wheel, ms(origin, 1_000)).is_empty());
    let now = ms(origin, 1_000);
    wheel.schedule(ms(origin, 2_000), 9); // future: not yet
    wheel.schedule(ms(origin, 500), 1); // past
    wheel.schedule(now, 2); // exactly now
    if let Some(before_origin) = origin.checked_sub(Duration::from_secs(5)) {
        wheel.schedule(before_origin, 3); // before the wheel existed
    }
    let k = wheel.schedule(ms(origin, 10), 4);
    assert_eq!(wheel.cancel(k), Some(4)); // cancel from the overdue list
    assert!(wheel.next_deadline().is_some_and(|d| d <= now));
    assert_eq!(wheel.timeout(now), Some(Duration::ZERO));
    // Fires even though the clock did not move.
    let fired = poll(&mut wheel, now);
    assert_eq!(&fired[..2], &[1, 2]);
    assert!(!fired.contains(&9));
    // Tick 200 seen from tick 100 sits in level 1: a lower bound, never late.
    assert!(wheel
        .next_deadline()
        .is_some_and(|d| d > now && d <= ms(origin, 2_000)));
}

#[test]
fn next_deadline_tracks_schedule_cancel_and_poll() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    assert_eq!(wheel.next_deadline(), None);
    // Within 64 ticks: exact, rounded up to the tick.
    let a = wheel.schedule(ms(origin, 333), 'a');
    assert_eq!(wheel.next_deadline(), Some(ms(origin, 340)));
    assert_eq!(
        wheel.timeout(ms(origin, 300)),
        Some(Duration::from_millis(40))
    );
    assert_eq!(wheel.timeout(ms(origin, 400)), Some(Duration::ZERO));
    let b = wheel.schedule(ms(origin, 100), 'b');
    assert_eq!(wheel.next_deadline(), Some(ms(origin, 100)));
    assert_eq!(wheel.cancel(b), Some('b'));
    assert_eq!(wheel.next_deadline(), Some(ms(origin, 340)));
    assert_eq!(wheel.cancel(a), Some('a'));
    assert_eq!(wheel.next_deadline(), None);
    // Far away: a lower bound, tightening as the cascade happens.
    wheel.schedule(ms(origin, 100_000), 'c');
    let first = wheel.next_deadline().unwrap_or(origin);
    assert!(first > origin && first <= ms(origin, 100_000));
    assert!(poll(&mut wheel, first).is_empty());
    let second = wheel.next_deadline().unwrap_or(origin);
    assert!(second > first && second <= ms(origin, 100_000));
    assert!(poll(&mut wheel, second).is_empty());
    assert_eq!(wheel.next_deadline(), Some(ms(origin, 100_000)));
    assert_eq!(poll(&mut wheel, ms(origin, 100_000)), vec!['c']);
    assert_eq!(wheel.next_deadline(), None);
}

#[test]
fn beyond_capacity_fires_at_next_poll() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    wheel.set_max_entries(2);
    wheel.schedule(ms(origin, 500), 1);
    wheel.schedule(ms(origin, 500), 2);
    let k = wheel.schedule(ms(origin, 500), 3);
    assert_eq!(wheel.len(), 3);
    assert_eq!(wheel.next_deadline(), Some(origin));
    assert_eq!(wheel.cancel(k), None);
    assert_eq!(poll(&mut wheel, origin), vec![3]);
    assert_eq!(poll(&mut wheel, ms(origin, 500)), vec![1, 2]);
}

#[test]
fn clock_going_backwards_is_ignored() {
    let origin = Instant::now();
    let mut wheel = TimerWheel::new(TICK, origin);
    wheel.schedule(ms(origin, 100), 1);
    assert!(poll(&mut wheel, ms(origin, 50)).is_empty());
    assert!(poll(&mut wheel, ms(origin, 20)).is_empty());
    assert!(poll(&mut wheel, origin).is_empty());
    assert_eq!(poll(&mut wheel, ms(origin, 100)), vec![1]);
}

/// Random operations against a `BTreeMap` model keyed by (fire tick, scheduling order).
#[test]
fn randomized_against_model() {
    for seed in 1..=8u64 {
        run_model(seed, 20_000);
    }
}

/// A wheel beside a model of it (a sorted map), driven by the same random operations.
struct Model {
    tick_nanos: u64,
    origin: Instant,
    rng: Rng,
    wheel: TimerWheel<u32>,
    /// (fire tick, order) -> id.
    model: BTreeMap<(u64, u64), u32>,
    /// id -> (key, model key).
    live: HashMap<u32, (TimerKey, (u64, u64))>,
    live_ids: Vec<u32>,
    stale: Vec<TimerKey>,
    now_nanos: u64,
    /// The model's current tick.
    elapsed: u64,
    order: u64,
    next_id: u32,
    seed: u64,
}

impl Model {
    fn new(seed: u64) -> Model {
        let tick_nanos = 1_000u64;
        let origin = Instant::now();
        Model {
            tick_nanos,
            origin,
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            wheel: TimerWheel::new(Duration::from_nanos(tick_nanos), origin),
            model: BTreeMap::new(),
            live: HashMap::new(),
            live_ids: Vec::new(),
            stale: Vec::new(),
            now_nanos: 0,
            elapsed: 0,
            order: 0,
            next_id: 0,
            seed,
        }
    }

    /// Schedule: near, mid, far, very far, or overdue.
    fn schedule(&mut self) {
        let (rng, tick) = (&mut self.rng, self.tick_nanos);
        let delta = match rng.below_u64(10) {
            0..=4 => rng.below_u64(64 * tick),
            5..=6 => rng.below_u64(5_000 * tick),
            7 => rng.below_u64(1 << 40),
            8 => rng.below_u64(1 << 50),
            _ => 0,
        };
        let deadline_nanos = if rng.below_u64(10) == 0 {
            self.now_nanos.saturating_sub(rng.below_u64(10_000))
        } else {
            self.now_nanos + delta
        };
        let fire = deadline_nanos.div_ceil(tick).max(self.elapsed);
        let id = self.next_id;
        self.next_id += 1;
        let key = self.wheel.schedule(at(self.origin, deadline_nanos), id);
        self.model.insert((fire, self.order), id);
        self.live.insert(id, (key, (fire, self.order)));
        self.live_ids.push(id);
        self.order += 1;
    }

    /// Cancel a live timer (picked at random), or a stale key.
    fn cancel(&mut self) {
        if !self.live_ids.is_empty() && self.rng.below_u64(4) != 0 {
            let i = self.rng.below_u64(self.live_ids.len() as u64) as usize;
            let id = self.live_ids.swap_remove(i);
            let (key, mkey) = self.live.remove(&id).unwrap_or_else(|| unreachable!());
            assert_eq!(self.wheel.cancel(key), Some(id));
            self.model.remove(&mkey);
            self.stale.push(key);
        } else if !self.stale.is_empty() {
            let i = self.rng.below_u64(self.stale.len() as u64) as usize;
            assert_eq!(self.wheel.cancel(self.stale[i]), None);
        }
    }

    /// Poll: mostly small steps, sometimes big jumps, sometimes no move at all.
    fn poll(&mut self) {
        let tick = self.tick_nanos;
        self.now_nanos += match self.rng.below_u64(20) {
            0 => 0,
            1 => self.rng.below_u64(1 << 45),
            2..=4 => self.rng.below_u64(100_000 * tick),
            _ => self.rng.below_u64(100 * tick),
        };
        self.elapsed = self.elapsed.max(self.now_nanos / tick);
        let fired = poll(&mut self.wheel, at(self.origin, self.now_nanos));
        let expected: Vec<u32> = self
            .model
            .range(..(self.elapsed + 1, 0))
            .map(|(_, &id)| id)
            .collect();
        assert_eq!(fired, expected, "seed {}", self.seed);
        for id in &fired {
            let (key, mkey) = self.live.remove(id).unwrap_or_else(|| unreachable!());
            self.model.remove(&mkey);
            self.stale.push(key);
        }
        let live = &self.live;
        self.live_ids.retain(|id| live.contains_key(id));
    }

    /// The wheel agrees with the model on its size and its next deadline: present iff
    /// non-empty, never after the earliest fire tick, and after the current tick (nothing is
    /// overdue right after a poll).
    fn check(&mut self) {
        let seed = self.seed;
        assert_eq!(self.wheel.len(), self.model.len());
        match (self.wheel.next_deadline(), self.model.keys().next()) {
            (None, None) => {}
            (Some(next), Some(&(fire, _))) => {
                let latest = at(self.origin, fire * self.tick_nanos);
                assert!(next <= latest, "seed {seed}");
            }
            (got, want) => panic!("seed {seed}: next_deadline {got:?}, model {want:?}"),
        }
        if self.stale.len() > 1_000 {
            self.stale.drain(..500);
        }
    }

    /// Drain by sleeping until next_deadline: every remaining timer fires, in model order.
    fn drain(mut self) {
        let expected: Vec<u32> = self.model.values().copied().collect();
        let mut fired = Vec::new();
        while let Some(next) = self.wheel.next_deadline() {
            self.wheel.poll(next, &mut fired);
        }
        assert_eq!(fired, expected, "seed {}", self.seed);
        assert!(self.wheel.is_empty());
    }
}

fn run_model(seed: u64, ops: usize) {
    let mut m = Model::new(seed);
    for _ in 0..ops {
        match m.rng.below_u64(100) {
            0..=49 => m.schedule(),
            50..=69 => m.cancel(),
            _ => m.poll(),
        }
        m.check();
    }
    m.drain();
}
