//! Masking and unmasking of payloads (RFC 6455 §5.3).
//!
//! Masking XORs byte `i` of a payload with byte `i % 4` of a 4-byte key. [`apply_mask`] does the
//! bulk of the work on wide blocks whose mask pattern is the key repeated (and rotated to the right
//! phase), in a plain safe-Rust form that LLVM turns into SIMD XORs; [`apply_mask_bytewise`] is the
//! obvious byte loop that tests and benches compare it with.

/// Bytes processed per block by the wide loop. 64 bytes = four 16-byte SSE2 registers (two AVX2
/// ones): wide enough to keep the XOR units busy, small enough that short payloads still use it.
const BLOCK: usize = 64;

/// Blocks are started at this alignment (the head before it goes bytewise), so the loads and stores
/// of the wide loop never straddle a cache line.
const ALIGN: usize = 16;

/// XOR `buf` in place with `mask`, starting at position `offset` (0..4) of the mask cycle — so a
/// payload processed in several chunks continues where the previous chunk ended
/// (`offset = bytes_done % 4`). Word-at-a-time over the bulk, any alignment/length/offset.
///
/// Offsets of 4 or more are taken modulo 4.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    // The key rotated so that `key[i % 4]` is the byte for `buf[i]`.
    let mut key = rotate(mask, offset);
    if buf.len() < BLOCK {
        apply_mask_short(buf, key);
        return;
    }

    // Unaligned head, bytewise. `align_offset` may say "impossible" (usize::MAX): then no head.
    let head_len = match buf.as_ptr().align_offset(ALIGN) {
        n if n < buf.len() => n,
        _ => 0,
    };
    let (head, rest) = buf.split_at_mut(head_len);
    apply_mask_bytewise(head, key, 0);
    key = rotate(key, head_len);

    // The bulk: u128 words of the key pattern, XORed over 64-byte blocks. Loads and stores go
    // through `from_ne_bytes`/`to_ne_bytes` on fixed-size arrays, which compile to plain
    // (vector) moves; the key pattern is the same in every lane, so byte order does not matter.
    let word = u128::from_ne_bytes(repeat_key::<16>(key));
    let mut blocks = rest.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        for lane in block.chunks_exact_mut(16) {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(lane);
            lane.copy_from_slice(&(u128::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }

    // Tail (< 64 bytes): whole blocks are multiples of 4, so the key phase is unchanged.
    apply_mask_short(blocks.into_remainder(), key);
}

/// Short buffers and tails: u64 words, then bytes. `key` is already in phase with `buf[0]`.
#[inline]
fn apply_mask_short(buf: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes(repeat_key::<8>(key));
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    apply_mask_bytewise(words.into_remainder(), key, 0);
}

/// Byte-at-a-time reference implementation (tests and benches compare against it).
pub fn apply_mask_bytewise(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[(i + offset) & 3];
    }
}

/// The key that starts at phase `by` of `mask`: `rotate(m, k)[i] == m[(i + k) % 4]`.
#[inline]
fn rotate(mask: [u8; 4], by: usize) -> [u8; 4] {
    u32::from_le_bytes(mask)
        .rotate_right(8 * (by & 3) as u32)
        .to_le_bytes()
}

/// `N` bytes of the key repeated (`N` a multiple of 4).
#[inline]
fn repeat_key<const N: usize>(key: [u8; 4]) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = key[i & 3];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::test_rng::Rng;

    fn check(rng: &mut Rng, data: &mut [u8], start: usize, len: usize) {
        let mut mask = [0u8; 4];
        rng.fill(&mut mask);
        let offset = rng.below(4);
        rng.fill(data);
        let mut expected = data.to_vec();
        apply_mask_bytewise(&mut expected[start..start + len], mask, offset);
        apply_mask(&mut data[start..start + len], mask, offset);
        assert_eq!(
            data,
            &expected[..],
            "start {start} len {len} offset {offset} mask {mask:?}"
        );
    }

    #[test]
    fn rotate_matches_definition() {
        let m = [1, 2, 3, 4];
        for by in 0..8 {
            let r = rotate(m, by);
            for (i, b) in r.iter().enumerate() {
                assert_eq!(*b, m[(i + by) % 4]);
            }
        }
    }

    #[test]
    fn rfc_example() {
        // RFC 6455 §5.7: masked "Hello".
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn every_length_alignment_and_offset_up_to_300() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut data = vec![0u8; 400];
        for start in 0..ALIGN * 2 {
            for len in 0..300 {
                check(&mut rng, &mut data, start, len);
            }
        }
    }

    #[test]
    fn pseudo_random_agrees_with_bytewise() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut data = vec![0u8; 4096 + 64];
        for _ in 0..3000 {
            let start = rng.below(64);
            let len = rng.below(4096);
            check(&mut rng, &mut data, start, len);
        }
    }

    #[test]
    fn chunked_application_continues_the_cycle() {
        let mut rng = Rng(42);
        let mut data = vec![0u8; 1000];
        rng.fill(&mut data);
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let mut expected = data.clone();
        apply_mask_bytewise(&mut expected, mask, 0);
        let mut done = 0;
        while done < data.len() {
            let n = (rng.below(200) + 1).min(data.len() - done);
            apply_mask(&mut data[done..done + n], mask, done % 4);
            done += n;
        }
        assert_eq!(data, expected);
    }

    #[test]
    fn large_offsets_wrap() {
        let mut a = [0u8; 100];
        let mut b = [0u8; 100];
        apply_mask(&mut a, [1, 2, 3, 4], 6);
        apply_mask_bytewise(&mut b, [1, 2, 3, 4], 2);
        assert_eq!(a, b);
    }

    #[test]
    fn involution() {
        let mut rng = Rng(7);
        let mut data = vec![0u8; 5000];
        rng.fill(&mut data);
        let orig = data.clone();
        apply_mask(&mut data[3..], [9, 8, 7, 6], 1);
        assert_ne!(data, orig);
        apply_mask(&mut data[3..], [9, 8, 7, 6], 1);
        assert_eq!(data, orig);
    }
}
