//! permessage-deflate (RFC 7692): choosing the extension's parameters from a client's offers
//! (§5, §7.1) and the per-message codec (§7.2), over byte slices.
//!
//! - [`negotiate`] reads every `Sec-WebSocket-Extensions` value of an upgrade request and accepts
//!   the first acceptable permessage-deflate offer under a [`DeflateOptions`] policy. It never
//!   fails the handshake: a malformed or unacceptable offer is declined and the next one tried;
//!   with none left the answer is `None` (no extension).
//! - [`Compressor`] turns one message into the payload of a compressed message (raw DEFLATE,
//!   `Z_SYNC_FLUSH`, the trailing `0x00 0x00 0xff 0xff` removed, §7.2.1).
//! - [`Decompressor`] inflates one payload (the tail appended, §7.2.2) under a size limit that
//!   holds while inflating, so a small deflate bomb never allocates more than the limit.
//!
//! The codec is zlib-rs (the pure-Rust zlib that flate2's `zlib-rs` backend runs), used through
//! its safe API because flate2 does not expose zlib's `memLevel`. Memory per context with
//! zlib-rs, measured by `cargo bench --bench deflate`: a compressor holds
//! `128 KiB (hash heads, fixed) + 4 × 2^window_bits + 7 × 2^(mem_level + 6)` bytes plus ~3 KiB of
//! state (371 KiB at window 15 / memLevel 8, 266 KiB at 15/4, 134 KiB at 9/1); a decompressor
//! holds 46 KiB whatever the window (zlib-rs always allocates a 32 KiB window). Resetting a
//! compressor clears its 128 KiB hash table (~2.5 µs), the price of no context takeover.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status};

use crate::protocol::error::ProtocolError;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The empty stored block that ends every sync-flushed message: removed by the sender, appended
/// by the receiver (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

// ---------------------------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1)
// ---------------------------------------------------------------------------------------------

/// The server's permessage-deflate policy: what it accepts and what it asks of clients.
///
/// Out-of-range values are clamped when used (documented per field), never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateOptions {
    /// Largest LZ77 window of our compressor, as a power of two, `8..=15`. Below 15 it is sent
    /// as `server_max_window_bits` even when the client did not offer it (§7.1.2.1); a client
    /// offer of a smaller value wins. Our compressor uses 9 where 8 is agreed: zlib cannot
    /// produce 8-bit raw streams, and a 9-bit zlib window never emits a distance over
    /// 512 − 262 = 250, which an 8-bit (256-byte) inflater accepts. Default: 15.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window we let the client's compressor use, `9..=15` (8 is raised to 9: zlib
    /// based clients cannot compress with 8). Only sent when the client offered
    /// `client_max_window_bits` (§7.1.2.2); otherwise the client may use 15. Default: 15.
    pub client_max_window_bits: u8,
    /// Reset our compressor after every message even if the client did not ask for it
    /// (`server_no_context_takeover` is then always in the response, §7.1.1.1). Needed to share
    /// one compressor between connections or compress a broadcast once. Default: false.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message (`client_no_context_takeover`
    /// is then always in the response, §7.1.1.2), so one decompressor can serve many
    /// connections. Costs compression ratio on the client's messages. Default: false.
    pub client_no_context_takeover: bool,
    /// zlib's `memLevel`, `1..=9`: the compressor buffers `2^(mem_level + 6)` symbols per block
    /// (7 bytes each). Lower saves memory per compressor; at level 2 and up, below 4 it costs
    /// ratio on large messages. Default: 4 (zlib's 8 holds 108 KiB more for no gain measured).
    pub mem_level: u8,
    /// Compression level, `0..=9` (0 stores, 1 fastest, 9 smallest). Default: 1. Measured with
    /// `benches/deflate.rs`: a 1 KiB JSON message compresses in ~1.6 µs to 320 bytes at 1,
    /// ~8.6 µs to 283 at 2, ~20 µs to 252 at 6 (zlib's default).
    pub level: u8,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            mem_level: 4,
            level: 1,
        }
    }
}

/// An accepted permessage-deflate offer: the parameters in force and the response header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// We reset our compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The agreed window of our compressor, `8..=15` (compressing with 9 where this is 8).
    pub server_max_window_bits: u8,
    /// The largest window the client's compressor may use, `8..=15` (15 if not limited).
    pub client_max_window_bits: u8,
    response: String,
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` value to send in the 101 response, e.g.
    /// `permessage-deflate; server_max_window_bits=10`.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// The settings of the compressor for this connection's outgoing messages (window and
    /// context takeover as agreed; level and memory level from `options`).
    pub fn compressor_config(&self, options: &DeflateOptions) -> CompressorConfig {
        CompressorConfig {
            level: options.level,
            window_bits: self.server_max_window_bits,
            mem_level: options.mem_level,
            no_context_takeover: self.server_no_context_takeover,
        }
    }

    /// A compressor for this connection's outgoing messages.
    pub fn compressor(&self, options: &DeflateOptions) -> Compressor {
        Compressor::new(self.compressor_config(options))
    }

    /// A decompressor for this connection's incoming messages.
    pub fn decompressor(&self) -> Decompressor {
        Decompressor::new(self.client_max_window_bits, self.client_no_context_takeover)
    }
}

/// Accept the first acceptable permessage-deflate offer among `header_values` (every
/// `Sec-WebSocket-Extensions` value of the request, in order).
///
/// Offers are tried in order; one is declined (and the next tried) when it is malformed, has an
/// unknown or repeated parameter, or a parameter with an invalid value (RFC 7692 §7.1). Other
/// extensions are skipped. `None` means no extension: the handshake goes on without it.
///
/// ```
/// use volley::protocol::deflate::{negotiate, DeflateOptions};
/// let offers = ["permessage-deflate; client_max_window_bits; server_max_window_bits=10"];
/// let agreed = negotiate(&offers, &DeflateOptions::default()).unwrap();
/// assert_eq!(agreed.server_max_window_bits, 10);
/// assert_eq!(agreed.response(), "permessage-deflate; server_max_window_bits=10");
/// ```
pub fn negotiate(header_values: &[&str], options: &DeflateOptions) -> Option<Negotiated> {
    for value in header_values {
        let mut parser = Parser {
            bytes: value.as_bytes(),
            text: value,
            pos: 0,
        };
        while let Some(parsed) = parser.next_offer() {
            if let Some(offer) = parsed {
                if let Some(accepted) = accept(&offer, options) {
                    return Some(accepted);
                }
            }
        }
    }
    None
}

