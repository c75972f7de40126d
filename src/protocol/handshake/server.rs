//! The server's side of the handshake: incremental request parsing, the RFC 6455 §4.2.1
//! checks, and the 101, plain HTTP and rejection responses.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{has_token, map_httparse_error, push_header, reason_phrase, trim_ows};
use crate::protocol::error::HandshakeError;

/// Header slots kept on the stack while parsing; larger `max_headers` fall back to the heap.
const STACK_HEADERS: usize = 64;

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
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Every value of the header with this name (case-insensitive), in order.
    pub fn header_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Path part of the target (before `?`).
    ///
    /// An absolute-form target (`http://host/chat?x`, allowed by RFC 6455 §4.2.1) yields the
    /// path after the authority (`/chat`), or `/` when there is none.
    pub fn path(&self) -> &'a str {
        let origin = origin_form(self.target);
        let path = origin.split_once('?').map_or(origin, |(p, _)| p);
        if path.is_empty() && origin.len() != self.target.len() {
            "/"
        } else {
            path
        }
    }

    /// Query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// The origin-form part (`/path?query`) of a request target: absolute-form targets lose their
/// scheme and authority, anything else is returned as is.
fn origin_form(target: &str) -> &str {
    let Some((scheme, rest)) = target.split_once("://") else {
        return target;
    };
    let is_http = ["http", "https", "ws", "wss"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s));
    if !is_http {
        return target;
    }
    match rest.find(['/', '?']) {
        Some(i) => &rest[i..],
        None => "",
    }
}

/// Parse a request head from the front of `buf`. `Ok(None)`: incomplete. `Ok(Some((head, n)))`:
/// `n` bytes form the head; bytes after it (early frames) are the caller's to keep.
/// More than `max_headers` headers → `HeadersTooLarge`. (The byte limit is the caller's.)
///
/// # Errors
///
/// [`HandshakeError::HeadersTooLarge`] for too many headers (reported as soon as seen, even
/// before the head is complete); [`HandshakeError::Malformed`] for bytes that are not an
/// HTTP/1.x request head (TLS hellos, HTTP/2 prefaces, invalid header names, bare LF...).
/// Header values may hold any byte but controls (obs-text is kept as is).
pub fn parse_request(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<(RequestHead<'_>, usize)>, HandshakeError> {
    if max_headers <= STACK_HEADERS {
        let mut slots = [httparse::EMPTY_HEADER; STACK_HEADERS];
        parse_request_into(buf, &mut slots[..max_headers])
    } else {
        let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
        parse_request_into(buf, &mut slots)
    }
}

fn parse_request_into<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<Option<(RequestHead<'b>, usize)>, HandshakeError> {
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse_error(e)),
    };
    // On `Complete`, httparse has filled in every part of the request line.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::Malformed("incomplete request line"));
    };
    let headers = req
        .headers
        .iter()
        .map(|h| Header {
            name: h.name,
            value: h.value,
        })
        .collect();
    Ok(Some((
        RequestHead {
            method,
            target,
            minor_version: version,
            headers,
        },
        len,
    )))
}

/// Whether any occurrence of header `name` lists `token`.
fn any_has_token(head: &RequestHead<'_>, name: &str, token: &str) -> bool {
    head.header_all(name).any(|v| has_token(v, token))
}

