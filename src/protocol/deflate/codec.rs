//! The permessage-deflate codec (RFC 7692 §7.2): [`Compressor`] on either engine
//! ([`DeflateEngine`]: zlib-rs, or classic zlib through `zlib.rs`), [`Decompressor`] (zlib-rs)
//! with its size cap, and [`Inflater`], which turns a compressed message into a finished one.

use std::fmt;

use bytes::Bytes;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status};

use super::params::{DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use super::zlib::ZDeflate;
use crate::protocol::error::ProtocolError;
use crate::protocol::message::{Message, Utf8Bytes};

/// The empty stored block that ends every sync-flushed message: removed by the sender, appended
/// by the receiver (RFC 7692 §7.2.1, §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Settings of a [`Compressor`]. Out-of-range values are clamped by [`Compressor::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompressorConfig {
    /// Compression level, `0..=9`. Default: 1 ([`DEFAULT_LEVEL`]).
    pub level: u8,
    /// LZ77 window, `8..=15`; 8 compresses with 9 (zlib cannot produce 8-bit raw streams, and
    /// a 9-bit window never emits a distance over 250, which an 8-bit inflater accepts).
    /// Default: 15 ([`MAX_WINDOW_BITS`]).
    pub window_bits: u8,
    /// zlib's `memLevel`, `1..=9`. Default: 4 ([`DEFAULT_MEM_LEVEL`]).
    pub mem_level: u8,
    /// Reset after every message, so no message refers to an earlier one. Default: false.
    pub no_context_takeover: bool,
    /// The zlib behind it. Default: [`DeflateEngine::ZlibRs`].
    pub engine: DeflateEngine,
}

impl Default for CompressorConfig {
    fn default() -> Self {
        CompressorConfig {
            level: DEFAULT_LEVEL,
            window_bits: MAX_WINDOW_BITS,
            mem_level: DEFAULT_MEM_LEVEL,
            no_context_takeover: false,
            engine: DeflateEngine::default(),
        }
    }
}

/// Compresses whole messages into permessage-deflate payloads (RFC 7692 §7.2.1).
///
/// With context takeover, each message may refer to the earlier ones, so one compressor serves
/// one connection, and every message it compresses must be sent, in order. Without, the
/// compressor is reset after each message and can be shared (one per worker) and its payloads
/// sent to any connection that agreed to `server_no_context_takeover` with a window at least as
/// large.
pub struct Compressor {
    engine: Engine,
    config: CompressorConfig,
}

/// Which zlib a [`Compressor`] runs, chosen by its [`CompressorConfig::engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeflateEngine {
    /// zlib-rs: the fastest, with a fixed 128 KiB hash table per compressor whatever the window
    /// and memLevel (266 KiB at window 15, memLevel 4). Right for the few reset-per-message
    /// compressors a worker shares. The default.
    #[default]
    ZlibRs,
    /// Classic zlib (libz-sys, static): memory follows the window and memLevel,
    /// `4 × 2^window_bits + 2^(mem_level + 9)` bytes plus ~5.9 KiB (9 KiB at window 9 /
    /// memLevel 1). Right for one compressor per connection.
    Zlib,
}

/// A compressor's zlib: live, or released down to its window.
enum Engine {
    Rs(Deflate),
    Zlib(ZDeflate),
    /// Released while idle ([`Compressor::release`]): only the window (the last 2^window_bits
    /// bytes compressed), from which the next message continues the stream.
    Released(Box<[u8]>),
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor with `config`, its values clamped into range. Allocates all its memory here.
    pub fn new(config: CompressorConfig) -> Self {
        let config = CompressorConfig {
            level: config.level.min(9),
            window_bits: config.window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            mem_level: config.mem_level.clamp(1, 9),
            ..config
        };
        Compressor {
            engine: Self::engine(&config),
            config,
        }
    }

