//! A hashed, hierarchical timing wheel: one per worker thread, for heartbeats and timeouts.
//!
//! The wheel never reads a clock: every call that needs the time takes an [`Instant`] from the
//! caller, so the worker passes the time it already read for `mio::Poll` and tests drive time by
//! hand.
//!
//! # Layout
//!
//! Time is counted in whole *ticks* of a granularity chosen at construction (the runtime uses
//! 10–100 ms), as a `u64` number of ticks since the wheel was created. The wheel has
//! [`LEVELS`] = 11 levels of 64 slots each; a slot of level `L` spans `64^L` ticks, so level 0 holds
//! single ticks and the 11 levels together cover the *whole* `u64` tick range (`6 × 11 ≥ 64` bits).
//! There is therefore no overflow list and no "rounds" counter: every deadline has a home. With a
//! 10 ms tick, levels 0–3 already reach 46 hours; the upper levels are just a 64-bit bitmap each
//! while empty.
//!
//! An entry with deadline tick `d` lives at the level of the highest bit in which `d` differs from
//! the current tick `elapsed` (divided by 6), in the slot given by `d`'s 6-bit digit at that level.
//! Each slot is an intrusive doubly-linked list threaded through the entries, which live in one
//! [`slab::Slab`]; each level keeps a 64-bit occupancy bitmap. Because an entry's location is a
//! function of `(elapsed, d)` alone, entries store no level or slot.
//!
//! When `elapsed` reaches the start of an occupied slot of level `L > 0`, the slot is *cascaded*:
//! its entries move to lower levels (or fire, if their deadline is exactly that tick). An entry
//! therefore moves at most once per level below the one it started in.
//!
//! # Complexity
//!
//! | operation                | cost                                                          |
//! |--------------------------|---------------------------------------------------------------|
//! | [`TimerWheel::schedule`] | O(1) (amortised: the slab may grow)                           |
//! | [`TimerWheel::cancel`]   | O(1)                                                          |
//! | [`TimerWheel::poll`]     | O(occupied slots passed + fired + cascaded); empty slots are skipped via the bitmaps, so a long jump of the clock is not a loop over ticks; each entry is cascaded at most 10 times over its life (at most 3 for deadlines under 46 h at a 10 ms tick) |
//! | [`TimerWheel::next_deadline`], [`TimerWheel::timeout`] | O(levels): at most 11 bitmap tests and one `trailing_zeros` |
//!
//! # Memory
//!
//! An entry is the deadline tick (`u64`), `prev`/`next` links (`u32` each), a sequence number
//! (`NonZeroU32`) and the payload; slab's `Vacant(usize) | Occupied(entry)` enum hides its tag in
//! the niche of the `NonZeroU32` sequence number, so a slot is no larger than the entry. For a
//! 12-byte payload such as `(u32, u32, u8)` that is 32 bytes (asserted below, against a mirror of
//! slab 0.4's enum). The runtime's payload (`worker::state::TimerEntry`, 24 bytes) makes 48-byte
//! slots, asserted by the `timer_slot_size` test in `runtime/worker/state.rs` through
//! [`TimerWheel::SLOT_BYTES`].
//! The fixed part of a wheel is 11 × (8 + 64 × 8) bytes ≈ 5.6 KiB (heap-allocated, so moving a
//! [`TimerWheel`] is cheap).
//!
//! # Timing rules
//!
//! * A deadline is rounded **up** to a tick boundary, and a tick fires once `now` has reached its
//!   start, so an entry never fires before its deadline; it fires at most one tick late (plus
//!   however late the caller polls).
//! * Within one [`poll`](TimerWheel::poll), entries fire in deadline order at tick granularity,
//!   and entries of the same tick in the order they were scheduled.
//! * A deadline at or before the wheel's current tick is *overdue*: it fires at the next `poll`,
//!   whatever `now` is passed, before everything else (overdue entries among themselves in
//!   scheduling order).
//! * [`next_deadline`](TimerWheel::next_deadline) never lies late: it is the exact tick of the
//!   earliest entry when that entry sits in level 0, and otherwise the start of the earliest
//!   occupied higher-level slot, a lower bound at which a `poll` does the cascade (and possibly
//!   fires nothing). Sleeping until it and polling therefore wakes an idle worker at most once per
//!   level per timer, never on every tick.
//!
//! # Keys
//!
//! A [`TimerKey`] is a slab index plus a 32-bit sequence number taken from a per-wheel counter.
//! Cancelling a key whose entry already fired or was cancelled returns `None`, even if the slab
//! slot has been reused since; a stale key could only match again if the same slab slot were
//! reused by exactly the entry scheduled 2³² schedules later. `Option<TimerKey>` is 8 bytes.
//!
//! # Capacity
//!
//! Links are `u32`, so a wheel holds at most `u32::MAX - 1` pending entries (≈160 GiB of
//! entries, so allocation fails first). A timer scheduled beyond that is not lost and does not
//! panic: it fires at the next `poll` (early), and its key cancels nothing.

