//! Message payloads the client can verify without remembering them.
//!
//! Echo: the first `min(8, size)` bytes are the connection's sequence number (little endian), the
//! rest a fixed pattern read from an offset that depends on the sequence number — so a reply that
//! is stale, reordered, truncated or corrupted does not compare equal.
//!
//! Broadcast: publisher id (u32), sequence (u64), wall-clock send time in ns since the Unix epoch
//! (u64, comparable across client processes), then the pattern.

use crate::cli::BROADCAST_HEADER;

/// Pattern offsets cycle through this many positions (a prime, so it drifts against sizes).
const OFFSETS: usize = 251;

/// The filler pattern, long enough for any offset plus the payload size.
#[derive(Debug, Clone)]
pub struct Pattern {
    buf: Vec<u8>,
    size: usize,
}

impl Pattern {
    /// A pattern for payloads of `size` bytes.
    pub fn new(size: usize) -> Self {
        let buf = (0..size + OFFSETS)
            .map(|i| (i.wrapping_mul(131) ^ (i >> 8)) as u8)
            .collect();
        Pattern { buf, size }
    }

    fn filler(&self, seq: u64, len: usize) -> &[u8] {
        let off = (seq % OFFSETS as u64) as usize;
        &self.buf[off..off + len]
    }

    /// Append the echo payload for `seq`.
    pub fn write_echo(&self, seq: u64, out: &mut Vec<u8>) {
        let head = self.size.min(8);
        out.extend_from_slice(&seq.to_le_bytes()[..head]);
        out.extend_from_slice(self.filler(seq, self.size - head));
    }

    /// Whether `payload` is exactly the echo payload for `seq`.
    pub fn check_echo(&self, seq: u64, payload: &[u8]) -> bool {
        let head = self.size.min(8);
        payload.len() == self.size
            && payload[..head] == seq.to_le_bytes()[..head]
            && payload[head..] == *self.filler(seq, self.size - head)
    }

    /// Append a broadcast payload (`size >= BROADCAST_HEADER`).
    pub fn write_broadcast(&self, publisher: u32, seq: u64, sent_ns: u64, out: &mut Vec<u8>) {
        debug_assert!(self.size >= BROADCAST_HEADER);
        out.extend_from_slice(&publisher.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&sent_ns.to_le_bytes());
        out.extend_from_slice(self.filler(seq, self.size - BROADCAST_HEADER));
    }

    /// `(publisher, seq, sent_ns)` of a broadcast payload; `None` if its size or filler is wrong.
    pub fn parse_broadcast(&self, p: &[u8]) -> Option<(u32, u64, u64)> {
        if p.len() != self.size || p.len() < BROADCAST_HEADER {
            return None;
        }
        let publisher = u32::from_le_bytes(p[0..4].try_into().ok()?);
        let seq = u64::from_le_bytes(p[4..12].try_into().ok()?);
        let sent = u64::from_le_bytes(p[12..20].try_into().ok()?);
        if p[BROADCAST_HEADER..] != *self.filler(seq, self.size - BROADCAST_HEADER) {
            return None;
        }
        Some((publisher, seq, sent))
    }
}

/// A small fast PRNG (xorshift64*) for masking keys: RFC 6455 asks for unpredictable masks to
/// protect intermediaries; a load generator on loopback needs them cheap and non-constant.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A masking key.
    #[inline]
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trip_and_detection() {
        for size in [0, 1, 7, 8, 9, 20, 32, 4096, 16384] {
            let p = Pattern::new(size);
            for seq in [0u64, 1, 250, 251, 1 << 40] {
                let mut v = Vec::new();
                p.write_echo(seq, &mut v);
                assert_eq!(v.len(), size);
                assert!(p.check_echo(seq, &v));
                if size > 0 {
                    assert!(
                        !p.check_echo(seq + 1, &v),
                        "size {size} seq {seq}: stale reply passes"
                    );
                    let mut bad = v.clone();
                    *bad.last_mut().unwrap() ^= 1;
                    assert!(!p.check_echo(seq, &bad));
                }
                assert!(!p.check_echo(seq, &v[..size.saturating_sub(1)]) || size == 0);
            }
        }
    }

    #[test]
    fn broadcast_round_trip() {
        let p = Pattern::new(64);
        let mut v = Vec::new();
        p.write_broadcast(7, 12345, 1_700_000_000_000_000_000, &mut v);
        assert_eq!(v.len(), 64);
        assert_eq!(
            p.parse_broadcast(&v),
            Some((7, 12345, 1_700_000_000_000_000_000))
        );
        v[40] ^= 0xff;
        assert_eq!(p.parse_broadcast(&v), None);
        assert_eq!(p.parse_broadcast(&v[..30]), None);
        let p20 = Pattern::new(20);
        let mut v = Vec::new();
        p20.write_broadcast(0, 1, 2, &mut v);
        assert_eq!(p20.parse_broadcast(&v), Some((0, 1, 2)));
    }

    #[test]
    fn rng_varies() {
        let mut r = Rng::new(0);
        let a = r.mask();
        let b = r.mask();
        assert_ne!(a, b);
        assert_ne!(r.next_u64(), r.next_u64());
    }
}
