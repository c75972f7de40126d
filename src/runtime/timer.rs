//! A hashed, hierarchical timing wheel: one per worker thread, for heartbeats and timeouts.
//!
//! The wheel never reads a clock: every call that needs the time takes an [`Instant`] from the
//! caller, so the worker passes the time it already read for `mio::Poll` and tests drive time by
//! hand.
//!
//! # Layout
//!
//! Time is counted in whole *ticks* of a granularity chosen at construction (the runtime's
//! workers use a fixed 10 ms), as a `u64` number of ticks since the wheel was created. The
//! wheel has [`LEVELS`] = 11 levels of 64 slots each; a slot of level `L` spans `64^L` ticks, so
//! level 0 holds single ticks and the 11 levels together cover the *whole* `u64` tick range
//! (`6 × 11 ≥ 64` bits). There is therefore no list of far deadlines and no "rounds" counter:
//! every deadline has a home. With a 10 ms tick, levels 0–3 already reach 46 hours; the upper
//! levels are just a 64-bit bitmap each while empty. (The wheel's `overflow` field is not about
//! time: it holds the timers scheduled beyond the wheel's capacity, see *Capacity*.)
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
//! 12-byte payload such as `(u32, u32, u8)` that is 32 bytes (asserted in `timer_tests.rs`,
//! against a mirror of slab 0.4's enum). The runtime's payload (`worker::state::TimerEntry`, 24 bytes) makes 48-byte
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
//! Links are `u32`, so a wheel holds at most `u32::MAX - 1` pending entries (128 GiB at 32 bytes
//! each, 192 GiB at the runtime's 48, so allocation fails first). A timer scheduled beyond that is not lost and does not
//! panic: it waits in the `overflow` list, fires at the next `poll` (early), and its key cancels
//! nothing.

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
    /// earliest occupied tick (exact when that timer sits in level 0, i.e. in the current run of
    /// 64 ticks; otherwise the earlier instant at which its slot cascades). Never later than the
    /// earliest deadline's tick. O(11).
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
#[path = "timer_tests.rs"]
mod tests;
