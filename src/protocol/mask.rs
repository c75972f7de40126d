//! Masking and unmasking of payloads (RFC 6455 §5.3).
//!
//! Masking XORs byte `i` of a payload with byte `i % 4` of a 4-byte key. [`apply_mask`] does the
//! bulk of the work on wide blocks whose mask pattern is the key repeated (and rotated to the right
//! phase), in a plain safe-Rust form that LLVM turns into SIMD XORs (compiled a second time with
//! AVX2 enabled, taken where the CPU has it); [`apply_mask_bytewise`] is the obvious byte loop
//! that tests and benches compare it with.

/// Bytes processed per block by the wide loop. 64 bytes = four 16-byte SSE2 registers (two AVX2
/// ones): wide enough to keep the XOR units busy, small enough that short payloads still use it.
const BLOCK: usize = 64;

/// Blocks are started at this alignment (the head before it goes bytewise), so the loads and stores
/// of the wide loop never straddle a cache line.
const ALIGN: usize = 16;

/// XOR `buf` in place with `mask`, starting at position `offset` (0..4) of the mask cycle — so a
/// payload processed in several chunks continues where the previous chunk ended
/// (`offset = bytes_done % 4`). 64-byte blocks over the bulk, any alignment/length/offset.
///
/// Offsets of 4 or more are taken modulo 4. On x86-64 CPUs with AVX2 (checked once at run time,
/// then cached by `std`), payloads of [`AVX2_MIN`] bytes and more take 32-byte vectors instead
/// of SSE2's 16-byte ones: at 16 KiB that halves the time, which is a visible share of a large
/// echo's CPU.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= AVX2_MIN && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the one precondition of calling a `#[target_feature(enable = "avx2")]`
        // function is that the CPU running it supports AVX2, which the line above has just
        // checked. The function body is the same safe Rust as the portable path (no intrinsics,
        // no pointers), so it has no other obligations; the tests below run both paths against
        // the byte loop on this machine's CPU.
        unsafe { apply_mask_avx2(buf, mask, offset) };
        return;
    }
    apply_mask_wide(buf, mask, offset);
}

/// Payloads from this size on take the AVX2 path where the CPU has it (below it the bulk is a
/// few blocks, and the wider vectors save next to nothing).
pub const AVX2_MIN: usize = 256;

/// [`apply_mask_wide`] compiled with AVX2 enabled, so LLVM uses 32-byte vectors for it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_mask_avx2(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    apply_mask_wide(buf, mask, offset);
}

/// The portable bulk loop (SSE2 on x86-64 by default); [`apply_mask`]'s body.
#[inline(always)]
fn apply_mask_wide(buf: &mut [u8], mask: [u8; 4], offset: usize) {
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

    // The bulk: 64-byte blocks XORed with 64 bytes of the key pattern. A fixed-size array XOR
    // compiles to the widest vector moves and XORs the target allows (SSE2 by default, AVX2 in
    // `apply_mask_avx2`); the loop has no bounds checks.
    let pattern = repeat_key::<BLOCK>(key);
    let mut blocks = rest.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        for (b, k) in block.iter_mut().zip(pattern.iter()) {
            *b ^= k;
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
    fn both_bulk_paths_agree_with_bytewise() {
        // `apply_mask` takes the AVX2 path for long payloads where the CPU has it; check the
        // portable loop and (where available) the AVX2 one directly, around every block edge.
        let mut rng = Rng(0x51ed_270b_2f2d_3c11);
        let mut data = vec![0u8; 2 * AVX2_MIN + 200];
        for start in 0..ALIGN * 2 {
            for len in (AVX2_MIN - 70..AVX2_MIN + 140).chain([2 * AVX2_MIN + 131]) {
                let mut mask = [0u8; 4];
                rng.fill(&mut mask);
                let offset = rng.below(4);
                rng.fill(&mut data);
                let mut expected = data.clone();
                apply_mask_bytewise(&mut expected[start..start + len], mask, offset);
                let mut portable = data.clone();
                apply_mask_wide(&mut portable[start..start + len], mask, offset);
                assert_eq!(portable, expected, "portable: start {start} len {len}");
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") {
                    let mut wide = data.clone();
                    // SAFETY: AVX2 support was checked on the line above.
                    unsafe { apply_mask_avx2(&mut wide[start..start + len], mask, offset) };
                    assert_eq!(wide, expected, "avx2: start {start} len {len}");
                }
            }
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
