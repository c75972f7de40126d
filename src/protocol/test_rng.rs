//! The one deterministic PRNG (xorshift64) of volley's tests and benches: property-style tests
//! in the library (`crate::protocol::test_rng`), and the benches and some integration tests,
//! which include this file with
//! `#[path = "../src/protocol/test_rng.rs"] mod test_rng;`. Not part of the API.
#![allow(dead_code)] // each includer uses a different subset

/// xorshift64: a tiny deterministic PRNG for property-style tests.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn below_u64(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}