/// The parameters of one permessage-deflate offer, as far as they were valid.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
    invalid: bool,
}

impl Offer {
    fn apply(&mut self, name: &str, value: Option<&str>) {
        let ok = if name.eq_ignore_ascii_case("server_no_context_takeover") {
            let fresh = !self.server_no_context_takeover && value.is_none();
            self.server_no_context_takeover = true;
            fresh
        } else if name.eq_ignore_ascii_case("client_no_context_takeover") {
            let fresh = !self.client_no_context_takeover && value.is_none();
            self.client_no_context_takeover = true;
            fresh
        } else if name.eq_ignore_ascii_case("server_max_window_bits") {
            let bits = value.and_then(window_bits);
            let fresh = self.server_max_window_bits.is_none() && bits.is_some();
            self.server_max_window_bits = Some(bits.unwrap_or(0));
            fresh
        } else if name.eq_ignore_ascii_case("client_max_window_bits") {
            let bits = value.map(window_bits);
            let fresh = self.client_max_window_bits.is_none() && bits != Some(None);
            self.client_max_window_bits = Some(bits.flatten());
            fresh
        } else {
            false
        };
        self.invalid |= !ok;
    }
}

/// A window size value: a decimal integer 8..=15 without leading zeroes (§7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// The response to a valid offer under our policy, or `None` to decline it.
fn accept(offer: &Offer, options: &DeflateOptions) -> Option<Negotiated> {
    if offer.invalid {
        return None;
    }
    let ours_server = options.server_max_window_bits.clamp(8, 15);
    let ours_client = options.client_max_window_bits.clamp(9, 15);

    // §7.1.2.1: an offered value must be answered with it or less; unoffered, we may still
    // limit our own window.
    let (server_bits, send_server_bits) = match offer.server_max_window_bits {
        Some(offered) => (offered.min(ours_server), true),
        None => (ours_server, ours_server < 15),
    };
    // §7.1.2.2: only if offered; a value in the offer already binds the client.
    let (client_bits, send_client_bits) = match offer.client_max_window_bits {
        None => (15, false),
        Some(None) => (ours_client, ours_client < 15),
        Some(Some(offered)) => (offered.min(ours_client), ours_client < offered),
    };
    let server_nct = offer.server_no_context_takeover || options.server_no_context_takeover;
    let client_nct = offer.client_no_context_takeover || options.client_no_context_takeover;

    let mut response = String::from(EXTENSION_NAME);
    if server_nct {
        response.push_str("; server_no_context_takeover");
    }
    if client_nct {
        response.push_str("; client_no_context_takeover");
    }
    if send_server_bits {
        response.push_str(&format!("; server_max_window_bits={server_bits}"));
    }
    if send_client_bits {
        response.push_str(&format!("; client_max_window_bits={client_bits}"));
    }
    Some(Negotiated {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        response,
    })
}

/// A cursor over one header value:
/// `extension-list = 1#( token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] ) )`
/// (RFC 6455 §9.1, RFC 7230 §3.2.6 / §7).
struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// The next list element: `None` at the end; `Some(None)` for a malformed element or another
    /// extension; `Some(Some(offer))` for a permessage-deflate offer (possibly `invalid`).
    fn next_offer(&mut self) -> Option<Option<Offer>> {
        // Empty list elements are allowed: `, ,permessage-deflate`.
        loop {
            self.skip_ows();
            match self.peek() {
                None => return None,
                Some(b',') => self.pos += 1,
                Some(_) => break,
            }
        }
        let parsed = self.element();
        if parsed.is_none() {
            self.skip_to_next_element();
        }
        Some(parsed.flatten())
    }

    /// One element; `None` if malformed (the cursor is then somewhere inside it).
    fn element(&mut self) -> Option<Option<Offer>> {
        let name = self.token()?;
        let mut offer = name
            .eq_ignore_ascii_case(EXTENSION_NAME)
            .then(Offer::default);
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Some(offer),
                Some(b',') => {
                    self.pos += 1;
                    return Some(offer);
                }
                Some(b';') => self.pos += 1,
                Some(_) => return None,
            }
            self.skip_ows();
            let param = self.token()?;
            self.skip_ows();
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.skip_ows();
                Some(if self.peek() == Some(b'"') {
                    self.quoted()?
                } else {
                    Cow::Borrowed(self.token()?)
                })
            } else {
                None
            };
            if let Some(offer) = offer.as_mut() {
                offer.apply(param, value.as_deref());
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// `token = 1*tchar`.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        // Only ASCII bytes were skipped, so both ends are char boundaries.
        self.text.get(start..self.pos).filter(|t| !t.is_empty())
    }

    /// `quoted-string`, unescaped; borrowed unless it holds a quoted-pair.
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            let byte = self.peek()?;
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let escaped = self
                        .peek()
                        .filter(|&b| b == b'\t' || !b.is_ascii_control())?;
                    let buf =
                        unescaped.get_or_insert_with(|| self.bytes[start..self.pos - 1].to_vec());
                    buf.push(escaped);
                    self.pos += 1;
                }
                b if b == b'\t' || !b.is_ascii_control() => {
                    if let Some(buf) = unescaped.as_mut() {
                        buf.push(b);
                    }
                }
                _ => return None,
            }
        }
        match unescaped {
            None => Some(Cow::Borrowed(self.text.get(start..self.pos - 1)?)),
            Some(buf) => String::from_utf8(buf).ok().map(Cow::Owned),
        }
    }

    /// After a malformed element: skip past the next comma outside a quoted string.
    fn skip_to_next_element(&mut self) {
        let mut in_quotes = false;
        while let Some(byte) = self.peek() {
            self.pos += 1;
            match byte {
                b'"' => in_quotes = !in_quotes,
                b'\\' if in_quotes => self.pos += 1,
                b',' if !in_quotes => return,
                _ => {}
            }
        }
    }
}