/// Whether the request asks for an upgrade to websocket at all (an `Upgrade` header naming
/// websocket). Requests that do not are plain HTTP requests, answered by the application.
pub fn wants_websocket(head: &RequestHead<'_>) -> bool {
    any_has_token(head, "upgrade", "websocket")
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
///
/// Checks run in this order, the first failure being returned: method (405), HTTP version (400),
/// exactly one `Host` header (400, RFC 7230 §5.4), `Upgrade`/`Connection` (400),
/// `Sec-WebSocket-Version` (426; a repeated header also fails, RFC 6455 §11.3.5),
/// `Sec-WebSocket-Key` (400; a repeated header also fails, §11.3.1), then the subprotocol and
/// extension headers, which must be UTF-8 (400).
///
/// # Errors
///
/// The first failing check above, as the [`HandshakeError`] variant named there; answer it
/// with [`write_rejection`].
pub fn validate_upgrade<'a>(head: &RequestHead<'a>) -> Result<UpgradeRequest<'a>, HandshakeError> {
    if head.method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if head.minor_version < 1 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    match head.header_all("host").count() {
        0 => return Err(HandshakeError::Malformed("missing Host")),
        1 => {}
        _ => return Err(HandshakeError::Malformed("duplicate Host")),
    }
    if !any_has_token(head, "upgrade", "websocket") || !any_has_token(head, "connection", "upgrade")
    {
        return Err(HandshakeError::NotWebSocket);
    }

    let mut versions = head.header_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim_ows(v) == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }

    let mut keys = head.header_all("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim_ows(k),
        _ => return Err(HandshakeError::InvalidKey),
    };
    if !is_valid_key(key) {
        return Err(HandshakeError::InvalidKey);
    }

    let mut protocols = Vec::new();
    for value in head.header_all("sec-websocket-protocol") {
        let value = std::str::from_utf8(value)
            .map_err(|_| HandshakeError::Malformed("Sec-WebSocket-Protocol is not UTF-8"))?;
        protocols.extend(value.split(',').map(trim_str).filter(|t| !t.is_empty()));
    }

    let mut extensions = Vec::new();
    for value in head.header_all("sec-websocket-extensions") {
        let value = std::str::from_utf8(value)
            .map_err(|_| HandshakeError::Malformed("Sec-WebSocket-Extensions is not UTF-8"))?;
        let value = trim_str(value);
        if !value.is_empty() {
            extensions.push(value);
        }
    }

    Ok(UpgradeRequest {
        key,
        protocols,
        extensions,
    })
}

fn trim_str(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// A key is the standard base64 (with padding) of exactly 16 bytes: 24 characters.
pub(super) fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 24];
    key.len() == 24 && matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
}

/// Append the decimal digits of `n`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Headers the 101 response owns; the same names among `extra_headers` are skipped.
const OWNED_101: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

fn is_one_of(name: &str, list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Append a `101 Switching Protocols` response.
///
/// `protocol`, `extensions` and `extra_headers` whose name is not an HTTP token or whose value
/// holds CR, LF or another control byte are skipped (header injection). `extra_headers` may not
/// override the headers this response owns (`Upgrade`, `Connection`, `Sec-WebSocket-*`,
/// `Content-Length`, `Transfer-Encoding`): such entries are skipped too.
pub fn write_switching_protocols(
    out: &mut Vec<u8>,
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    push_header(out, "Sec-WebSocket-Accept", accept);
    if let Some(p) = protocol.filter(|p| !p.is_empty()) {
        push_header(out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extensions.filter(|e| !e.is_empty()) {
        push_header(out, "Sec-WebSocket-Extensions", e);
    }
    for (name, value) in extra_headers {
        if !is_one_of(name, OWNED_101) {
            push_header(out, name, value);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Append a complete HTTP/1.1 response with `Content-Length` (and `Connection: close` if `close`).
///
/// Headers failing the injection guard of [`write_switching_protocols`] are skipped, as are
/// `Content-Length` and `Transfer-Encoding` (computed here) and, when `close`, `Connection`.
/// Without a `Content-Type` header, a non-empty body is sent as `text/plain; charset=utf-8`.
/// A 1xx, 204 or 304 status carries no body (RFC 9110 §6.4.1), so `body` is ignored and no
/// `Content-Length` is sent for 1xx/204. A status outside 100..=999 is sent as 500.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    close: bool,
) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");

    let mut has_content_type = false;
    for (name, value) in headers {
        if is_one_of(name, &["content-length", "transfer-encoding"])
            || (close && name.eq_ignore_ascii_case("connection"))
        {
            continue;
        }
        if push_header(out, name, value) && name.eq_ignore_ascii_case("content-type") {
            has_content_type = true;
        }
    }

    let no_body = status < 200 || status == 204 || status == 304;
    let body = if no_body { &[][..] } else { body };
    if !body.is_empty() && !has_content_type {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    if !(status < 200 || status == 204) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Append the response refusing an upgrade with `err`: its [`HandshakeError::status`], the
/// error's text as the body, `Connection: close`, and for 426 the `Sec-WebSocket-Version: 13`
/// header RFC 6455 §4.4 asks for.
pub fn write_rejection(out: &mut Vec<u8>, err: &HandshakeError) {
    let status = err.status();
    let mut headers = Vec::new();
    if status == 426 {
        headers.push(("Sec-WebSocket-Version".to_owned(), "13".to_owned()));
    }
    write_response(out, status, &headers, err.to_string().as_bytes(), true);
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
