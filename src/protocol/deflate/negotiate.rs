//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): the server's choice among a client's
//! offers, and (for clients such as the loadtest) reading the server's response.

use std::borrow::Cow;

use super::codec::{Compressor, CompressorConfig, Decompressor, DeflateEngine, InflateState};
use super::params::{DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use super::EXTENSION_NAME;

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
    /// 512 − 262 = 250, which an 8-bit (256-byte) inflater accepts. Default: 15
    /// ([`MAX_WINDOW_BITS`]).
    pub server_max_window_bits: u8,
    /// Largest LZ77 window we let the client's compressor use, `9..=15` (8 is raised to 9: zlib
    /// based clients cannot compress with 8). Only sent when the client offered
    /// `client_max_window_bits` (§7.1.2.2); otherwise the client may use 15. Default: 15
    /// ([`MAX_WINDOW_BITS`]).
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
    /// ratio on large messages. Default: 4 ([`DEFAULT_MEM_LEVEL`], which says why).
    pub mem_level: u8,
    /// Compression level, `0..=9` (0 stores, 1 fastest, 9 smallest). Default: 1
    /// ([`DEFAULT_LEVEL`], with the measurement behind it).
    pub level: u8,
    /// The zlib our compressors run. Default: [`DeflateEngine::ZlibRs`] (the fastest); the
    /// server's dedicated mode picks [`DeflateEngine::Zlib`] for its small contexts.
    pub engine: DeflateEngine,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            mem_level: DEFAULT_MEM_LEVEL,
            level: DEFAULT_LEVEL,
            engine: DeflateEngine::default(),
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
            engine: options.engine,
        }
    }

    /// A compressor for this connection's outgoing messages.
    pub fn compressor(&self, options: &DeflateOptions) -> Compressor {
        Compressor::new(self.compressor_config(options))
    }

    /// A decompressor for this connection's incoming messages (server role).
    pub fn decompressor(&self) -> Decompressor {
        Decompressor::new(self.client_max_window_bits, self.client_no_context_takeover)
    }

    /// The receiving state of a server: the client's compressor is the peer.
    pub fn server_inflate(&self) -> InflateState {
        InflateState::new(self.client_no_context_takeover, self.client_max_window_bits)
    }

    /// The receiving state of a client: the server's compressor is the peer.
    pub fn client_inflate(&self) -> InflateState {
        InflateState::new(self.server_no_context_takeover, self.server_max_window_bits)
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

/// The client's side: read the server's `Sec-WebSocket-Extensions` answer to an offer.
///
/// `None` if it does not accept permessage-deflate, or accepts it twice, or with an unknown,
/// repeated or invalid parameter, or `client_max_window_bits` without a value (RFC 7692 §7.1.2.2
/// requires one in a response): the client must then fail the connection if the server sends
/// compressed frames. Other extensions in the value are skipped. Absent window sizes mean 15; a
/// client that limited its own window in its offer (`client_max_window_bits=N`) keeps to it.
///
/// ```
/// use volley::protocol::deflate::parse_response;
/// let n = parse_response("permessage-deflate; server_no_context_takeover; client_max_window_bits=10").unwrap();
/// assert!(n.server_no_context_takeover);
/// assert_eq!((n.server_max_window_bits, n.client_max_window_bits), (15, 10));
/// ```
pub fn parse_response(value: &str) -> Option<Negotiated> {
    let mut parser = Parser {
        bytes: value.as_bytes(),
        text: value,
        pos: 0,
    };
    let mut found: Option<Offer> = None;
    while let Some(parsed) = parser.next_offer() {
        if let Some(offer) = parsed {
            if found.is_some() || offer.invalid {
                return None;
            }
            found = Some(offer);
        }
    }
    let offer = found?;
    let client_max_window_bits = match offer.client_max_window_bits {
        Some(None) => return None,
        Some(Some(bits)) => bits,
        None => MAX_WINDOW_BITS,
    };
    Some(Negotiated {
        server_no_context_takeover: offer.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover,
        server_max_window_bits: offer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        client_max_window_bits,
        response: value.trim().to_owned(),
    })
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
    let ours_server = options
        .server_max_window_bits
        .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    // 9, not 8: zlib-based clients cannot compress with an 8-bit window.
    let ours_client = options.client_max_window_bits.clamp(9, MAX_WINDOW_BITS);

    // §7.1.2.1: an offered value must be answered with it or less; unoffered, we may still
    // limit our own window.
    let (server_bits, send_server_bits) = match offer.server_max_window_bits {
        Some(offered) => (offered.min(ours_server), true),
        None => (ours_server, ours_server < MAX_WINDOW_BITS),
    };
    // §7.1.2.2: only if offered; a value in the offer already binds the client.
    let (client_bits, send_client_bits) = match offer.client_max_window_bits {
        None => (MAX_WINDOW_BITS, false),
        Some(None) => (ours_client, ours_client < MAX_WINDOW_BITS),
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

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod tests;
