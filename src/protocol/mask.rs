//! Masking and unmasking of payloads (RFC 6455 §5.3). HELPER-A: implement.

/// XOR `buf` in place with `mask`, starting at position `offset` (0..4) of the mask cycle — so a
/// payload processed in several chunks continues where the previous chunk ended
/// (`offset = bytes_done % 4`). Word-at-a-time over the bulk, any alignment/length/offset.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let _ = (buf, mask, offset);
    todo!()
}

/// Byte-at-a-time reference implementation (tests and benches compare against it).
pub fn apply_mask_bytewise(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[(i + offset) & 3];
    }
}