use std::fmt;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use slab::Slab;

/// Bits of a tick number consumed by one level.
const LEVEL_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << LEVEL_BITS;
/// Mask of one level's digit.
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Number of levels: enough for every `u64` tick (`6 × 11 = 66 ≥ 64`).
pub const LEVELS: usize = 11;
/// The "no entry" link.
const NIL: u32 = u32::MAX;
/// Nanoseconds per second, for tick → [`Instant`] conversion.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Identifies one scheduled timer, for [`TimerWheel::cancel`].
///
/// Stays valid until its timer fires or is cancelled; after that it is inert (cancelling it
/// returns `None`), even when the wheel has reused the storage for another timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    /// Index of the entry in the wheel's slab (`NIL` for a timer beyond capacity).
    index: u32,
    /// Sequence number the entry was scheduled with.
    seq: NonZeroU32,
}

/// One pending timer, stored in the slab.
struct Entry<T> {
    /// Deadline in ticks since the wheel's origin, rounded up.
    deadline: u64,
    /// Previous entry in the same list, or `NIL`.
    prev: u32,
    /// Next entry in the same list, or `NIL`.
    next: u32,
    /// Sequence number, matched against [`TimerKey::seq`].
    seq: NonZeroU32,
    /// The caller's payload.
    value: T,
}

/// Head and tail of one intrusive list (a slot, or the overdue list).
#[derive(Clone, Copy, Debug)]
struct List {
    /// First entry, or `NIL`.
    head: u32,
    /// Last entry, or `NIL`.
    tail: u32,
}

impl List {
    /// A list with no entries.
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// One level: 64 slot lists and a bitmap of the non-empty ones.
#[derive(Clone, Debug)]
struct Level {
    /// Bit `s` is set iff `lists[s]` is non-empty.
    occupied: u64,
    /// The slots.
    lists: [List; SLOTS],
}

impl Level {
    /// A level with every slot empty.
    const EMPTY: Level = Level {
        occupied: 0,
        lists: [List::EMPTY; SLOTS],
    };
}

/// Where an entry is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// The overdue list: fires at the next poll.
    Due,
    /// A slot of a level.
    Slot {
        /// Level, `< LEVELS`.
        level: usize,
        /// Slot, `< SLOTS`.
        slot: usize,
    },
}

