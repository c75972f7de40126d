//! Unit tests of `protocol/handshake/server.rs`.

use super::*;
use crate::protocol::handshake::{accept_key, parse_response, write_client_request};
use crate::protocol::test_rng::Rng;

/// The sample request of RFC 6455 §1.2.
const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\
    \r\n";

fn parse(buf: &[u8]) -> RequestHead<'_> {
    parse_request(buf, 64)
        .expect("parse error")
        .expect("incomplete")
        .0
}

/// A request with the given header lines (each without CRLF), request line `GET /`.
fn request(lines: &[&str]) -> Vec<u8> {
    request_with("GET / HTTP/1.1", lines)
}

fn request_with(request_line: &str, lines: &[&str]) -> Vec<u8> {
    let mut out = format!("{request_line}\r\n");
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

const BASE: &[&str] = &[
    "Host: h",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
];

/// BASE with the header named like `replace`'s name replaced (or removed if `replace` is
/// just `Name:` with nothing after), plus any extra lines.
fn base_with(replace: &[&str]) -> Vec<u8> {
    let mut lines: Vec<&str> = BASE.to_vec();
    for r in replace {
        let name = r.split(':').next().unwrap();
        lines.retain(|l| !l.split(':').next().unwrap().eq_ignore_ascii_case(name));
        if !r.trim_end().ends_with(':') {
            lines.push(r);
        }
    }
    request(&lines)
}

fn validate(buf: &[u8]) -> Result<UpgradeRequest<'_>, HandshakeError> {
    match parse_request(buf, 64)? {
        Some((head, _)) => {
            // `validate_upgrade` borrows from the buffer, not from the head.
            validate_upgrade(&head)
        }
        None => panic!("incomplete request"),
    }
}

