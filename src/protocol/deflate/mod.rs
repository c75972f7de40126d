//! permessage-deflate (RFC 7692): choosing the extension's parameters from a client's offers
//! (§5, §7.1) and the per-message codec (§7.2), over byte slices.
//!
//! Files: `params.rs` (the window range and the defaults: [`DEFAULT_LEVEL`],
//! [`DEFAULT_MEM_LEVEL`], [`MAX_WINDOW_BITS`], the one home of these numbers), `negotiate.rs`
//! (offers and responses, both sides), `codec.rs` (the contexts, the bomb cap, and
//! [`Inflater`], which hands back finished messages), `stream.rs` ([`InflateStream`]: a
//! streamed message inflated chunk by chunk) and `zlib.rs` (classic zlib for dedicated
//! compressors). Imports go one way: `negotiate.rs` builds the codec's contexts; `codec.rs`
//! knows nothing of negotiation; both take their numbers from `params.rs`.
//!
//! - [`negotiate()`] reads every `Sec-WebSocket-Extensions` value of an upgrade request and accepts
//!   the first acceptable permessage-deflate offer under a [`DeflateOptions`] policy. It never
//!   fails the handshake: a malformed or unacceptable offer is declined and the next one tried;
//!   with none left the answer is `None` (no extension).
//! - [`Compressor`] turns one message into the payload of a compressed message (raw DEFLATE,
//!   `Z_SYNC_FLUSH`, the trailing `0x00 0x00 0xff 0xff` removed, §7.2.1).
//! - [`Decompressor`] inflates one payload (the tail appended, §7.2.2) under a size limit that
//!   holds while inflating, so a small deflate bomb never allocates more than the limit.
//!
//! The codec runs two engines ([`DeflateEngine`]). Every decompressor, and by default every
//! compressor, is zlib-rs (the pure-Rust zlib that flate2's `zlib-rs` backend runs), used
//! through its safe API because flate2 does not expose zlib's `memLevel`. Memory per context
//! with zlib-rs, measured by `cargo bench --bench deflate`: a compressor holds
//! `128 KiB (hash heads, fixed) + 4 × 2^window_bits + 7 × 2^(mem_level + 6)` bytes plus ~3 KiB of
//! state (371 KiB at window 15 / memLevel 8, 266 KiB at 15/4, 134 KiB at 9/1); a decompressor
//! holds 46 KiB whatever the window (zlib-rs always allocates a 32 KiB window). Resetting a
//! compressor clears its 128 KiB hash table (~2.5 µs), the price of no context takeover.
//! Compressors with [`DeflateEngine::Zlib`] run classic zlib instead (`zlib.rs`, libz-sys built
//! statically), whose memory follows the window and memLevel
//! (`4 × 2^window_bits + 2^(mem_level + 9)` plus ~5.9 KiB): the engine for one compressor per
//! connection, and the only one that can be released down to its window while idle.

mod codec;
mod negotiate;
mod params;
mod stream;
mod zlib;

pub use codec::{
    Compressor, CompressorConfig, Decompressor, DeflateEngine, InflateState, Inflater, TAIL,
};
pub use negotiate::{negotiate, parse_response, DeflateOptions, Negotiated};
pub use params::{DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
pub use stream::{InflateStream, PIECE};

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";
