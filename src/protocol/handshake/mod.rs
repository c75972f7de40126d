//! The opening handshake (RFC 6455 §4): `server.rs` parses and checks upgrade requests
//! (httparse) and writes the answers; `client.rs` writes a client's request and checks the
//! server's 101 (used by the loadtest). This file holds what both sides share: the
//! `Sec-WebSocket-Accept` computation, HTTP token rules, the header-injection guard, reason
//! phrases.
//!
//! Everything here works on byte slices: the runtime feeds the bytes read so far to
//! [`parse_request`] until it returns a head, checks it with [`validate_upgrade`], and writes the
//! answer with [`write_switching_protocols`], [`write_response`] or [`write_rejection`]. No input
//! makes any function here panic.

mod client;
mod server;

pub use client::{generate_key, parse_response, write_client_request};
pub use server::{
    parse_request, validate_upgrade, wants_websocket, write_rejection, write_response,
    write_switching_protocols, Header, RequestHead, UpgradeRequest,
};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::protocol::error::HandshakeError;

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Trim ASCII spaces and tabs (HTTP optional whitespace) from both ends.
fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// `base64(SHA-1(key + GUID))`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WS_GUID);
    STANDARD.encode(sha.finalize())
}

/// Whether `name` is an HTTP token (RFC 7230 §3.2.6).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` is safe to send as a header value: no CR, LF or other control bytes except
/// horizontal tab (guards against header injection / response splitting).
fn is_safe_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Append `name: value\r\n` if both are safe; otherwise skip it and return false.
fn push_header(out: &mut Vec<u8>, name: &str, value: &str) -> bool {
    if !is_token(name) || !is_safe_value(value) {
        return false;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
    true
}

fn map_httparse_error(e: httparse::Error) -> HandshakeError {
    HandshakeError::Malformed(match e {
        httparse::Error::TooManyHeaders => return HandshakeError::HeadersTooLarge,
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid HTTP version",
    })
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