#[test]
fn rfc_sample_request() {
    let (head, n) = parse_request(RFC_REQUEST, 64).unwrap().unwrap();
    assert_eq!(n, RFC_REQUEST.len());
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/chat");
    assert_eq!(head.path(), "/chat");
    assert_eq!(head.query(), None);
    assert_eq!(head.minor_version, 1);
    assert_eq!(head.headers.len(), 7);
    assert_eq!(head.header("origin"), Some(&b"http://example.com"[..]));
    assert!(wants_websocket(&head));
    let up = validate_upgrade(&head).unwrap();
    assert_eq!(up.key, b"dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(up.protocols, vec!["chat", "superchat"]);
    assert!(up.extensions.is_empty());
    assert_eq!(accept_key(up.key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn accept_key_rfc_example() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn split_at_every_byte_boundary() {
    for i in 0..RFC_REQUEST.len() {
        assert!(
            parse_request(&RFC_REQUEST[..i], 64).unwrap().is_none(),
            "prefix of {i} bytes parsed as complete"
        );
    }
    assert!(parse_request(RFC_REQUEST, 64).unwrap().is_some());
}

#[test]
fn early_frame_bytes_are_not_consumed() {
    let mut buf = RFC_REQUEST.to_vec();
    let frame = [
        0x81,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    buf.extend_from_slice(&frame);
    let (head, n) = parse_request(&buf, 64).unwrap().unwrap();
    assert_eq!(n, RFC_REQUEST.len());
    assert_eq!(&buf[n..], &frame);
    validate_upgrade(&head).unwrap();
    // Even a frame that looks like nothing HTTP at all.
    let mut buf = RFC_REQUEST.to_vec();
    buf.extend_from_slice(b"\r\n\r\n\x00\xff");
    assert_eq!(
        parse_request(&buf, 64).unwrap().unwrap().1,
        RFC_REQUEST.len()
    );
}

#[test]
fn path_and_query() {
    let buf = request_with("GET /chat?room=a&x=1 HTTP/1.1", &[]);
    let head = parse(&buf);
    assert_eq!(head.target, "/chat?room=a&x=1");
    assert_eq!(head.path(), "/chat");
    assert_eq!(head.query(), Some("room=a&x=1"));

    let buf = request_with("GET /? HTTP/1.1", &[]);
    assert_eq!(parse(&buf).path(), "/");
    assert_eq!(parse(&buf).query(), Some(""));

    let buf = request_with("GET http://example.com:80/chat?q=1 HTTP/1.1", &[]);
    assert_eq!(parse(&buf).path(), "/chat");
    assert_eq!(parse(&buf).query(), Some("q=1"));
    let buf = request_with("GET https://example.com HTTP/1.1", &[]);
    assert_eq!(parse(&buf).path(), "/");
    assert_eq!(parse(&buf).query(), None);
    let buf = request_with("GET ws://example.com?q HTTP/1.1", &[]);
    assert_eq!(parse(&buf).path(), "/");
    assert_eq!(parse(&buf).query(), Some("q"));
    let buf = request_with("GET * HTTP/1.1", &[]);
    assert_eq!(parse(&buf).path(), "*");
}

#[test]
fn header_names_in_any_case() {
    let buf = request(&[
        "HOST: h",
        "upgrade: WebSocket",
        "CONNECTION: UPGRADE",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        "SEC-WEBSOCKET-VERSION: 13",
        "X-Mixed-Case: v",
    ]);
    let head = parse(&buf);
    assert_eq!(head.header("x-mixed-case"), Some(&b"v"[..]));
    assert_eq!(head.header("X-MIXED-CASE"), Some(&b"v"[..]));
    assert_eq!(head.header("missing"), None);
    assert!(wants_websocket(&head));
    assert!(validate_upgrade(&head).is_ok());
}

#[test]
fn header_returns_first_match() {
    let buf = request(&["X-A: 1", "x-a: 2"]);
    let head = parse(&buf);
    assert_eq!(head.header("X-A"), Some(&b"1"[..]));
    assert_eq!(
        head.header_all("x-a").collect::<Vec<_>>(),
        vec![&b"1"[..], b"2"]
    );
}

#[test]
fn connection_token_lists() {
    for conn in [
        "Connection: keep-alive, Upgrade",
        "Connection: Upgrade, keep-alive",
        "Connection: keep-alive,upgrade",
        "Connection:   upgrade  ",
        "Connection: foo,\tUPGRADE\t,bar",
    ] {
        assert!(validate(&base_with(&[conn])).is_ok(), "{conn}");
    }
    for conn in [
        "Connection: keep-alive",
        "Connection: upgraded",
        "Connection: up grade",
    ] {
        assert_eq!(
            validate(&base_with(&[conn])),
            Err(HandshakeError::NotWebSocket),
            "{conn}"
        );
    }
    assert_eq!(
        validate(&base_with(&["Connection:"])),
        Err(HandshakeError::NotWebSocket)
    );
}

#[test]
fn upgrade_token_lists() {
    for up in [
        "Upgrade: websocket",
        "Upgrade: h2c, WebSocket",
        "Upgrade: WEBSOCKET ",
    ] {
        assert!(validate(&base_with(&[up])).is_ok(), "{up}");
    }
    for up in ["Upgrade: h2c", "Upgrade: websockets", "Upgrade:"] {
        assert_eq!(
            validate(&base_with(&[up])),
            Err(HandshakeError::NotWebSocket),
            "{up}"
        );
    }
}

#[test]
fn repeated_headers() {
    // Connection and Upgrade may repeat; every occurrence counts.
    let mut lines = BASE.to_vec();
    lines.retain(|l| !l.starts_with("Connection") && !l.starts_with("Upgrade"));
    lines.extend([
        "Connection: keep-alive",
        "Upgrade: h2c",
        "Connection: Upgrade",
    ]);
    lines.push("Upgrade: websocket");
    let buf = request(&lines);
    assert!(wants_websocket(&parse(&buf)));
    assert!(validate(&buf).is_ok());

    // Protocols and extensions from every header, in order.
    let mut lines = BASE.to_vec();
    lines.extend([
        "Sec-WebSocket-Protocol: a, b",
        "X-Other: 1",
        "sec-websocket-protocol: ,c,, d ,",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits ",
        "Sec-WebSocket-Extensions:  x-foo",
    ]);
    let buf = request(&lines);
    let up = validate(&buf).unwrap();
    assert_eq!(up.protocols, vec!["a", "b", "c", "d"]);
    assert_eq!(
        up.extensions,
        vec!["permessage-deflate; client_max_window_bits", "x-foo"]
    );

    // Key, version and Host must not repeat.
    let mut lines = BASE.to_vec();
    lines.push("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(validate(&request(&lines)), Err(HandshakeError::InvalidKey));
    let mut lines = BASE.to_vec();
    lines.push("Sec-WebSocket-Version: 13");
    assert_eq!(
        validate(&request(&lines)),
        Err(HandshakeError::UnsupportedVersion)
    );
    let mut lines = BASE.to_vec();
    lines.push("Host: other");
    assert_eq!(
        validate(&request(&lines)),
        Err(HandshakeError::Malformed("duplicate Host"))
    );
}

#[test]
fn plain_http_is_not_websocket() {
    let buf = request(&["Host: h", "Accept: text/html"]);
    assert!(!wants_websocket(&parse(&buf)));
    let buf = request(&["Host: h", "Connection: Upgrade", "Upgrade: h2c"]);
    assert!(!wants_websocket(&parse(&buf)));
}

#[test]
fn version_errors() {
    for v in [
        "Sec-WebSocket-Version: 8",
        "Sec-WebSocket-Version: 13, 8",
        "Sec-WebSocket-Version:",
    ] {
        let err = validate(&base_with(&[v])).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedVersion, "{v}");
        assert_eq!(err.status(), 426);
    }
    assert!(validate(&base_with(&["Sec-WebSocket-Version:  13 "])).is_ok());
}

#[test]
fn key_errors() {
    for k in [
        "Sec-WebSocket-Key:",
        // 15 bytes.
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
        // 17 bytes.
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=",
        // Not base64.
        "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==",
        "Sec-WebSocket-Key: not base64 at all",
        // URL-safe alphabet.
        "Sec-WebSocket-Key: ________________-_____==",
        // Missing padding.
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
        // Non-canonical trailing bits.
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==",
    ] {
        let err = validate(&base_with(&[k])).unwrap_err();
        assert_eq!(err, HandshakeError::InvalidKey, "{k}");
        assert_eq!(err.status(), 400);
    }
    assert_eq!(STANDARD.encode([0u8; 15]).len(), 20);
    let buf = base_with(&["Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== "]);
    let up = validate(&buf).unwrap();
    assert_eq!(up.key, b"dGhlIHNhbXBsZSBub25jZQ==");
}

#[test]
fn method_and_http_version_errors() {
    let post = request_with("POST / HTTP/1.1", BASE);
    let err = validate(&post).unwrap_err();
    assert_eq!(err, HandshakeError::MethodNotAllowed);
    assert_eq!(err.status(), 405);
    let lower = request_with("get / HTTP/1.1", BASE);
    assert_eq!(validate(&lower), Err(HandshakeError::MethodNotAllowed));

    let http10 = request_with("GET / HTTP/1.0", BASE);
    let err = validate(&http10).unwrap_err();
    assert_eq!(err, HandshakeError::UnsupportedHttpVersion);
    assert_eq!(err.status(), 400);

    let http2 = request_with("GET / HTTP/2.0", BASE);
    assert!(matches!(
        parse_request(&http2, 64),
        Err(HandshakeError::Malformed(_))
    ));
}

#[test]
fn missing_host() {
    let err = validate(&base_with(&["Host:"])).unwrap_err();
    assert_eq!(err, HandshakeError::Malformed("missing Host"));
    assert_eq!(err.status(), 400);
}

#[test]
fn too_many_headers() {
    let lines: Vec<String> = (0..10).map(|i| format!("X-H{i}: v")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let buf = request(&lines);
    assert!(parse_request(&buf, 10).unwrap().is_some());
    let err = parse_request(&buf, 9).unwrap_err();
    assert_eq!(err, HandshakeError::HeadersTooLarge);
    assert_eq!(err.status(), 431);
    assert_eq!(
        parse_request(&buf, 0).unwrap_err(),
        HandshakeError::HeadersTooLarge
    );
    // Too many headers is reported even before the head is complete.
    assert_eq!(
        parse_request(&buf[..buf.len() - 2], 9).unwrap_err(),
        HandshakeError::HeadersTooLarge
    );

    // Limits above the stack buffer use the heap.
    let lines: Vec<String> = (0..100).map(|i| format!("X-H{i}: v")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let buf = request(&lines);
    assert_eq!(
        parse_request(&buf, 64).unwrap_err(),
        HandshakeError::HeadersTooLarge
    );
    let head = parse_request(&buf, 100).unwrap().unwrap().0;
    assert_eq!(head.headers.len(), 100);
}

#[test]
fn header_values_keep_obs_text() {
    let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n".to_vec();
    let head = parse(&buf);
    assert_eq!(head.header("x-name"), Some(&b"caf\xc3\xa9 \xff"[..]));
    buf.clear();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n");
    assert!(matches!(
        parse_request(&buf, 64),
        Err(HandshakeError::Malformed(_))
    ));
    buf.clear();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nX\xffY: v\r\n\r\n");
    assert!(matches!(
        parse_request(&buf, 64),
        Err(HandshakeError::Malformed(_))
    ));
}

#[test]
fn non_utf8_protocol_is_rejected() {
    let mut buf = base_with(&[]);
    buf.truncate(buf.len() - 2);
    buf.extend_from_slice(b"Sec-WebSocket-Protocol: a\xff\r\n\r\n");
    assert!(matches!(validate(&buf), Err(HandshakeError::Malformed(_))));
}

#[test]
fn garbage_never_panics() {
    let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    assert!(matches!(
        parse_request(tls, 64),
        Err(HandshakeError::Malformed(_))
    ));
    assert!(matches!(
        parse_request(b"\x16\x03\x01", 64),
        Err(HandshakeError::Malformed(_))
    ));
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert!(matches!(
        parse_request(h2, 64),
        Err(HandshakeError::Malformed(_))
    ));
    assert!(parse_request(b"", 64).unwrap().is_none());
    assert!(parse_request(b"\r\n", 64).unwrap().is_none());

    // Random binary, and random mutations of a valid request.
    let mut rng = Rng(0x2545_f491_4f6c_dd1du64);
    let mut next = || rng.next();
    for round in 0..3000 {
        let mut buf: Vec<u8> = if round % 2 == 0 {
            let len = (next() % 300) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut b = RFC_REQUEST.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % b.len();
                b[i] = next() as u8;
            }
            b
        };
        if round % 3 == 0 {
            buf.truncate((next() as usize) % (buf.len() + 1));
        }
        for max in [0, 4, 64, 100] {
            if let Ok(Some((head, n))) = parse_request(&buf, max) {
                assert!(n <= buf.len());
                let _ = (head.path(), head.query(), wants_websocket(&head));
                let _ = validate_upgrade(&head);
            }
        }
        let _ = parse_response(&buf, "dGhlIHNhbXBsZSBub25jZQ==");
    }
}

fn text(out: &[u8]) -> &str {
    std::str::from_utf8(out).unwrap()
}

#[test]
fn switching_protocols_response() {
    let mut out = Vec::new();
    write_switching_protocols(&mut out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, None, &[]);
    assert_eq!(
        text(&out),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );

    out.clear();
    let extra = vec![("Set-Cookie".to_owned(), "a=b".to_owned())];
    write_switching_protocols(
        &mut out,
        "acc",
        Some("chat"),
        Some("permessage-deflate; server_no_context_takeover"),
        &extra,
    );
    assert_eq!(
        text(&out),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: acc\r\nSec-WebSocket-Protocol: chat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
         Set-Cookie: a=b\r\n\r\n"
    );
}

fn injection_headers() -> Vec<(String, String)> {
    vec![
        ("X-Ok".to_owned(), "fine\tvalue".to_owned()),
        ("X-Evil".to_owned(), "a\r\nSet-Cookie: stolen=1".to_owned()),
        ("X-Evil2".to_owned(), "a\nb".to_owned()),
        ("X-Evil3".to_owned(), "a\rb".to_owned()),
        ("X-Evil\r\nInjected".to_owned(), "v".to_owned()),
        ("X Space".to_owned(), "v".to_owned()),
        ("".to_owned(), "v".to_owned()),
        ("X-Nul".to_owned(), "a\0b".to_owned()),
    ]
}

fn assert_no_injection(out: &[u8]) {
    let s = text(out);
    assert!(s.contains("X-Ok: fine\tvalue\r\n"));
    assert!(!s.contains("Evil"), "{s}");
    assert!(!s.contains("stolen"), "{s}");
    assert!(!s.contains("Space"), "{s}");
    assert!(!s.contains("X-Nul"), "{s}");
    // Every line ends in CRLF; no bare CR or LF.
    let head_end = s.find("\r\n\r\n").unwrap();
    for line in s[..head_end].split("\r\n") {
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
    }
    // The head still parses as HTTP.
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let status = httparse::Response::new(&mut slots).parse(out).unwrap();
    assert!(status.is_complete());
}

#[test]
fn header_injection_is_guarded() {
    let mut out = Vec::new();
    write_switching_protocols(
        &mut out,
        "acc",
        Some("chat\r\nEvil: 1"),
        Some("x\nEvil: 2"),
        &injection_headers(),
    );
    assert_no_injection(&out);
    assert!(!text(&out).contains("Sec-WebSocket-Protocol"));

    out.clear();
    write_response(&mut out, 403, &injection_headers(), b"no", true);
    assert_no_injection(&out);

    out.clear();
    let mut req_out = Vec::new();
    write_client_request(
        &mut req_out,
        "h\r\nEvil: 1",
        "/a b\r\nEvil: 2",
        "k",
        &injection_headers(),
    );
    let s = text(&req_out);
    assert!(!s.contains("\r\nEvil"), "{s}");
    assert!(
        s.starts_with("GET /a%20b%0D%0AEvil:%202 HTTP/1.1\r\n"),
        "{s}"
    );
    assert!(!s.contains("Host:"));
}

#[test]
fn owned_headers_are_not_overridden() {
    let mut out = Vec::new();
    let extra = vec![
        ("Connection".to_owned(), "close".to_owned()),
        ("sec-websocket-accept".to_owned(), "forged".to_owned()),
        ("Content-Length".to_owned(), "5".to_owned()),
    ];
    write_switching_protocols(&mut out, "acc", None, None, &extra);
    let s = text(&out);
    assert!(!s.contains("close") && !s.contains("forged") && !s.contains("Content-Length"));

    out.clear();
    write_response(&mut out, 200, &extra, b"hi", true);
    let s = text(&out);
    assert_eq!(s.matches("Content-Length").count(), 1);
    assert!(s.contains("Content-Length: 2\r\n"));
    assert_eq!(s.to_ascii_lowercase().matches("connection").count(), 1);
}

#[test]
fn plain_responses() {
    let mut out = Vec::new();
    write_response(&mut out, 200, &[], b"hello", false);
    assert_eq!(
        text(&out),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 5\r\n\r\nhello"
    );

    out.clear();
    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    write_response(&mut out, 404, &headers, b"{}", true);
    assert_eq!(
        text(&out),
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    );

    out.clear();
    write_response(&mut out, 400, &[], b"", true);
    assert_eq!(
        text(&out),
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );

    out.clear();
    write_response(&mut out, 204, &[], b"ignored", false);
    assert_eq!(text(&out), "HTTP/1.1 204 No Content\r\n\r\n");

    out.clear();
    write_response(&mut out, 0, &[], b"", false);
    assert!(text(&out).starts_with("HTTP/1.1 500 Internal Server Error\r\n"));

    out.clear();
    write_response(&mut out, 599, &[], b"", false);
    assert!(text(&out).starts_with("HTTP/1.1 599 Unknown\r\n"));

    // Appends; does not clear.
    let mut out = b"prefix".to_vec();
    write_response(&mut out, 200, &[], b"", false);
    assert!(out.starts_with(b"prefixHTTP/1.1 200 OK\r\n"));
}

#[test]
fn rejections() {
    let mut out = Vec::new();
    write_rejection(&mut out, &HandshakeError::UnsupportedVersion);
    let s = text(&out);
    assert!(s.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{s}");
    assert!(s.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    assert!(s.contains("\r\nConnection: close\r\n"));

    out.clear();
    write_rejection(&mut out, &HandshakeError::HeadersTooLarge);
    let s = text(&out);
    assert!(
        s.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{s}"
    );
    assert!(!s.contains("Sec-WebSocket-Version"));
    assert!(s.ends_with("\r\n\r\nrequest headers too large"));
}

#[test]
fn reason_phrases() {
    for (code, phrase) in [
        (101, "Switching Protocols"),
        (200, "OK"),
        (204, "No Content"),
        (301, "Moved Permanently"),
        (302, "Found"),
        (304, "Not Modified"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (408, "Request Timeout"),
        (413, "Content Too Large"),
        (426, "Upgrade Required"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
    ] {
        assert_eq!(reason_phrase(code), phrase);
    }
    assert_eq!(reason_phrase(299), "Unknown");
    assert_eq!(reason_phrase(0), "Unknown");
}
