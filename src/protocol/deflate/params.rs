//! permessage-deflate's numbers in one place: the window range RFC 7692 allows and the
//! compression defaults. [`DeflateOptions`](super::DeflateOptions),
//! [`CompressorConfig`](super::CompressorConfig) and the server's `Config` (its `deflate_*`
//! fields) all take their defaults from here.

/// The smallest LZ77 window RFC 7692 allows, as a power of two (§7.1.2.1): 256 bytes.
pub const MIN_WINDOW_BITS: u8 = 8;

/// The largest LZ77 window, as a power of two (§7.1.2.1): 32 KiB. What a side may use when the
/// other did not limit it, and the default of every window we choose.
pub const MAX_WINDOW_BITS: u8 = 15;

/// The default compression level (`0..=9`): 1. Measured with `benches/deflate.rs`
/// (docs/BENCHMARKS.md): a 1 KiB JSON message compresses in ~2.5 µs to 320 bytes at 1, ~8.6 µs
/// at 2, ~20 µs to 252 bytes at zlib's defaults (level 6, memLevel 8): 8× faster for ~25% more
/// bytes.
pub const DEFAULT_LEVEL: u8 = 1;

/// The default zlib `memLevel` (`1..=9`) of our compressors: 4. A zlib-rs compressor buffers
/// `7 × 2^(mem_level + 6)` bytes of symbols, so zlib's 8 holds 105 KiB more, for no gain
/// measured; below 4 costs ratio on large messages at level 2 and up.
pub const DEFAULT_MEM_LEVEL: u8 = 4;