/// A hierarchical timing wheel holding payloads of type `T` (see the [module docs](self)).
pub struct TimerWheel<T> {
    /// Every pending entry.
    entries: Slab<Entry<T>>,
    /// The levels, boxed so the wheel itself is small.
    levels: Box<[Level; LEVELS]>,
    /// Entries whose deadline tick was already reached when they were scheduled.
    due: List,
    /// Timers scheduled beyond capacity: they fire at the next poll.
    overflow: Vec<T>,
    /// The current tick: every entry with a deadline `<= elapsed` is in `due` (or has fired).
    elapsed: u64,
    /// Instant of tick 0.
    origin: Instant,
    /// Tick length in nanoseconds, `>= 1`.
    tick_nanos: u64,
    /// Largest tick whose start is a representable [`Instant`]; deadlines are clamped to it.
    max_tick: u64,
    /// Sequence number for the next scheduled entry.
    next_seq: NonZeroU32,
    /// Most entries the slab may hold (`NIL`, lowered by tests).
    max_entries: usize,
}

/// Mirrors slab 0.4's private `enum Entry<T> { Vacant(usize), Occupied(T) }`, for size figures.
#[allow(dead_code)]
enum SlabSlot<E> {
    Vacant(usize),
    Occupied(E),
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len())
            .field("tick", &Duration::from_nanos(self.tick_nanos))
            .field("elapsed_ticks", &self.elapsed)
            .finish_non_exhaustive()
    }
}

impl<T> TimerWheel<T> {
    /// Bytes of one scheduled entry, as its slab slot holds it (for the size tests of the
    /// wheel's users, which know their payload type).
    #[allow(dead_code)] // the timer bench includes this file without those tests
    pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<SlabSlot<Entry<T>>>();

    /// Creates an empty wheel whose tick 0 starts at `now`, with ticks of `tick` (at least 1 ns;
    /// a zero `tick` means 1 ns, one above `u64::MAX` ns is capped).
    pub fn new(tick: Duration, now: Instant) -> Self {
        let tick_nanos = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mut wheel = TimerWheel {
            entries: Slab::new(),
            levels: Box::new([Level::EMPTY; LEVELS]),
            due: List::EMPTY,
            overflow: Vec::new(),
            elapsed: 0,
            origin: now,
            tick_nanos,
            max_tick: 0,
            next_seq: NonZeroU32::MIN,
            max_entries: NIL as usize,
        };
        wheel.max_tick = wheel.find_max_tick();
        wheel
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len() + self.overflow.len()
    }