    fn engine(config: &CompressorConfig) -> Engine {
        // zlib rejects raw window 8; 9 is safe (see the `server_max_window_bits` docs).
        let window_bits = config.window_bits.max(9);
        if config.engine == DeflateEngine::Zlib {
            if let Some(z) = ZDeflate::new(config.level, window_bits, config.mem_level) {
                return Engine::Zlib(z);
            }
            // Out of memory in zlib: zlib-rs will report the same, or manage.
        }
        Engine::Rs(Deflate::new_with_config(DeflateConfig {
            level: i32::from(config.level),
            // Negative: raw deflate, no zlib header.
            window_bits: -i32::from(window_bits),
            mem_level: i32::from(config.mem_level),
            ..DeflateConfig::default()
        }))
    }

    /// The settings in use (after clamping).
    pub fn config(&self) -> CompressorConfig {
        self.config
    }

    /// Append the compressed payload of the message `input` to `out`: raw DEFLATE flushed with
    /// `Z_SYNC_FLUSH`, without its final `0x00 0x00 0xff 0xff`. An empty message is `[0x00]`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            // An empty stored block; the stream is byte-aligned after every message, and an
            // empty block changes no state, so the compressor is not involved.
            out.push(0x00);
            return;
        }
        if let Engine::Released(window) = &mut self.engine {
            let window = std::mem::take(window);
            self.engine = Self::engine(&self.config);
            if !self.set_dictionary(&window) {
                // Cannot continue the stream: send this message stored, which refers to nothing,
                // and let it become the window the peer and we share from here.
                write_stored(input, out);
                self.engine = Self::engine(&self.config);
                self.set_dictionary(input);
                return;
            }
        }
        let start = out.len();
        let ok = match &mut self.engine {
            Engine::Rs(d) => deflate_sync(d, input, out),
            Engine::Zlib(z) => z.compress_sync(input, out),
            Engine::Released(_) => false,
        };
        if ok && out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
            if self.config.no_context_takeover {
                self.reset();
            }
        } else {
            // Not reachable with a valid configuration (zlib reports errors only for misuse or
            // out of memory), but never send a broken stream: restart and send the message
            // stored, then start the next message from it (as the peer's window holds it).
            out.truncate(start);
            write_stored(input, out);
            self.engine = Self::engine(&self.config);
            if !self.config.no_context_takeover {
                self.set_dictionary(input);
            }
        }
    }

    /// Prime a fresh engine with `dictionary`; `false` if it refused.
    fn set_dictionary(&mut self, dictionary: &[u8]) -> bool {
        if dictionary.is_empty() {
            return true;
        }
        match &mut self.engine {
            Engine::Rs(d) => d.set_dictionary(dictionary).is_ok(),
            Engine::Zlib(z) => z.set_dictionary(dictionary),
            Engine::Released(_) => false,
        }
    }

    /// Forget every earlier message. The peer must be told (a new connection, or agreed
    /// `server_no_context_takeover`), since its decompressor keeps its window otherwise.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Rs(d) => d.reset(),
            Engine::Zlib(z) => z.reset(),
            Engine::Released(w) => *w = Box::default(),
        }
    }

    /// Free the engine's memory, keeping only its window (at most 2^window_bits bytes; nothing
    /// without context takeover), for a connection gone idle. The next [`Compressor::compress`]
    /// builds the engine again and continues the same stream, so the peer notices nothing.
    /// Only the [`DeflateEngine::Zlib`] engine can hand its window out; with zlib-rs this frees
    /// memory only without context takeover, and returns `false` otherwise.
    pub fn release(&mut self) -> bool {
        let window = match &mut self.engine {
            Engine::Released(_) => return true,
            _ if self.config.no_context_takeover => Vec::new(),
            Engine::Zlib(z) => {
                let mut w = Vec::new();
                if !z.dictionary(&mut w) {
                    return false;
                }
                w
            }
            Engine::Rs(_) => return false,
        };
        self.engine = Engine::Released(window.into_boxed_slice());
        true
    }

    /// Whether the engine is released ([`Compressor::release`]) and not built again yet.
    pub fn is_released(&self) -> bool {
        matches!(self.engine, Engine::Released(_))
    }
}

