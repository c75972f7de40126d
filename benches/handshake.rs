//! The opening handshake, server side: parse + validate a typical browser upgrade request
//! (~590 bytes with cookies), compute `Sec-WebSocket-Accept`, and write the 101 response.
//! Throughput is in request bytes, so results read as MB/s of handshake traffic.
//!
//! Run: `cargo bench --bench handshake`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use volley::protocol::handshake::{
    accept_key, parse_request, validate_upgrade, write_switching_protocols,
};

/// What Chrome sends to `wss://example.com/chat?room=lobby`, with a couple of cookies.
const BROWSER_REQUEST: &[u8] = b"GET /chat?room=lobby HTTP/1.1\r\n\
Host: example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; _ga=GA1.1.1234567890.1700000000\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));

    group.bench_function("parse", |b| {
        b.iter(|| {
            parse_request(black_box(BROWSER_REQUEST), 64)
                .unwrap()
                .unwrap()
                .1
        })
    });

    group.bench_function("parse+validate", |b| {
        b.iter(|| {
            let (head, _) = parse_request(black_box(BROWSER_REQUEST), 64)
                .unwrap()
                .unwrap();
            validate_upgrade(&head).unwrap().protocols.len()
        })
    });

    let mut out = Vec::with_capacity(256);
    group.bench_function("parse+validate+respond", |b| {
        b.iter(|| {
            let (head, _) = parse_request(black_box(BROWSER_REQUEST), 64)
                .unwrap()
                .unwrap();
            let up = validate_upgrade(&head).unwrap();
            out.clear();
            write_switching_protocols(&mut out, &accept_key(up.key), None, None, &[]);
            out.len()
        })
    });
    group.finish();

    c.bench_function("accept_key", |b| {
        b.iter(|| accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
}

criterion_group!(benches, handshake);
criterion_main!(benches);
