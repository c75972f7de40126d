//! A topic's bounded history: the last publications with their offsets, pure (no locks, no
//! clock reads: the caller passes `now`), so the rules of recovery are unit-tested here.
//!
//! Offsets start at 1 and grow by one per publication; position 0 is "before anything". A
//! position `p` can be recovered when every publication after it is still held: `p` is the last
//! offset, or the oldest entry held is `p + 1` or older.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The last publications of one topic, bounded by count and age.
#[derive(Debug)]
pub(crate) struct History<T> {
    entries: VecDeque<(u64, Instant, T)>,
    /// The offset of the last publication (0: none yet).
    last: u64,
    max_len: usize,
    max_age: Duration,
}

/// Why a position cannot be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    /// Publications after it were dropped from the history (too many, or too old).
    TooOld,
    /// It is after the last publication: not a position of this stream.
    Ahead,
}

impl<T> History<T> {
    /// An empty history keeping at most `max_len` publications, none older than `max_age`.
    pub fn new(max_len: usize, max_age: Duration) -> Self {
        History {
            entries: VecDeque::new(),
            last: 0,
            max_len,
            max_age,
        }
    }

    /// The offset of the last publication (0 before the first).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The offset the next publication gets.
    pub fn next_offset(&self) -> u64 {
        self.last + 1
    }

    /// Publications held now.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Append the publication of offset [`next_offset`](Self::next_offset), then drop what is
    /// over the bounds. Returns its offset.
    pub fn push(&mut self, now: Instant, item: T) -> u64 {
        self.last += 1;
        if self.max_len > 0 {
            self.entries.push_back((self.last, now, item));
        }
        self.evict(now);
        self.last
    }

    /// Drop the publications over the count or older than the age bound.
    pub fn evict(&mut self, now: Instant) {
        while self.entries.len() > self.max_len {
            self.entries.pop_front();
        }
        while let Some((_, at, _)) = self.entries.front() {
            if now.saturating_duration_since(*at) <= self.max_age {
                break;
            }
            self.entries.pop_front();
        }
    }

    /// Every publication after `offset`, oldest first, if all of them are still held.
    pub fn after(&self, offset: u64) -> Result<impl Iterator<Item = &T>, Gap> {
        if offset > self.last {
            return Err(Gap::Ahead);
        }
        let oldest = self.entries.front().map_or(self.last + 1, |e| e.0);
        if offset + 1 < oldest {
            return Err(Gap::TooOld);
        }
        let skip = (offset + 1 - oldest) as usize;
        Ok(self.entries.iter().skip(skip).map(|e| &e.2))
    }

    /// The last publication, if it is still held.
    pub fn latest(&self) -> Option<&T> {
        self.entries
            .back()
            .filter(|e| e.0 == self.last)
            .map(|e| &e.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(h: &History<u64>, offset: u64) -> Result<Vec<u64>, Gap> {
        h.after(offset).map(|it| it.copied().collect())
    }

    #[test]
    fn offsets_grow_by_one_and_recovery_gives_exactly_what_follows() {
        let t0 = Instant::now();
        let mut h = History::new(10, Duration::from_secs(60));
        assert_eq!(h.last(), 0);
        assert_eq!(
            collect(&h, 0),
            Ok(vec![]),
            "nothing published: nothing missed"
        );
        for i in 1..=5u64 {
            assert_eq!(h.next_offset(), i);
            assert_eq!(h.push(t0, i * 100), i);
        }
        assert_eq!(collect(&h, 0), Ok(vec![100, 200, 300, 400, 500]));
        assert_eq!(collect(&h, 3), Ok(vec![400, 500]));
        assert_eq!(collect(&h, 5), Ok(vec![]));
        assert_eq!(collect(&h, 6), Err(Gap::Ahead));
        assert_eq!(h.latest(), Some(&500));
    }

    #[test]
    fn a_position_older_than_the_history_is_a_gap() {
        let t0 = Instant::now();
        let mut h = History::new(3, Duration::from_secs(60));
        for i in 1..=10u64 {
            h.push(t0, i);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(collect(&h, 7), Ok(vec![8, 9, 10]), "the oldest held is 8");
        assert_eq!(collect(&h, 6), Err(Gap::TooOld), "7 was dropped");
        assert_eq!(collect(&h, 0), Err(Gap::TooOld));
    }

    #[test]
    fn publications_older_than_the_age_bound_are_dropped() {
        let t0 = Instant::now();
        let mut h = History::new(100, Duration::from_secs(10));
        h.push(t0, 1);
        h.push(t0 + Duration::from_secs(5), 2);
        h.evict(t0 + Duration::from_secs(12));
        assert_eq!(collect(&h, 1), Ok(vec![2]));
        assert_eq!(collect(&h, 0), Err(Gap::TooOld));
        h.evict(t0 + Duration::from_secs(30));
        assert_eq!(h.len(), 0);
        assert_eq!(
            collect(&h, 2),
            Ok(vec![]),
            "the last position needs nothing"
        );
        assert_eq!(collect(&h, 1), Err(Gap::TooOld));
        assert_eq!(h.latest(), None);
    }

    #[test]
    fn a_history_of_size_zero_keeps_offsets_only() {
        let t0 = Instant::now();
        let mut h = History::new(0, Duration::from_secs(10));
        assert_eq!(h.push(t0, 1), 1);
        assert_eq!(h.push(t0, 2), 2);
        assert_eq!(h.len(), 0);
        assert_eq!(collect(&h, 2), Ok(vec![]));
        assert_eq!(collect(&h, 1), Err(Gap::TooOld));
    }
}
