//! The client's side of the handshake (the loadtest uses it): a fresh key, the upgrade request,
//! and the checks of the server's answer (RFC 6455 §4.1).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{accept_key, has_token, map_httparse_error, push_header, trim_ows};
use crate::protocol::error::HandshakeError;

/// Headers parsed from a server's response (client side).
const MAX_RESPONSE_HEADERS: usize = 64;

/// A fresh random `Sec-WebSocket-Key` (client side).
///
/// A nonce, not a secret: 16 bytes from std's randomly seeded SipHash keys over a process-wide
/// counter and the time, base64-encoded.
pub fn generate_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.write_u128(nanos);
    let a = hasher.finish();
    hasher.write_u64(!n);
    let b = hasher.finish();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    STANDARD.encode(bytes)
}

/// Append `s`, percent-encoding bytes that cannot appear in a request line (controls, space).
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b <= b' ' || b == 0x7f {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
}

/// Append a client upgrade request (client side).
///
/// A `path` not starting with `/` gets one (`""` → `/`); control bytes and spaces in `path` are percent-encoded.
/// `host` and `extra_headers` pass the same injection guard as the server's responses (an
/// unsafe `host` is dropped, which the server then refuses).
pub fn write_client_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &str,
    key: &str,
    extra_headers: &[(String, String)],
) {
    out.extend_from_slice(b"GET ");
    if !path.starts_with('/') {
        out.push(b'/');
    }
    push_escaped(out, path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(out, "Host", host);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    push_header(out, "Sec-WebSocket-Key", key);
    out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Parse a server's response head (client side). `Ok(None)`: incomplete. On success, the status
/// is 101 and `Sec-WebSocket-Accept` matches `key`; returns the head length and the
/// `Sec-WebSocket-Extensions` value, if any.
///
/// Several `Sec-WebSocket-Extensions` headers are joined with `, `. `Upgrade`/`Connection`
/// not naming websocket/upgrade → `NotWebSocket`; more than 64 headers → `HeadersTooLarge`.
///
/// # Errors
///
/// [`HandshakeError::BadResponse`] with the status when it is not 101,
/// [`HandshakeError::NotWebSocket`], [`HandshakeError::BadAccept`] when the accept header is
/// missing, repeated or wrong, [`HandshakeError::Malformed`] for bytes that are not HTTP.
pub fn parse_response(
    buf: &[u8],
    key: &str,
) -> Result<Option<(usize, Option<String>)>, HandshakeError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse_error(e)),
    };
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        return Err(HandshakeError::BadResponse(status));
    }
    let values = |name: &'static str| {
        resp.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if !values("upgrade").any(|v| has_token(v, "websocket"))
        || !values("connection").any(|v| has_token(v, "upgrade"))
    {
        return Err(HandshakeError::NotWebSocket);
    }
    let expected = accept_key(key.as_bytes());
    let mut accepts = values("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(a), None) if trim_ows(a) == expected.as_bytes() => {}
        _ => return Err(HandshakeError::BadAccept),
    }
    let mut extensions: Option<String> = None;
    for value in values("sec-websocket-extensions") {
        let value = std::str::from_utf8(trim_ows(value))
            .map_err(|_| HandshakeError::Malformed("Sec-WebSocket-Extensions is not UTF-8"))?;
        if value.is_empty() {
            continue;
        }
        match &mut extensions {
            Some(all) => {
                all.push_str(", ");
                all.push_str(value);
            }
            None => extensions = Some(value.to_owned()),
        }
    }
    Ok(Some((len, extensions)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::server::{
        is_valid_key, parse_request, validate_upgrade, write_response, write_switching_protocols,
        UpgradeRequest,
    };

    fn validate(buf: &[u8]) -> Result<UpgradeRequest<'_>, HandshakeError> {
        match parse_request(buf, 64)? {
            Some((head, _)) => validate_upgrade(&head),
            None => panic!("incomplete request"),
        }
    }

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let keys: Vec<String> = (0..200).map(|_| generate_key()).collect();
        for k in &keys {
            assert!(is_valid_key(k.as_bytes()), "{k}");
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len());
    }

    #[test]
    fn client_server_round_trip() {
        let key = generate_key();
        let mut req = Vec::new();
        let extra = vec![
            ("Origin".to_owned(), "http://example.com".to_owned()),
            (
                "Sec-WebSocket-Extensions".to_owned(),
                "permessage-deflate".to_owned(),
            ),
        ];
        write_client_request(&mut req, "localhost:9001", "/chat?room=1", &key, &extra);
        req.extend_from_slice(&[0x81, 0x80, 0, 0, 0, 0]); // an early frame

        // Server side.
        let (head, n) = parse_request(&req, 64).unwrap().unwrap();
        assert_eq!(&req[n..], &[0x81, 0x80, 0, 0, 0, 0]);
        assert_eq!(head.path(), "/chat");
        assert_eq!(head.query(), Some("room=1"));
        assert_eq!(head.header("host"), Some(&b"localhost:9001"[..]));
        assert_eq!(head.header("origin"), Some(&b"http://example.com"[..]));
        let up = validate_upgrade(&head).unwrap();
        assert_eq!(up.key, key.as_bytes());
        assert_eq!(up.extensions, vec!["permessage-deflate"]);
        let mut resp = Vec::new();
        write_switching_protocols(
            &mut resp,
            &accept_key(up.key),
            None,
            Some("permessage-deflate"),
            &[],
        );
        let head_len = resp.len();
        resp.extend_from_slice(&[0x81, 0x02, b'h', b'i']); // an early server frame

        // Client side: incomplete until the whole head is there.
        for i in 0..head_len {
            assert_eq!(parse_response(&resp[..i], &key), Ok(None), "prefix {i}");
        }
        let (len, ext) = parse_response(&resp, &key).unwrap().unwrap();
        assert_eq!(len, head_len);
        assert_eq!(ext.as_deref(), Some("permessage-deflate"));

        // Another key does not match.
        assert_eq!(
            parse_response(&resp, &generate_key()),
            Err(HandshakeError::BadAccept)
        );

        // Empty path becomes "/".
        let mut req = Vec::new();
        write_client_request(&mut req, "h", "", &key, &[]);
        assert!(req.starts_with(b"GET / HTTP/1.1\r\n"));
        assert!(validate(&req).is_ok());
    }

    #[test]
    fn client_response_errors() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            parse_response(ok.as_bytes(), key),
            Ok(Some((ok.len(), None)))
        );

        let mut out = Vec::new();
        write_response(&mut out, 403, &[], b"go away", true);
        assert_eq!(
            parse_response(&out, key),
            Err(HandshakeError::BadResponse(403))
        );

        let no_upgrade = ok.replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            parse_response(no_upgrade.as_bytes(), key),
            Err(HandshakeError::NotWebSocket)
        );
        let no_conn = ok.replace("Connection: Upgrade", "Connection: close");
        assert_eq!(
            parse_response(no_conn.as_bytes(), key),
            Err(HandshakeError::NotWebSocket)
        );
        let bad = ok.replace("s3pP", "AAAA");
        assert_eq!(
            parse_response(bad.as_bytes(), key),
            Err(HandshakeError::BadAccept)
        );
        let missing = ok.replace("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "");
        assert_eq!(
            parse_response(missing.as_bytes(), key),
            Err(HandshakeError::BadAccept)
        );

        let two_ext = ok.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: a\r\nsec-websocket-extensions: b; x=1\r\n\r\n",
        );
        let (_, ext) = parse_response(two_ext.as_bytes(), key).unwrap().unwrap();
        assert_eq!(ext.as_deref(), Some("a, b; x=1"));

        assert!(matches!(
            parse_response(b"\x16\x03\x01\x00\x00", key),
            Err(HandshakeError::Malformed(_))
        ));
    }
}