/// Deflate `input` with a sync flush onto `out` with zlib-rs. `false` if zlib-rs reported an
/// error or stopped making progress.
fn deflate_sync(inner: &mut Deflate, input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut written = out.len();
    // Room for incompressible input (stored blocks: 5 bytes per 64 KiB) and the flush.
    let mut room = input.len() + input.len() / 64 + 64;
    let mut rest = input;
    loop {
        if written == out.len() {
            out.resize(written + room, 0);
            room = room.saturating_mul(2);
        }
        let (in_before, out_before) = (inner.total_in(), inner.total_out());
        let result = inner.compress(rest, &mut out[written..], DeflateFlush::SyncFlush);
        let consumed = (inner.total_in() - in_before) as usize;
        let produced = (inner.total_out() - out_before) as usize;
        rest = &rest[consumed..];
        written += produced;
        let full = written == out.len();
        if result.is_err() || (!full && consumed == 0 && produced == 0 && !rest.is_empty()) {
            out.truncate(written);
            return false;
        }
        // Done when all input is in and zlib had output space left (nothing pending).
        if rest.is_empty() && !full {
            out.truncate(written);
            return true;
        }
    }
}

/// `input` as stored DEFLATE blocks followed by the header byte of the (stripped) final empty
/// stored block: a valid payload that refers to no earlier message. Starts byte-aligned.
fn write_stored(input: &[u8], out: &mut Vec<u8>) {
    for block in input.chunks(usize::from(u16::MAX)) {
        let len = block.len() as u16; // chunks are at most u16::MAX long
        out.push(0x00); // BFINAL 0, BTYPE 00, padding to the byte boundary
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.push(0x00);
}

/// Inflates permessage-deflate payloads (RFC 7692 §7.2.2) under a size limit.
///
/// With context takeover (the client's default) one decompressor serves one connection and
/// must see every compressed message of it, in order. With `no_context_takeover` it is reset
/// after every message, so one can serve many connections whose clients agreed to
/// `client_no_context_takeover`: no message can then reach another connection's data.
pub struct Decompressor {
    pub(super) inner: Inflate,
    window_bits: u8,
    no_context_takeover: bool,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for a peer whose compressor uses at most `window_bits` (clamped to
    /// `8..=15`), resetting after every message if `no_context_takeover`. zlib-rs allocates a
    /// 32 KiB window whatever `window_bits` says, so this bounds correctness, not memory.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        let window_bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Decompressor {
            inner: Inflate::new(false, window_bits),
            window_bits,
            no_context_takeover,
        }
    }

    /// Inflate the payload of one compressed message (all fragments joined).
    ///
    /// The output grows as it is produced, never past `max_size + 1` bytes: over `max_size` the
    /// answer is [`ProtocolError::MessageTooLarge`] (close 1009). Data that is not valid DEFLATE
    /// is [`ProtocolError::Compression`]. After an error the decompressor is reset; the
    /// connection is expected to close. An empty payload is an empty message.
    pub fn decompress(&mut self, input: &[u8], max_size: usize) -> Result<Bytes, ProtocolError> {
        let mut out = Vec::new();
        self.decompress_into(input, max_size, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// Forget every earlier message.
    pub fn reset(&mut self) {
        self.inner.reset(false);
    }

    /// [`Decompressor::decompress`] into `out` (cleared first), which holds on error what was
    /// inflated so far.
    fn decompress_into(
        &mut self,
        input: &[u8],
        max_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        out.clear();
        if input.is_empty() {
            return Ok(());
        }
        let result = self.inflate(input, max_size, out);
        // After a final block (§7.2.3.4, BFINAL set) the stream has ended: the next message starts anew.
        if !matches!(result, Ok(false)) || self.no_context_takeover {
            self.reset();
        }
        result.map(|_| ())
    }

    /// Inflate `input` then [`TAIL`] into `out`; `Ok(true)` if a final block ended the stream.
    fn inflate(
        &mut self,
        input: &[u8],
        max_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, ProtocolError> {
        // Never more than this much output buffer: one byte over the limit proves the excess.
        let cap = max_size.saturating_add(1);
        out.resize(
            input.len().saturating_mul(4).clamp(256, 64 << 10).min(cap),
            0,
        );
        let mut written = 0;
        for chunk in [input, &TAIL[..]] {
            let mut rest = chunk;
            loop {
                if written == out.len() {
                    if written >= cap {
                        out.truncate(written);
                        return Err(ProtocolError::MessageTooLarge {
                            size: written as u64,
                            max: max_size,
                        });
                    }
                    let grown = written.saturating_mul(2).min(cap);
                    out.reserve_exact(grown - written);
                    out.resize(grown, 0);
                }
                let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
                let status =
                    self.inner
                        .decompress(rest, &mut out[written..], InflateFlush::SyncFlush);
                let consumed = (self.inner.total_in() - in_before) as usize;
                let produced = (self.inner.total_out() - out_before) as usize;
                rest = &rest[consumed..];
                written += produced;
                match status {
                    Err(_) => {
                        out.truncate(written);
                        return Err(ProtocolError::Compression);
                    }
                    Ok(Status::StreamEnd) => {
                        // Bytes after the final block (§7.2.3.4's padding) carry nothing.
                        out.truncate(written);
                        if written > max_size {
                            // The final block filled the one byte over the limit.
                            return Err(ProtocolError::MessageTooLarge {
                                size: written as u64,
                                max: max_size,
                            });
                        }
                        return Ok(true);
                    }
                    Ok(_) => {}
                }
                // Output space left over means zlib produced everything it could from the input.
                if written < out.len() {
                    if rest.is_empty() {
                        break;
                    }
                    if consumed == 0 && produced == 0 {
                        out.truncate(written);
                        return Err(ProtocolError::Compression);
                    }
                }
            }
        }
        out.truncate(written);
        Ok(false)
    }
}

/// The receiving side of one connection's permessage-deflate: whether its peer resets its
/// compressor after every message, the peer's window, and — only where the peer keeps its
/// context — what carries the stream from one message to the next, created on the first
/// compressed message: for a peer window under 32 KiB, just that window (the last 2^window_bits
/// bytes inflated), into which the [`Inflater`] lends its decompressor per message; for a
/// 32 KiB window, a decompressor of its own (46 KiB), since copying 32 KiB in and out per
/// message would cost more CPU than the 14 KiB it saves (`benches/deflate_ratio.rs`).
#[derive(Debug)]
pub struct InflateState {
    pub(super) peer_no_context_takeover: bool,
    pub(super) peer_window_bits: u8,
    pub(super) window: Vec<u8>,
    pub(super) own: Option<Box<Decompressor>>,
}

impl InflateState {
    /// The state for a peer that compresses with `peer_window_bits` and resets its context after
    /// every message if `peer_no_context_takeover`. See [`Negotiated::server_inflate`] and
    /// [`Negotiated::client_inflate`](super::Negotiated::client_inflate) for the two roles.
    ///
    /// [`Negotiated::server_inflate`]: super::Negotiated::server_inflate
    pub fn new(peer_no_context_takeover: bool, peer_window_bits: u8) -> Self {
        InflateState {
            peer_no_context_takeover,
            peer_window_bits: peer_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            window: Vec::new(),
            own: None,
        }
    }

    /// Whether this connection holds a window or decompressor of its own (memory accounting,
    /// tests).
    pub fn holds_context(&self) -> bool {
        self.window.capacity() > 0 || self.own.is_some()
    }

    /// Bytes this connection's window holds (0 with a decompressor of its own, whose memory is
    /// zlib-rs's: 46 KiB).
    pub fn memory(&self) -> usize {
        self.window.capacity()
    }

    /// Append what `inflated` leaves in the peer's window.
    pub(super) fn slide(&mut self, inflated: &[u8]) {
        let size = 1usize << self.peer_window_bits;
        if self.window.capacity() == 0 {
            self.window.reserve_exact(size);
        }
        if inflated.len() >= size {
            self.window.clear();
            self.window
                .extend_from_slice(&inflated[inflated.len() - size..]);
            return;
        }
        let keep = size - inflated.len();
        if self.window.len() > keep {
            self.window.drain(..self.window.len() - keep);
        }
        self.window.extend_from_slice(inflated);
    }
}

/// Turns compressed messages into finished [`Message`]s: inflates (capped), appends the sync
/// tail, and checks inflated text for UTF-8. One `Inflater` per thread (the server runtime keeps
/// one per worker, the loadtest one per thread) holds a decompressor shared by every
/// connection: a peer that resets its compressor after every message needs nothing more; for a
/// peer that keeps its context with a window under 32 KiB, the decompressor starts each message
/// from the connection's window ([`InflateState`]) and the window is brought up to date after
/// it, so such a connection holds 2^window_bits bytes instead of a 46 KiB decompressor. A peer
/// with a 32 KiB window and context takeover gets a decompressor of its own, kept in its
/// [`InflateState`].
#[derive(Debug, Default)]
pub struct Inflater {
    shared: Option<Box<Decompressor>>,
}

impl Inflater {
    /// An inflater; its decompressor is created on first use.
    pub fn new() -> Self {
        Inflater::default()
    }

    fn shared(&mut self) -> &mut Decompressor {
        self.shared
            .get_or_insert_with(|| Box::new(Decompressor::new(MAX_WINDOW_BITS, true)))
    }

    /// Inflate one compressed message of `conn` (its payload as received, the tail stripped),
    /// at most `max` bytes, into a finished message: `text` selects a text message, whose
    /// inflated bytes must be UTF-8. Errors: [`ProtocolError::MessageTooLarge`] (1009) past
    /// `max`, [`ProtocolError::Compression`] (1002) for invalid data,
    /// [`ProtocolError::InvalidUtf8`] (1007) for text that is not UTF-8.
    pub fn message(
        &mut self,
        conn: &mut InflateState,
        text: bool,
        payload: &[u8],
        max: usize,
    ) -> Result<Message, ProtocolError> {
        // A full-size peer window with context takeover keeps a live decompressor of its own.
        let own = conn.peer_window_bits == MAX_WINDOW_BITS && !conn.peer_no_context_takeover;
        let inflated = if own {
            conn.own
                .get_or_insert_with(|| Box::new(Decompressor::new(MAX_WINDOW_BITS, false)))
                .decompress(payload, max)?
        } else if conn.peer_no_context_takeover {
            // Window 15 inflates any smaller window too.
            self.shared().decompress(payload, max)?
        } else {
            let d = self.shared();
            let mut out = Vec::new();
            d.reset();
            if !conn.window.is_empty() && d.inner.set_dictionary(&conn.window).is_err() {
                return Err(ProtocolError::Compression);
            }
            let result = d.inflate(payload, max, &mut out);
            d.reset();
            match result {
                Ok(false) => conn.slide(&out),
                // After a final block (§7.2.3.4, BFINAL set) the stream has ended: the next
                // message starts a new one, with an empty window.
                Ok(true) => conn.window.clear(),
                Err(e) => {
                    conn.window.clear();
                    return Err(e);
                }
            }
            Bytes::from(out)
        };
        if text {
            Utf8Bytes::try_from_bytes(inflated)
                .map(Message::Text)
                .map_err(|_| ProtocolError::InvalidUtf8)
        } else {
            Ok(Message::Binary(inflated))
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