/// `tchar` of RFC 7230 §3.2.6.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

// ---------------------------------------------------------------------------------------------
// Codec (RFC 7692 §7.2)
// ---------------------------------------------------------------------------------------------

/// Settings of a [`Compressor`]. Out-of-range values are clamped by [`Compressor::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompressorConfig {
    /// Compression level, `0..=9`. Default: 1 (see [`DeflateOptions::level`]).
    pub level: u8,
    /// LZ77 window, `8..=15`; 8 compresses with 9 (see
    /// [`DeflateOptions::server_max_window_bits`]). Default: 15.
    pub window_bits: u8,
    /// zlib's `memLevel`, `1..=9`. Default: 4 (see [`DeflateOptions::mem_level`]).
    pub mem_level: u8,
    /// Reset after every message, so no message refers to an earlier one. Default: false.
    pub no_context_takeover: bool,
}

impl Default for CompressorConfig {
    fn default() -> Self {
        let options = DeflateOptions::default();
        CompressorConfig {
            level: options.level,
            window_bits: 15,
            mem_level: options.mem_level,
            no_context_takeover: false,
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
    inner: Deflate,
    config: CompressorConfig,
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
            window_bits: config.window_bits.clamp(8, 15),
            mem_level: config.mem_level.clamp(1, 9),
            no_context_takeover: config.no_context_takeover,
        };
        let inner = Deflate::new_with_config(DeflateConfig {
            level: i32::from(config.level),
            // Negative: raw deflate, no zlib header. zlib rejects raw 8; 9 is safe (see the
            // `server_max_window_bits` docs).
            window_bits: -i32::from(config.window_bits.max(9)),
            mem_level: i32::from(config.mem_level),
            ..DeflateConfig::default()
        });
        Compressor { inner, config }
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
        let start = out.len();
        if self.deflate_sync(input, out) && out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
            if self.config.no_context_takeover {
                self.inner.reset();
            }
        } else {
            // Not reachable with a valid configuration (zlib-rs reports errors only for misuse),
            // but never send a broken stream: restart and send the message stored.
            out.truncate(start);
            self.inner.reset();
            write_stored(input, out);
        }
    }

    /// Forget every earlier message. The peer must be told (a new connection, or agreed
    /// `server_no_context_takeover`), since its decompressor keeps its window otherwise.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Deflate `input` with a sync flush onto `out`. `false` if zlib-rs reported an error or
    /// stopped making progress.
    fn deflate_sync(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let mut written = out.len();
        // Room for incompressible input (stored blocks: 5 bytes per 64 KiB) and the flush.
        let mut room = input.len() + input.len() / 64 + 64;
        let mut rest = input;
        loop {
            if written == out.len() {
                out.resize(written + room, 0);
                room = room.saturating_mul(2);
            }
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self
                .inner
                .compress(rest, &mut out[written..], DeflateFlush::SyncFlush);
            let consumed = (self.inner.total_in() - in_before) as usize;
            let produced = (self.inner.total_out() - out_before) as usize;
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
    inner: Inflate,
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
        let window_bits = window_bits.clamp(8, 15);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DeflateOptions {
        DeflateOptions::default()
    }

    fn response(offers: &[&str], options: &DeflateOptions) -> Option<String> {
        negotiate(offers, options).map(|n| n.response().to_owned())
    }

    // ---- negotiation ------------------------------------------------------------------------

    #[test]
    fn plain_offer_is_accepted_with_defaults() {
        let n = negotiate(&["permessage-deflate"], &opts()).unwrap();
        assert_eq!(n.response(), "permessage-deflate");
        assert!(!n.server_no_context_takeover && !n.client_no_context_takeover);
        assert_eq!(
            (n.server_max_window_bits, n.client_max_window_bits),
            (15, 15)
        );
    }

    #[test]
    fn no_offer_or_other_extensions_mean_no_extension() {
        assert_eq!(negotiate(&[], &opts()), None);
        assert_eq!(negotiate(&[""], &opts()), None);
        assert_eq!(
            negotiate(&["x-webkit-deflate-frame", "foo; bar=1"], &opts()),
            None
        );
        assert_eq!(negotiate(&["permessage-deflat"], &opts()), None);
    }

    #[test]
    fn rfc7692_examples() {
        // §5.2 / §7.1: the first offer wins; the server answers within it.
        let offers = [
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                       permessage-deflate; client_max_window_bits",
        ];
        let n = negotiate(&offers, &opts()).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(
            (n.server_max_window_bits, n.client_max_window_bits),
            (10, 15)
        );

        // §7.1.1: no context takeover in both directions.
        let offers = ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"];
        let n = negotiate(&offers, &opts()).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(n.server_no_context_takeover && n.client_no_context_takeover);
    }

    #[test]
    fn several_offers_and_header_values() {
        let offers = [
            "foo, bar; baz=1",
            "permessage-deflate; server_max_window_bits=12, foo",
        ];
        let n = negotiate(&offers, &opts()).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_max_window_bits=12"
        );
        // Empty list elements are allowed.
        let n = negotiate(&[" , ,permessage-deflate ,"], &opts()).unwrap();
        assert_eq!(n.response(), "permessage-deflate");
    }

    #[test]
    fn whitespace_case_and_quoted_values() {
        let offers = ["  Permessage-Deflate\t;  Server_Max_Window_Bits = \"10\" ; client_max_window_bits=\"9\"  "];
        let n = negotiate(&offers, &opts()).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_max_window_bits=10"
        );
        assert_eq!(
            (n.server_max_window_bits, n.client_max_window_bits),
            (10, 9)
        );
        // A quoted-pair is unescaped before the value is checked.
        let n = negotiate(
            &[r#"permessage-deflate; server_max_window_bits="1\1""#],
            &opts(),
        );
        assert_eq!(n.unwrap().server_max_window_bits, 11);
        // A comma inside quotes does not end the element.
        let offers = [r#"foo; x="a,b", permessage-deflate"#];
        assert_eq!(response(&offers, &opts()).unwrap(), "permessage-deflate");
    }

    #[test]
    fn invalid_values_decline_the_offer_and_the_next_is_accepted() {
        for bad in [
            "server_max_window_bits=7",
            "server_max_window_bits=16",
            "server_max_window_bits=08",
            "server_max_window_bits=010",
            "server_max_window_bits=abc",
            "server_max_window_bits=-9",
            "server_max_window_bits=\"\"",
            "server_max_window_bits",
            "server_max_window_bits=",
            "client_max_window_bits=7",
            "client_max_window_bits=16",
            "client_max_window_bits=\"1 0\"",
            "server_no_context_takeover=1",
            "client_no_context_takeover=\"\"",
        ] {
            let offer =
                format!("permessage-deflate; {bad}, permessage-deflate; server_max_window_bits=11");
            let n = negotiate(&[&offer], &opts()).unwrap_or_else(|| panic!("{bad}"));
            assert_eq!(n.server_max_window_bits, 11, "{bad}");
        }
    }

    #[test]
    fn unknown_and_duplicate_params_decline() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
        ] {
            assert_eq!(negotiate(&[bad], &opts()), None, "{bad}");
            let with_fallback = [bad, "permessage-deflate"];
            assert_eq!(
                response(&with_fallback, &opts()).unwrap(),
                "permessage-deflate"
            );
        }
    }

    #[test]
    fn malformed_syntax_declines_and_resyncs() {
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; ;",
            "permessage-deflate; =10",
            "permessage-deflate server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; server_max_window_bits=\"1\u{1}0\"",
            "permessage-deflate; server_max_window_bits=10 11",
            "permessage-deflate; server_max_window_bits=é",
            "permessage-deflate; server_max_window_bits=\"\\",
            "\"permessage-deflate\"",
            "é",
        ] {
            assert_eq!(negotiate(&[bad], &opts()), None, "{bad:?}");
            let n = negotiate(
                &[bad, "permessage-deflate; server_max_window_bits=12"],
                &opts(),
            );
            assert_eq!(n.unwrap().server_max_window_bits, 12, "{bad:?}");
        }
        // Inside one value, the next element after a malformed one is still read.
        let n = negotiate(&["permessage-deflate; x y, permessage-deflate"], &opts()).unwrap();
        assert_eq!(n.response(), "permessage-deflate");
    }

    #[test]
    fn client_max_window_bits_with_and_without_value() {
        let mut limited = opts();
        limited.client_max_window_bits = 10;
        // Not offered: never in the response, the client may use 15.
        let n = negotiate(&["permessage-deflate"], &limited).unwrap();
        assert_eq!(
            (n.response(), n.client_max_window_bits),
            ("permessage-deflate", 15)
        );
        // Offered without a value: we may limit it.
        let n = negotiate(&["permessage-deflate; client_max_window_bits"], &limited).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; client_max_window_bits=10"
        );
        assert_eq!(n.client_max_window_bits, 10);
        let n = negotiate(&["permessage-deflate; client_max_window_bits"], &opts()).unwrap();
        assert_eq!(
            (n.response(), n.client_max_window_bits),
            ("permessage-deflate", 15)
        );
        // Offered with a value: it binds the client; we only answer to lower it.
        let n = negotiate(&["permessage-deflate; client_max_window_bits=12"], &limited).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; client_max_window_bits=10"
        );
        let n = negotiate(&["permessage-deflate; client_max_window_bits=9"], &limited).unwrap();
        assert_eq!(
            (n.response(), n.client_max_window_bits),
            ("permessage-deflate", 9)
        );
        let n = negotiate(&["permessage-deflate; client_max_window_bits=8"], &opts()).unwrap();
        assert_eq!(n.client_max_window_bits, 8);
        // We never ask a client for 8 bits: zlib-based clients cannot compress with it.
        let mut eight = opts();
        eight.client_max_window_bits = 8;
        let n = negotiate(&["permessage-deflate; client_max_window_bits"], &eight).unwrap();
        assert_eq!(n.response(), "permessage-deflate; client_max_window_bits=9");
    }

    #[test]
    fn server_max_window_bits_rules() {
        let mut small = opts();
        small.server_max_window_bits = 10;
        // Unoffered: we may still announce our smaller window (§7.1.2.1).
        let n = negotiate(&["permessage-deflate"], &small).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_max_window_bits=10"
        );
        // Offered: always answered, with the smaller of the two.
        let n = negotiate(&["permessage-deflate; server_max_window_bits=12"], &small).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_max_window_bits=10"
        );
        let n = negotiate(&["permessage-deflate; server_max_window_bits=9"], &small).unwrap();
        assert_eq!(n.response(), "permessage-deflate; server_max_window_bits=9");
        let n = negotiate(&["permessage-deflate; server_max_window_bits=15"], &opts()).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_max_window_bits=15"
        );
        // 8 is accepted (Autobahn 13.3/13.5 offer it); the compressor then uses 9.
        let n = negotiate(&["permessage-deflate; server_max_window_bits=8"], &opts()).unwrap();
        assert_eq!(n.response(), "permessage-deflate; server_max_window_bits=8");
        assert_eq!(n.compressor(&opts()).config().window_bits, 8);
    }

    #[test]
    fn forced_no_context_takeover() {
        let mut forced = opts();
        forced.server_no_context_takeover = true;
        forced.client_no_context_takeover = true;
        let n = negotiate(&["permessage-deflate"], &forced).unwrap();
        assert_eq!(
            n.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(n.server_no_context_takeover && n.client_no_context_takeover);
        assert!(n.compressor(&forced).config().no_context_takeover);
    }

    /// Every response parameter is one the offer allowed (§7.1.2.2: `client_max_window_bits`
    /// only if offered), values never exceed offered ones, and the response parses back.
    #[test]
    fn response_stays_within_the_offer() {
        let params = [
            "",
            "; server_no_context_takeover",
            "; client_no_context_takeover",
            "; server_max_window_bits=8",
            "; server_max_window_bits=11",
            "; client_max_window_bits",
            "; client_max_window_bits=10",
        ];
        let mut policies = Vec::new();
        for server_bits in [8, 9, 12, 15] {
            for client_bits in [9, 13, 15] {
                for force in [false, true] {
                    let mut o = opts();
                    o.server_max_window_bits = server_bits;
                    o.client_max_window_bits = client_bits;
                    o.server_no_context_takeover = force;
                    o.client_no_context_takeover = force;
                    policies.push(o);
                }
            }
        }
        for mask in 0u32..(1 << params.len()) {
            let offer: String = std::iter::once(EXTENSION_NAME)
                .chain(
                    params
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, p)| *p),
                )
                .collect();
            let duplicate = (mask & 0b11000 == 0b11000) || (mask & 0b1100000 == 0b1100000);
            for o in &policies {
                let Some(n) = negotiate(&[&offer], o) else {
                    assert!(duplicate, "{offer} declined");
                    continue;
                };
                assert!(!duplicate, "{offer} accepted");
                let resp = n.response();
                if !offer.contains("client_max_window_bits") {
                    assert!(
                        !resp.contains("client_max_window_bits"),
                        "{offer} -> {resp}"
                    );
                    assert_eq!(n.client_max_window_bits, 15);
                }
                if offer.contains("server_max_window_bits=8") {
                    assert!(
                        resp.ends_with("server_max_window_bits=8")
                            || resp.contains("server_max_window_bits=8;")
                    );
                }
                if offer.contains("client_max_window_bits=10") {
                    assert!(n.client_max_window_bits <= 10);
                }
                assert!(n.server_max_window_bits <= o.server_max_window_bits.max(8));
                // The response is itself a valid offer with the same meaning.
                let again = negotiate(&[resp], &opts()).unwrap();
                assert_eq!(
                    again.server_no_context_takeover,
                    n.server_no_context_takeover
                );
                assert_eq!(
                    again.client_no_context_takeover,
                    n.client_no_context_takeover
                );
                assert_eq!(again.server_max_window_bits, n.server_max_window_bits);
            }
        }
    }

    #[test]
    fn arbitrary_header_bytes_never_panic() {
        let alphabet: &[&str] = &[
            "permessage-deflate",
            ";",
            ",",
            "=",
            "\"",
            "\\",
            " ",
            "\t",
            "server_max_window_bits",
            "client_max_window_bits",
            "server_no_context_takeover",
            "10",
            "8",
            "x",
            "é",
            "\u{0}",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            if let Some(n) = negotiate(&[&s], &opts()) {
                assert!(n.response().starts_with(EXTENSION_NAME));
            }
        }
    }

    // ---- codec -------------------------------------------------------------------------------

    fn compressor(window_bits: u8, no_context_takeover: bool) -> Compressor {
        Compressor::new(CompressorConfig {
            window_bits,
            no_context_takeover,
            ..CompressorConfig::default()
        })
    }

    fn compress(c: &mut Compressor, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.compress(input, &mut out);
        out
    }

    fn sample_messages() -> Vec<Vec<u8>> {
        let json = br#"{"type":"chat","room":"general","user":"alice","text":"hello there, how are you doing today?","ts":1700000000}"#;
        let mut noise = Vec::new();
        let mut x = 0x9e37_79b9u32;
        for _ in 0..70_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        vec![
            json.to_vec(),
            json.to_vec(),
            Vec::new(),
            b"Hello".to_vec(),
            json.repeat(300),
            noise,
            vec![0; 100_000],
            json.to_vec(),
        ]
    }

    #[test]
    fn round_trip_with_and_without_context_takeover() {
        for no_context_takeover in [false, true] {
            let mut c = compressor(15, no_context_takeover);
            let mut d = Decompressor::new(15, no_context_takeover);
            for (i, msg) in sample_messages().iter().enumerate() {
                let payload = compress(&mut c, msg);
                assert!(!payload.ends_with(&TAIL) || msg.is_empty(), "message {i}");
                let back = d.decompress(&payload, 1 << 20).unwrap();
                assert_eq!(
                    &back[..],
                    &msg[..],
                    "message {i}, nct {no_context_takeover}"
                );
            }
        }
    }

    #[test]
    fn context_takeover_shrinks_repeats_and_no_context_takeover_does_not() {
        let msg = br#"{"type":"chat","room":"general","user":"alice","text":"hello there"}"#;
        let mut dedicated = compressor(15, false);
        let first = compress(&mut dedicated, msg);
        let second = compress(&mut dedicated, msg);
        assert!(
            second.len() < first.len() / 2,
            "{} vs {}",
            second.len(),
            first.len()
        );

        let mut shared = compressor(15, true);
        let first = compress(&mut shared, msg);
        let second = compress(&mut shared, msg);
        assert_eq!(first, second);
        // A fresh decompressor reads any message of a no-context stream on its own.
        let back = Decompressor::new(15, false)
            .decompress(&second, 1 << 10)
            .unwrap();
        assert_eq!(&back[..], msg);
    }

    #[test]
    fn empty_message_is_one_stored_block_byte() {
        let mut c = compressor(15, false);
        assert_eq!(compress(&mut c, b""), [0x00]);
        compress(&mut c, b"abc");
        assert_eq!(compress(&mut c, b""), [0x00]);
        let mut d = Decompressor::new(15, false);
        assert!(d.decompress(&[0x00], 10).unwrap().is_empty());
        assert!(d.decompress(&[], 10).unwrap().is_empty());
        // An empty payload leaves no half-read block behind.
        let hello = compress(&mut compressor(15, false), b"Hello");
        assert_eq!(&d.decompress(&hello, 10).unwrap()[..], b"Hello");
    }

    #[test]
    fn sync_flush_tail_is_stripped_and_appended() {
        let mut c = compressor(15, false);
        let payload = compress(&mut c, b"Hello");
        // With the tail put back it is plain raw DEFLATE, readable by flate2.
        let mut with_tail = payload.clone();
        with_tail.extend_from_slice(&TAIL);
        let mut inflater = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(64);
        inflater
            .decompress_vec(&with_tail, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, b"Hello");
        assert_eq!(reference_inflate(&with_tail).0, b"Hello");
        // A payload that still carries the tail is also fine: one more empty stored block.
        let mut d = Decompressor::new(15, false);
        assert_eq!(&d.decompress(&with_tail, 10).unwrap()[..], b"Hello");
    }

    #[test]
    fn rfc7692_payload_examples() {
        let mut d = Decompressor::new(15, false);
        // §7.2.3.1: "Hello" in one compressed block.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(&d.decompress(&hello, 5).unwrap()[..], b"Hello");
        // §7.2.3.2: the second "Hello" refers to the first through the shared window.
        assert_eq!(
            &d.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], 5).unwrap()[..],
            b"Hello"
        );
        // §7.2.3.4: a final block (BFINAL) plus one padding byte; the stream ends and the next
        // message starts a new one.
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(&d.decompress(&bfinal, 5).unwrap()[..], b"Hello");
        assert_eq!(&d.decompress(&hello, 5).unwrap()[..], b"Hello");
        // §7.2.3.5: two DEFLATE blocks in one message.
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(&d.decompress(&two, 5).unwrap()[..], b"Hello");
        // §7.2.3.3: a stored (uncompressed) block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(&d.decompress(&stored, 5).unwrap()[..], b"Hello");
    }

    #[test]
    fn interop_with_flate2_encoder_and_decoder() {
        use std::io::Write;
        let messages = sample_messages();
        // flate2's raw encoder: `flush()` is a sync flush; strip its tail per message.
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        let mut d = Decompressor::new(15, false);
        for msg in &messages {
            encoder.write_all(msg).unwrap();
            encoder.flush().unwrap();
            let mut payload = std::mem::take(encoder.get_mut());
            if msg.is_empty() {
                // zlib skips a second flush with no new input: an empty payload.
                assert!(payload.is_empty());
                assert!(d.decompress(&payload, 0).unwrap().is_empty());
                continue;
            }
            assert!(payload.ends_with(&TAIL));
            payload.truncate(payload.len() - 4);
            assert_eq!(&d.decompress(&payload, 1 << 20).unwrap()[..], &msg[..]);
        }
        // And the other way: our payloads plus the tail, through one flate2 stream.
        let mut c = compressor(15, false);
        let mut inflater = flate2::Decompress::new(false);
        for msg in &messages {
            let mut payload = compress(&mut c, msg);
            payload.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(msg.len() + 1);
            inflater
                .decompress_vec(&payload, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, *msg);
        }
    }

    #[test]
    fn every_setting_round_trips_through_an_independent_decoder() {
        let text = sample_messages()[4].clone();
        for window_bits in 8..=15u8 {
            for mem_level in [1, 4, 8, 9] {
                for level in [0, 1, 6, 9] {
                    let mut c = Compressor::new(CompressorConfig {
                        level,
                        window_bits,
                        mem_level,
                        no_context_takeover: false,
                    });
                    let mut stream = Vec::new();
                    let mut d = Decompressor::new(window_bits, false);
                    for _ in 0..2 {
                        let payload = compress(&mut c, &text);
                        assert_eq!(&d.decompress(&payload, text.len()).unwrap()[..], &text[..]);
                        stream.extend_from_slice(&payload);
                        stream.extend_from_slice(&TAIL);
                    }
                    let (out, max_distance) = reference_inflate(&stream);
                    assert_eq!(out.len(), text.len() * 2);
                    // zlib never reaches back further than the window minus its lookahead,
                    // which is why 9 bits serves an agreed 8 (256 bytes).
                    let limit = (1usize << window_bits.max(9)) - 262;
                    assert!(
                        max_distance <= limit,
                        "{window_bits}/{mem_level}/{level}: {max_distance}"
                    );
                    if window_bits <= 9 {
                        assert!(max_distance <= 256);
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_range_settings_are_clamped() {
        let c = Compressor::new(CompressorConfig {
            level: 200,
            window_bits: 3,
            mem_level: 0,
            no_context_takeover: false,
        });
        assert_eq!(
            c.config(),
            CompressorConfig {
                level: 9,
                window_bits: 8,
                mem_level: 1,
                no_context_takeover: false
            }
        );
        let c = Compressor::new(CompressorConfig {
            window_bits: 99,
            mem_level: 99,
            ..CompressorConfig::default()
        });
        assert_eq!((c.config().window_bits, c.config().mem_level), (15, 9));
        let d = Decompressor::new(0, false);
        assert_eq!(d.window_bits, 8);
        let mut o = opts();
        o.server_max_window_bits = 0;
        o.client_max_window_bits = 99;
        let n = negotiate(&["permessage-deflate; client_max_window_bits"], &o).unwrap();
        assert_eq!(n.response(), "permessage-deflate; server_max_window_bits=8");
    }

    #[test]
    fn stored_fallback_is_a_valid_payload() {
        for len in [0usize, 1, 5, 65_535, 65_536, 200_000] {
            let input: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut payload = vec![0xaa];
            write_stored(&input, &mut payload);
            let mut d = Decompressor::new(15, false);
            assert_eq!(&d.decompress(&payload[1..], len).unwrap()[..], &input[..]);
            // And it may follow compressed messages in the same stream.
            let mut c = compressor(15, false);
            let first = compress(&mut c, b"some earlier message");
            let mut d = Decompressor::new(15, false);
            d.decompress(&first, 100).unwrap();
            assert_eq!(&d.decompress(&payload[1..], len).unwrap()[..], &input[..]);
        }
    }

    #[test]
    fn size_limit_is_exact() {
        let msg = vec![b'a'; 1000];
        let payload = compress(&mut compressor(15, true), &msg);
        let mut d = Decompressor::new(15, true);
        assert_eq!(d.decompress(&payload, 1000).unwrap().len(), 1000);
        assert_eq!(
            d.decompress(&payload, 999),
            Err(ProtocolError::MessageTooLarge {
                size: 1000,
                max: 999
            })
        );
        assert!(matches!(
            d.decompress(&payload, 0),
            Err(ProtocolError::MessageTooLarge { size: 1, max: 0 })
        ));
        assert_eq!(d.decompress(&payload, usize::MAX).unwrap().len(), 1000);
    }

    #[test]
    fn deflate_bomb_stays_within_the_limit() {
        let zeros = vec![0u8; 32 << 20];
        let mut c = Compressor::new(CompressorConfig {
            level: 9,
            ..CompressorConfig::default()
        });
        let bomb = compress(&mut c, &zeros);
        assert!(bomb.len() < 200 << 10, "{}", bomb.len());
        let max = 1 << 20;
        let mut d = Decompressor::new(15, false);
        let mut out = Vec::new();
        let err = d.decompress_into(&bomb, max, &mut out).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::MessageTooLarge {
                size: max as u64 + 1,
                max
            }
        );
        // The output buffer never grew past the limit (plus the one byte that proves it).
        assert!(out.capacity() <= max + 1, "{}", out.capacity());
        // The decompressor was reset and still works.
        let hello = compress(&mut compressor(15, false), b"Hello");
        assert_eq!(&d.decompress(&hello, 5).unwrap()[..], b"Hello");
    }

    #[test]
    fn corrupt_input_is_a_compression_error() {
        let mut d = Decompressor::new(15, false);
        // BTYPE 11 is reserved.
        assert_eq!(
            d.decompress(&[0xff, 0xff, 0xff], 100),
            Err(ProtocolError::Compression)
        );
        // A stored block whose NLEN does not complement LEN.
        assert_eq!(
            d.decompress(&[0x00, 0x05, 0x00, 0x00, 0x00, b'a'], 100),
            Err(ProtocolError::Compression)
        );
        // After an error the decompressor is usable again.
        let hello = compress(&mut compressor(15, false), b"Hello");
        assert_eq!(&d.decompress(&hello, 5).unwrap()[..], b"Hello");
    }

    #[test]
    fn a_reference_to_data_before_the_message_fails_without_context() {
        // The second RFC "Hello" refers to the first; with no context it must not decode.
        let mut d = Decompressor::new(15, true);
        d.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5)
            .unwrap();
        assert_eq!(
            d.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], 5),
            Err(ProtocolError::Compression)
        );
    }

    #[test]
    fn arbitrary_and_truncated_payloads_never_panic() {
        let mut c = compressor(15, false);
        let valid = compress(&mut c, &sample_messages()[4]);
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3_000 {
            let mut input = if round % 2 == 0 {
                let len = (next() % 64) as usize;
                (0..len).map(|_| next() as u8).collect::<Vec<_>>()
            } else {
                let mut v = valid[..(next() as usize % valid.len())].to_vec();
                if let Some(b) = v.get_mut(next() as usize % valid.len()) {
                    *b ^= 1 << (next() % 8);
                }
                v
            };
            input.truncate(4096);
            let mut d = Decompressor::new(15, round % 3 == 0);
            let _ = d.decompress(&input, 64 << 10);
            let _ = d.decompress(&input, 64 << 10);
        }
    }

    #[test]
    fn negotiated_codecs_talk_to_each_other() {
        let mut o = opts();
        o.level = 6;
        o.mem_level = 2;
        let n = negotiate(
            &["permessage-deflate; client_max_window_bits; server_max_window_bits=10"],
            &o,
        )
        .unwrap();
        let mut ours = n.compressor(&o);
        assert_eq!(
            ours.config(),
            CompressorConfig {
                level: 6,
                window_bits: 10,
                mem_level: 2,
                no_context_takeover: false
            }
        );
        // The client's inflater for our messages and our inflater for the client's messages.
        let mut theirs = Decompressor::new(n.server_max_window_bits, n.server_no_context_takeover);
        let mut client = Compressor::new(CompressorConfig {
            window_bits: n.client_max_window_bits,
            ..CompressorConfig::default()
        });
        let mut our_inflater = n.decompressor();
        for msg in sample_messages() {
            let down = compress(&mut ours, &msg);
            assert_eq!(&theirs.decompress(&down, 1 << 20).unwrap()[..], &msg[..]);
            let up = compress(&mut client, &msg);
            assert_eq!(
                &our_inflater.decompress(&up, 1 << 20).unwrap()[..],
                &msg[..]
            );
        }
        assert!(format!("{ours:?} {our_inflater:?}").contains("Compressor"));
    }

    // ---- an independent DEFLATE decoder (after zlib's puff.c) for checking distances ---------

    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u32,
        cnt: u32,
    }

    impl Bits<'_> {
        fn bits(&mut self, need: u32) -> u32 {
            while self.cnt < need {
                let byte = self.data[self.pos];
                self.pos += 1;
                self.buf |= u32::from(byte) << self.cnt;
                self.cnt += 8;
            }
            let v = self.buf & ((1u32 << need) - 1);
            self.buf >>= need;
            self.cnt -= need;
            v
        }

        fn decode(&mut self, h: &Huffman) -> usize {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for len in 1..16 {
                code |= self.bits(1) as i32;
                let count = i32::from(h.count[len]);
                if code - count < first {
                    return usize::from(h.symbol[(index + code - first) as usize]);
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            panic!("bad code");
        }
    }

    struct Huffman {
        count: [u16; 16],
        symbol: Vec<u16>,
    }

    fn huffman(lengths: &[u8]) -> Huffman {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0; lengths.len()];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = s as u16;
                offs[usize::from(l)] += 1;
            }
        }
        Huffman { count, symbol }
    }

    /// Decode a raw DEFLATE stream that ends on a byte boundary; returns the output and the
    /// longest match distance used.
    fn reference_inflate(data: &[u8]) -> (Vec<u8>, usize) {
        #[rustfmt::skip]
        const LBASE: [u16; 29] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43,
            51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
        #[rustfmt::skip]
        const LEXT: [u8; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4,
            4, 4, 5, 5, 5, 5, 0];
        #[rustfmt::skip]
        const DBASE: [u16; 30] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257,
            385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
        #[rustfmt::skip]
        const DEXT: [u8; 30] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9,
            10, 10, 11, 11, 12, 12, 13, 13];
        #[rustfmt::skip]
        const ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1,
            15];
        let mut s = Bits {
            data,
            pos: 0,
            buf: 0,
            cnt: 0,
        };
        let (mut out, mut max_distance) = (Vec::new(), 0);
        while s.pos < data.len() {
            let last = s.bits(1);
            match s.bits(2) {
                0 => {
                    s.buf = 0;
                    s.cnt = 0;
                    let len = usize::from(u16::from_le_bytes([data[s.pos], data[s.pos + 1]]));
                    s.pos += 4;
                    out.extend_from_slice(&data[s.pos..s.pos + len]);
                    s.pos += len;
                }
                kind @ (1 | 2) => {
                    let (lit, dist) = if kind == 1 {
                        let mut l = [8u8; 288];
                        l[144..256].fill(9);
                        l[256..280].fill(7);
                        (huffman(&l), huffman(&[5; 30]))
                    } else {
                        let nlen = s.bits(5) as usize + 257;
                        let ndist = s.bits(5) as usize + 1;
                        let ncode = s.bits(4) as usize + 4;
                        let mut cl = [0u8; 19];
                        for &i in &ORDER[..ncode] {
                            cl[i] = s.bits(3) as u8;
                        }
                        let code = huffman(&cl);
                        let mut lengths = Vec::new();
                        while lengths.len() < nlen + ndist {
                            match s.decode(&code) {
                                sym @ 0..=15 => lengths.push(sym as u8),
                                16 => {
                                    let prev = *lengths.last().unwrap();
                                    let n = 3 + s.bits(2);
                                    lengths.extend(std::iter::repeat(prev).take(n as usize));
                                }
                                17 => lengths
                                    .extend(std::iter::repeat(0).take(3 + s.bits(3) as usize)),
                                _ => lengths
                                    .extend(std::iter::repeat(0).take(11 + s.bits(7) as usize)),
                            }
                        }
                        (huffman(&lengths[..nlen]), huffman(&lengths[nlen..]))
                    };
                    loop {
                        let sym = s.decode(&lit);
                        if sym < 256 {
                            out.push(sym as u8);
                        } else if sym == 256 {
                            break;
                        } else {
                            let i = sym - 257;
                            let len = usize::from(LBASE[i]) + s.bits(u32::from(LEXT[i])) as usize;
                            let d = s.decode(&dist);
                            let distance =
                                usize::from(DBASE[d]) + s.bits(u32::from(DEXT[d])) as usize;
                            max_distance = max_distance.max(distance);
                            let from = out.len() - distance;
                            for k in 0..len {
                                out.push(out[from + k]);
                            }
                        }
                    }
                }
                _ => panic!("reserved block type"),
            }
            if last == 1 {
                break;
            }
        }
        (out, max_distance)
    }
}