    /// Whether no timer is pending.
    #[allow(dead_code)] // the runtime only needs len(); kept as len's conventional pair
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Schedules `value` to fire at the first [`poll`](Self::poll) whose `now` is at or after
    /// `deadline` rounded up to a tick. A deadline that is already due fires at the next poll.
    /// O(1).
    pub fn schedule(&mut self, deadline: Instant, value: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).unwrap_or(NonZeroU32::MIN);
        let index = match u32::try_from(self.entries.vacant_key()) {
            Ok(index) if index != NIL && self.entries.len() < self.max_entries => index,
            _ => {
                self.overflow.push(value);
                return TimerKey { index: NIL, seq };
            }
        };
        let deadline = self.ceil_tick(deadline);
        self.entries.insert(Entry {
            deadline,
            prev: NIL,
            next: NIL,
            seq,
            value,
        });
        let loc = self.loc_of(deadline);
        self.push_back(index, loc);
        TimerKey { index, seq }
    }

    /// Cancels a pending timer and returns its payload; `None` if it already fired or was
    /// cancelled (whether or not its storage has been reused since). O(1).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.seq != key.seq {
            return None;
        }
        let loc = self.loc_of(entry.deadline);
        self.unlink(key.index, loc);
        self.entries.try_remove(key.index as usize).map(|e| e.value)
    }

    /// Appends to `fired` (without clearing it) the payload of every timer whose deadline has
    /// been reached at `now`: overdue ones first, then in deadline order at tick granularity,
    /// same-tick ones in scheduling order. Advances the wheel's current tick to `now`'s; a `now`
    /// earlier than a previous one is treated as that previous one.
    pub fn poll(&mut self, now: Instant, fired: &mut Vec<T>) {
        fired.append(&mut self.overflow);
        let mut cur = self.take(Loc::Due);
        while cur != NIL {
            let Some(entry) = self.entries.try_remove(cur as usize) else {
                break;
            };
            cur = entry.next;
            fired.push(entry.value);
        }

        let now_tick = self.floor_tick(now);
        while let Some((level, slot, start)) = self.next_expiration() {
            if start > now_tick {
                break;
            }
            self.elapsed = start;
            let mut cur = self.take(Loc::Slot { level, slot });
            while cur != NIL {
                let Some(entry) = self.entries.get(cur as usize) else {
                    break;
                };
                let (next, deadline) = (entry.next, entry.deadline);
                if deadline <= start {
                    if let Some(entry) = self.entries.try_remove(cur as usize) {
                        fired.push(entry.value);
                    }
                } else {
                    // Shares every digit from `level` up with `start`: goes strictly lower.
                    let loc = self.loc_of(deadline);
                    self.push_back(cur, loc);
                }
                cur = next;
            }
        }
        self.elapsed = self.elapsed.max(now_tick);
    }

    /// When the next [`poll`](Self::poll) has work: `None` if no timer is pending; an instant at
    /// or before the last poll's `now` if some timer is overdue; otherwise the start of the
    /// earliest occupied tick (exact when that timer is within 64 ticks, otherwise the earlier
    /// instant at which its slot cascades). Never later than the earliest deadline's tick. O(11).
    pub fn next_deadline(&self) -> Option<Instant> {
        let tick = if self.due.head != NIL || !self.overflow.is_empty() {
            self.elapsed
        } else {
            self.next_expiration()?.2
        };
        self.instant_of(tick.min(self.max_tick))
    }

    /// How long a worker may sleep at `now` before polling: [`next_deadline`](Self::next_deadline)
    /// minus `now`, zero if that is past, `None` (sleep indefinitely) if no timer is pending.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.next_deadline()
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// Lowers the capacity, to test what happens beyond it.
    #[cfg(test)]
    fn set_max_entries(&mut self, max: usize) {
        self.max_entries = max.min(NIL as usize);
    }

    /// The earliest occupied slot as `(level, slot, first tick)`. Slots of a lower level always
    /// start before those of a higher one, and occupied slots always lie after the current
    /// tick's digit, so the lowest set bit of the lowest non-empty level is the answer.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        self.levels
            .iter()
            .enumerate()
            .find(|(_, lvl)| lvl.occupied != 0)
            .map(|(level, lvl)| {
                let slot = lvl.occupied.trailing_zeros();
                let shift = LEVEL_BITS * level as u32;
                let above = u64::MAX.checked_shl(shift + LEVEL_BITS).unwrap_or(0);
                let start = (self.elapsed & above) | (u64::from(slot) << shift);
                (level, slot as usize, start)
            })
    }

    /// Where an entry with deadline tick `deadline` belongs at the current tick.
    fn loc_of(&self, deadline: u64) -> Loc {
        if deadline <= self.elapsed {
            return Loc::Due;
        }
        let differing = (self.elapsed ^ deadline) | SLOT_MASK;
        let top_bit = u64::BITS - 1 - differing.leading_zeros();
        let level = ((top_bit / LEVEL_BITS) as usize).min(LEVELS - 1);
        let slot = (deadline >> (LEVEL_BITS * level as u32)) & SLOT_MASK;
        Loc::Slot {
            level,
            slot: slot as usize,
        }
    }

    /// The list at `loc`.
    fn list_mut(&mut self, loc: Loc) -> &mut List {
        match loc {
            Loc::Due => &mut self.due,
            Loc::Slot { level, slot } => &mut self.levels[level].lists[slot],
        }
    }

    /// Links entry `index` at the tail of the list at `loc`.
    fn push_back(&mut self, index: u32, loc: Loc) {
        let list = self.list_mut(loc);
        let tail = list.tail;
        list.tail = index;
        if tail == NIL {
            list.head = index;
        } else if let Some(prev) = self.entries.get_mut(tail as usize) {
            prev.next = index;
        }
        if let Some(entry) = self.entries.get_mut(index as usize) {
            entry.prev = tail;
            entry.next = NIL;
        }
        if let Loc::Slot { level, slot } = loc {
            self.levels[level].occupied |= 1 << slot;
        }
    }

    /// Unlinks entry `index` from the list at `loc` (where it must be).
    fn unlink(&mut self, index: u32, loc: Loc) {
        let Some(entry) = self.entries.get(index as usize) else {
            return;
        };
        let (prev, next) = (entry.prev, entry.next);
        if prev == NIL {
            self.list_mut(loc).head = next;
        } else if let Some(p) = self.entries.get_mut(prev as usize) {
            p.next = next;
        }
        if next == NIL {
            self.list_mut(loc).tail = prev;
        } else if let Some(n) = self.entries.get_mut(next as usize) {
            n.prev = prev;
        }
        if let Loc::Slot { level, slot } = loc {
            let lvl = &mut self.levels[level];
            if lvl.lists[slot].head == NIL {
                lvl.occupied &= !(1 << slot);
            }
        }
    }

    /// Empties the list at `loc` and returns its former head; the entries keep their `next`
    /// links so the caller can walk them.
    fn take(&mut self, loc: Loc) -> u32 {
        let list = self.list_mut(loc);
        let head = list.head;
        *list = List::EMPTY;
        if let Loc::Slot { level, slot } = loc {
            self.levels[level].occupied &= !(1 << slot);
        }
        head
    }

    /// Nanoseconds from the origin to `t` (zero if `t` is earlier).
    fn nanos_since_origin(&self, t: Instant) -> u128 {
        t.saturating_duration_since(self.origin).as_nanos()
    }

    /// The tick `now` falls in.
    fn floor_tick(&self, now: Instant) -> u64 {
        let nanos = self.nanos_since_origin(now);
        match u64::try_from(nanos) {
            Ok(nanos) => nanos / self.tick_nanos,
            Err(_) => u64::try_from(nanos / u128::from(self.tick_nanos)).unwrap_or(u64::MAX),
        }
    }

    /// The first tick starting at or after `deadline`, clamped to [`Self::max_tick`].
    fn ceil_tick(&self, deadline: Instant) -> u64 {
        let nanos = self.nanos_since_origin(deadline);
        let tick = match u64::try_from(nanos) {
            Ok(nanos) => nanos.div_ceil(self.tick_nanos),
            Err(_) => {
                u64::try_from(nanos.div_ceil(u128::from(self.tick_nanos))).unwrap_or(u64::MAX)
            }
        };
        tick.min(self.max_tick)
    }

    /// The instant tick `tick` starts, if representable.
    fn instant_of(&self, tick: u64) -> Option<Instant> {
        let nanos = u128::from(tick) * u128::from(self.tick_nanos);
        let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
        let subsec = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
        self.origin.checked_add(Duration::new(secs, subsec))
    }

    /// The largest tick whose start [`Self::instant_of`] can represent (binary search; tick 0
    /// is the origin itself).
    fn find_max_tick(&self) -> u64 {
        if self.instant_of(u64::MAX).is_some() {
            return u64::MAX;
        }
        let (mut lo, mut hi) = (0u64, u64::MAX);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.instant_of(mid).is_some() {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
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

    fn run_model(seed: u64, ops: usize) {
        let tick_nanos = 1_000u64;
        let origin = Instant::now();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut wheel = TimerWheel::new(Duration::from_nanos(tick_nanos), origin);
        // Model: (fire tick, order) -> id; id -> (key, model key).
        let mut model: BTreeMap<(u64, u64), u32> = BTreeMap::new();
        let mut live: HashMap<u32, (TimerKey, (u64, u64))> = HashMap::new();
        let mut live_ids: Vec<u32> = Vec::new();
        let mut stale: Vec<TimerKey> = Vec::new();
        let mut now_nanos = 0u64;
        let mut elapsed = 0u64; // model's current tick
        let mut order = 0u64;
        let mut next_id = 0u32;
        for _ in 0..ops {
            match rng.below_u64(100) {
                0..=49 => {
                    // Schedule: near, mid, far, very far, or overdue.
                    let delta = match rng.below_u64(10) {
                        0..=4 => rng.below_u64(64 * tick_nanos),
                        5..=6 => rng.below_u64(5_000 * tick_nanos),
                        7 => rng.below_u64(1 << 40),
                        8 => rng.below_u64(1 << 50),
                        _ => 0,
                    };
                    let deadline_nanos = if rng.below_u64(10) == 0 {
                        now_nanos.saturating_sub(rng.below_u64(10_000))
                    } else {
                        now_nanos + delta
                    };
                    let fire = deadline_nanos.div_ceil(tick_nanos).max(elapsed);
                    let id = next_id;
                    next_id += 1;
                    let key = wheel.schedule(at(origin, deadline_nanos), id);
                    model.insert((fire, order), id);
                    live.insert(id, (key, (fire, order)));
                    live_ids.push(id);
                    order += 1;
                }
                50..=69 => {
                    // Cancel a live timer (picked at random), or a stale key.
                    if !live_ids.is_empty() && rng.below_u64(4) != 0 {
                        let i = rng.below_u64(live_ids.len() as u64) as usize;
                        let id = live_ids.swap_remove(i);
                        let (key, mkey) = live.remove(&id).unwrap_or_else(|| unreachable!());
                        assert_eq!(wheel.cancel(key), Some(id));
                        model.remove(&mkey);
                        stale.push(key);
                    } else if !stale.is_empty() {
                        let i = rng.below_u64(stale.len() as u64) as usize;
                        assert_eq!(wheel.cancel(stale[i]), None);
                    }
                }
                _ => {
                    // Poll: mostly small steps, sometimes big jumps, sometimes no move at all.
                    now_nanos += match rng.below_u64(20) {
                        0 => 0,
                        1 => rng.below_u64(1 << 45),
                        2..=4 => rng.below_u64(100_000 * tick_nanos),
                        _ => rng.below_u64(100 * tick_nanos),
                    };
                    elapsed = elapsed.max(now_nanos / tick_nanos);
                    let fired = poll(&mut wheel, at(origin, now_nanos));
                    let expected: Vec<u32> =
                        model.range(..(elapsed + 1, 0)).map(|(_, &id)| id).collect();
                    assert_eq!(fired, expected, "seed {seed}");
                    for id in &fired {
                        let (key, mkey) = live.remove(id).unwrap_or_else(|| unreachable!());
                        model.remove(&mkey);
                        stale.push(key);
                    }
                    live_ids.retain(|id| live.contains_key(id));
                }
            }
            assert_eq!(wheel.len(), model.len());
            // next_deadline: present iff non-empty, never after the earliest fire tick, and
            // after the current tick (nothing is overdue right after a poll).
            match (wheel.next_deadline(), model.keys().next()) {
                (None, None) => {}
                (Some(next), Some(&(fire, _))) => {
                    assert!(next <= at(origin, fire * tick_nanos), "seed {seed}");
                }
                (got, want) => panic!("seed {seed}: next_deadline {got:?}, model {want:?}"),
            }
            if stale.len() > 1_000 {
                stale.drain(..500);
            }
        }
        // Drain by sleeping until next_deadline: every remaining timer fires, in model order.
        let expected: Vec<u32> = model.values().copied().collect();
        let mut fired = Vec::new();
        while let Some(next) = wheel.next_deadline() {
            wheel.poll(next, &mut fired);
        }
        assert_eq!(fired, expected, "seed {seed}");
        assert!(wheel.is_empty());
    }
}
