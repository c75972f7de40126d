//! The opening handshake (RFC 6455 §4): incremental HTTP/1.1 request parsing (httparse),
//! upgrade validation, `Sec-WebSocket-Accept`, responses; and the client side used by the
//! loadtest. HELPER-B: implement.

use crate::error::HandshakeError;

/// One request header: name as sent, raw value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header name (compare case-insensitively).
    pub name: &'a str,
    /// Raw value.
    pub value: &'a [u8],
}

/// A parsed HTTP/1.1 request head borrowing from the read buffer.
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    /// Method, e.g. `GET`.
    pub method: &'a str,
    /// Request target as sent, e.g. `/chat?room=a`.
    pub target: &'a str,
    /// HTTP minor version (1 for HTTP/1.1).
    pub minor_version: u8,
    /// Headers in order.
    pub headers: Vec<Header<'a>>,
}

impl<'a> RequestHead<'a> {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let _ = name;
        todo!()
    }
    /// Path part of the target (before `?`).
    pub fn path(&self) -> &'a str {
        todo!()
    }
    /// Query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&'a str> {
        todo!()
    }
}

/// Parse a request head from the front of `buf`. `Ok(None)`: incomplete. `Ok(Some((head, n)))`:
/// `n` bytes form the head; bytes after it (early frames) are the caller's to keep.
/// More than `max_headers` headers → `HeadersTooLarge`. (The byte limit is the caller's.)
pub fn parse_request(buf: &[u8], max_headers: usize) -> Result<Option<(RequestHead<'_>, usize)>, HandshakeError> {
    let _ = (buf, max_headers);
    todo!()
}

/// Whether the request asks for an upgrade to websocket at all (an `Upgrade` header naming
/// websocket). Requests that do not are plain HTTP requests, answered by the application.
pub fn wants_websocket(head: &RequestHead<'_>) -> bool {
    let _ = head;
    todo!()
}

/// What a valid upgrade request offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest<'a> {
    /// The `Sec-WebSocket-Key` value (base64 of 16 bytes), trimmed.
    pub key: &'a [u8],
    /// Offered subprotocols, in order, from every `Sec-WebSocket-Protocol` header.
    pub protocols: Vec<&'a str>,
    /// Raw `Sec-WebSocket-Extensions` values, in order.
    pub extensions: Vec<&'a str>,
}

/// RFC 6455 §4.2.1 checks: GET, HTTP/1.1, `Upgrade: websocket`, `Connection` containing the
/// `upgrade` token (token list, any case), `Sec-WebSocket-Version: 13`, a key decoding to 16 bytes.
pub fn validate_upgrade<'a>(head: &RequestHead<'a>) -> Result<UpgradeRequest<'a>, HandshakeError> {
    let _ = head;
    todo!()
}

/// `base64(SHA-1(key + GUID))`.
pub fn accept_key(key: &[u8]) -> String {
    let _ = key;
    todo!()
}

/// Append a `101 Switching Protocols` response.
pub fn write_switching_protocols(out: &mut Vec<u8>, accept: &str, protocol: Option<&str>, extensions: Option<&str>, extra_headers: &[(String, String)]) {
    let _ = (out, accept, protocol, extensions, extra_headers);
    todo!()
}

/// Append a complete HTTP/1.1 response with `Content-Length` (and `Connection: close` if `close`).
pub fn write_response(out: &mut Vec<u8>, status: u16, headers: &[(String, String)], body: &[u8], close: bool) {
    let _ = (out, status, headers, body, close);
    todo!()
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    let _ = status;
    todo!()
}

/// A fresh random `Sec-WebSocket-Key` (client side).
pub fn generate_key() -> String {
    todo!()
}

/// Append a client upgrade request (client side).
pub fn write_client_request(out: &mut Vec<u8>, host: &str, path: &str, key: &str, extra_headers: &[(String, String)]) {
    let _ = (out, host, path, key, extra_headers);
    todo!()
}

/// Parse a server's response head (client side). `Ok(None)`: incomplete. On success, the status
/// is 101 and `Sec-WebSocket-Accept` matches `key`; returns the head length and the
/// `Sec-WebSocket-Extensions` value, if any.
pub fn parse_response(buf: &[u8], key: &str) -> Result<Option<(usize, Option<String>)>, HandshakeError> {
    let _ = (buf, key);
    todo!()
}
