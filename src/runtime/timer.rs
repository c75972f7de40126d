//! TEMPORARY placeholder with the wheel's API (BTreeMap); replaced by the hashed wheel.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
/// Key of a scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey(Instant, u64);
/// Timers.
#[derive(Debug)]
pub struct TimerWheel<T> {
    map: BTreeMap<(Instant, u64), T>,
    seq: u64,
}
impl<T: Copy> TimerWheel<T> {
    /// New.
    pub fn new(_tick: Duration, _now: Instant) -> Self {
        TimerWheel {
            map: BTreeMap::new(),
            seq: 0,
        }
    }
    /// Schedule.
    pub fn schedule(&mut self, deadline: Instant, value: T) -> TimerKey {
        self.seq += 1;
        self.map.insert((deadline, self.seq), value);
        TimerKey(deadline, self.seq)
    }
    /// Cancel.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.map.remove(&(key.0, key.1))
    }
    /// Poll.
    pub fn poll(&mut self, now: Instant, fired: &mut Vec<T>) {
        while let Some(e) = self.map.first_entry() {
            if e.key().0 > now {
                break;
            }
            fired.push(e.remove());
        }
    }
    /// Next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|k| k.0)
    }
}
