//! What each fuzz target checks, as plain functions over bytes: the libFuzzer targets in
//! `fuzz/fuzz_targets/` call them, and `tests/fuzz_regressions.rs` runs them over the seed
//! corpora and every input that ever failed (`fuzz/regressions/`), on stable Rust, in the normal
//! test suite. Each panics when the code under test breaks an invariant; none may panic on any
//! input otherwise.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use volley::protocol::close::{encode_payload, parse_payload};
use volley::protocol::deflate::{
    self, Compressor, CompressorConfig, Decompressor, DeflateEngine, DeflateOptions, InflateState,
    Inflater,
};
use volley::protocol::frame::{Frame, OpCode};
use volley::protocol::handshake;
use volley::protocol::proxy;
use volley::protocol::reader::{Event, Reader, ReaderConfig, Role, Streaming};

/// The reader's limits under the fuzzer: small, so the size checks are reached.
const MAX_MESSAGE: usize = 64 << 10;

fn reader_cfg() -> ReaderConfig {
    ReaderConfig {
        role: Role::Server,
        max_frame_size: MAX_MESSAGE,
        max_message_size: MAX_MESSAGE,
    }
}

/// Everything a reader yields from `chunks` fed one after another, up to the first close or
/// error (`Err(())` at the end for an error).
fn read_all<'a>(
    compression: bool,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Event>, Result<(), ()>) {
    let cfg = reader_cfg();
    let mut reader = Reader::new();
    reader.set_compression(compression);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match reader.read(&mut buf, &cfg) {
                Ok(Some(ev)) => {
                    let close = matches!(ev, Event::Close(_));
                    events.push(ev);
                    if close {
                        return (events, Ok(()));
                    }
                }
                Ok(None) => break,
                Err(_) => return (events, Err(())),
            }
        }
    }
    (events, Ok(()))
}

/// The frame reader on arbitrary bytes. The first byte chooses compression on or off and a
/// seed for split points; the rest is the stream. Checks: the events do not depend on how the
/// stream is split into reads; messages respect the size limit; and what the reader accepted,
/// encoded again as client frames, reads back as the same events (it was valid RFC 6455).
/// Compressed messages are inflated with the bomb cap, which must hold.
pub fn reader(data: &[u8]) {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let compression = ctl & 1 == 1;
    let (whole, whole_end) = read_all(compression, [stream]);
    // The same stream split at points derived from the control byte and the data itself.
    let mut chunks = Vec::new();
    let mut rest = stream;
    let mut step = usize::from(ctl >> 1) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
        step = (step * 7 + usize::from(rest.first().copied().unwrap_or(0))) % 97 + 1;
    }
    let (split, split_end) = read_all(compression, chunks.iter().copied());
    assert_eq!(whole, split, "events depend on how the stream was split");
    assert_eq!(whole_end, split_end, "the error depends on the split");

    let mut again = Vec::new();
    let mut inflater = Inflater::new();
    for ev in &whole {
        let key = [0x12, 0x34, 0x56, 0x78];
        match ev {
            Event::Chunk(_) | Event::CompressedChunk { .. } => {
                panic!("a chunk from a reader that does not stream")
            }
            Event::Message(m) => {
                assert!(m.len() <= MAX_MESSAGE, "a message over max_message_size");
                Frame::message(m).masked(key).encode_into(&mut again);
            }
            Event::Compressed { text, payload } => {
                assert!(payload.len() <= MAX_MESSAGE);
                let op = if *text { OpCode::Text } else { OpCode::Binary };
                Frame::new(op, payload)
                    .compressed()
                    .masked(key)
                    .encode_into(&mut again);
                let mut state = InflateState::new(true, 15);
                if let Ok(m) = inflater.message(&mut state, *text, payload, MAX_MESSAGE) {
                    assert!(m.len() <= MAX_MESSAGE, "inflated past the cap");
                }
            }
            Event::Ping(p) => Frame::ping(p).masked(key).encode_into(&mut again),
            Event::Pong(p) => Frame::pong(p).masked(key).encode_into(&mut again),
            Event::Close(c) => {
                let payload = match c {
                    Some(f) => encode_payload(f.code, &f.reason),
                    None => Bytes::new(),
                };
                Frame::close(&payload).masked(key).encode_into(&mut again);
            }
        }
    }
    let (reread, end) = read_all(compression, [&again[..]]);
    assert_eq!(end, Ok(()), "an accepted stream re-encoded fails to read");
    assert_eq!(
        reread, whole,
        "an accepted stream re-encoded reads differently"
    );
}

/// Streaming receive on arbitrary bytes. The first byte chooses compression, the threshold
/// (`over`) and the read sizes; the rest is the stream. Checks: every chunk sequence starts
/// with a first chunk and ends with one last chunk, with no empty chunk before it; streamed and
/// unstreamed reading give the same messages (chunks joined; compressed ones as their raw
/// payload) wherever unstreamed reading accepted the stream; and a compressed stream inflated
/// chunk by chunk ([`deflate::InflateStream`]) gives what inflating it whole gives, within the
/// same limit.
pub fn stream(data: &[u8]) {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let compression = ctl & 1 == 1;
    let over = usize::from(ctl >> 1) * 4;
    let step = usize::from(ctl % 13) + 1;
    let (whole, whole_end) = read_all(compression, [stream]);

    let cfg = reader_cfg();
    let mut reader = Reader::new();
    reader.set_compression(compression);
    let mut buf = BytesMut::new();
    let mut joined = Vec::new();
    // The message being joined: (text, compressed, bytes).
    let mut open: Option<(bool, bool, Vec<u8>)> = None;
    let mut end = Ok(());
    'read: for piece in stream.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            let ev = match reader.read_streaming(&mut buf, &cfg, Some(Streaming::over(over))) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(_) => {
                    end = Err(());
                    break 'read;
                }
            };
            let (text, compressed, first, last, bytes) = match &ev {
                Event::Chunk(c) => (c.is_text(), false, c.is_first(), c.is_last(), c.as_bytes()),
                Event::CompressedChunk {
                    text,
                    first,
                    last,
                    payload,
                } => (*text, true, *first, *last, &payload[..]),
                _ => {
                    assert!(
                        open.is_none()
                            || !matches!(ev, Event::Message(_) | Event::Compressed { .. })
                    );
                    let close = matches!(ev, Event::Close(_));
                    joined.push(ev);
                    if close {
                        break 'read;
                    }
                    continue;
                }
            };
            assert_eq!(first, open.is_none(), "first flag");
            assert!(last || !bytes.is_empty(), "an empty chunk before the last");
            let m = open.get_or_insert((text, compressed, Vec::new()));
            assert_eq!((m.0, m.1), (text, compressed), "a chunk of another message");
            m.2.extend_from_slice(bytes);
            if last {
                let (text, compressed, bytes) = open.take().unwrap_or_default();
                joined.push(if compressed {
                    Event::Compressed {
                        text,
                        payload: Bytes::from(bytes),
                    }
                } else if text {
                    let s = String::from_utf8(bytes).expect("streamed text that is not UTF-8");
                    Event::Message(volley::Message::text(s))
                } else {
                    Event::Message(volley::Message::binary(bytes))
                });
            }
        }
    }
    if whole_end.is_ok() {
        assert_eq!(end, Ok(()), "streaming refused what reading whole accepted");
        assert_eq!(joined, whole, "streamed messages differ from whole ones");
    }
    // Compressed messages, inflated chunk by chunk and whole.
    let mut inflater = Inflater::new();
    for ev in &joined {
        let Event::Compressed { text, payload } = ev else {
            continue;
        };
        let mut state = InflateState::new(true, 15);
        let whole = inflater.message(&mut state, *text, payload, MAX_MESSAGE);
        let mut state = InflateState::new(true, 15);
        let Ok(mut s) = deflate::InflateStream::start(&mut state, *text, MAX_MESSAGE as u64) else {
            continue;
        };
        let mut out = Vec::new();
        let mut result = Ok(());
        'inflate: for (i, piece) in payload.chunks(step * 37).enumerate() {
            let last = (i + 1) * step * 37 >= payload.len();
            let mut input = piece;
            loop {
                match s.next(&mut state, input, last) {
                    Ok((Some(c), used)) => {
                        assert!(c.len() <= deflate::PIECE);
                        out.extend_from_slice(c.as_bytes());
                        input = &input[used..];
                        if c.is_last() {
                            break 'inflate;
                        }
                    }
                    Ok((None, _)) => break,
                    Err(e) => {
                        result = Err(e);
                        break 'inflate;
                    }
                }
            }
        }
        s.finish(&mut state);
        if payload.is_empty() {
            continue; // never streamed with no bytes at all: a last chunk always carries some
        }
        match (whole, result) {
            (Ok(m), Ok(())) => assert_eq!(m.as_bytes(), &out[..], "inflated differently"),
            // Not always for the same reason: chunk by chunk, text fails at the first bad byte,
            // before corrupt data later on that fails inflating whole first.
            (Err(_), Err(_)) => {}
            (a, b) => panic!("inflating whole: {a:?}, chunk by chunk: {b:?}"),
        }
    }
}

/// The server's handshake on arbitrary bytes: parsing, the upgrade checks, the deflate
/// negotiation, and the 101 it would answer, which the client side must accept.
pub fn handshake(data: &[u8]) {
    let Ok(Some((head, len))) = handshake::parse_request(data, 64) else {
        return;
    };
    assert!(len <= data.len());
    let _ = (head.path(), head.query(), head.header("host"));
    let _ = handshake::wants_websocket(&head);
    let up = match handshake::validate_upgrade(&head) {
        Ok(up) => up,
        Err(e) => {
            let mut out = Vec::new();
            handshake::write_rejection(&mut out, &e);
            assert!(out.starts_with(b"HTTP/1.1 4"), "a rejection is a 4xx");
            return;
        }
    };
    let accept = handshake::accept_key(up.key);
    let negotiated = deflate::negotiate(&up.extensions, &DeflateOptions::default());
    let protocol = up.protocols.first().copied();
    let mut resp = Vec::new();
    handshake::write_switching_protocols(
        &mut resp,
        &accept,
        protocol,
        negotiated.as_ref().map(|n| n.response()),
        &[],
    );
    // A client that sent this key accepts our answer.
    if let Ok(key) = std::str::from_utf8(up.key) {
        let parsed = handshake::parse_response(&resp, key);
        assert!(
            matches!(parsed, Ok(Some((n, _))) if n == resp.len()),
            "our 101 is refused by our client: {parsed:?}"
        );
    }
    if let Some(n) = negotiated {
        assert!(
            deflate::parse_response(n.response()).is_some(),
            "our permessage-deflate answer {:?} does not parse",
            n.response()
        );
    }
}

/// permessage-deflate offers and answers on arbitrary text: negotiation (the server's side,
/// several header values split at newlines) and the client's parser of the answer. What the
/// server agrees to, the client must accept.
pub fn deflate_negotiation(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let _ = deflate::parse_response(&text);
    for opts in [DeflateOptions::default(), {
        let mut o = DeflateOptions::default();
        o.server_max_window_bits = 9;
        o.client_max_window_bits = 9;
        o.server_no_context_takeover = true;
        o.client_no_context_takeover = true;
        o
    }] {
        if let Some(n) = deflate::negotiate(&values, &opts) {
            assert!(
                deflate::parse_response(n.response()).is_some(),
                "our answer {:?} does not parse",
                n.response()
            );
        }
    }
}

/// Inflation on arbitrary bytes with the bomb cap, and compression round trips. The first byte
/// chooses the window, context takeover and text or binary.
pub fn inflate(data: &[u8]) {
    let Some((&ctl, payload)) = data.split_first() else {
        return;
    };
    let bits = 9 + (ctl & 7).min(6);
    let takeover = ctl & 8 == 0;
    let text = ctl & 16 != 0;
    let cap = 1 + usize::from(ctl >> 5) * 4096;
    let mut inflater = Inflater::new();
    let mut state = InflateState::new(!takeover, bits);
    if let Ok(m) = inflater.message(&mut state, text, payload, cap) {
        assert!(
            m.len() <= cap,
            "inflated {} bytes past the cap {cap}",
            m.len()
        );
    }
    // What we compress, we inflate back (twice: the second message uses the context).
    let mut config = CompressorConfig::default();
    config.window_bits = bits;
    config.no_context_takeover = !takeover;
    let mut c = Compressor::new(config);
    let mut state = InflateState::new(!takeover, bits);
    for _ in 0..2 {
        let mut out = Vec::new();
        c.compress(payload, &mut out);
        let m = inflater
            .message(&mut state, false, &out, payload.len())
            .expect("our own compressed message inflates");
        assert_eq!(
            m.as_bytes(),
            payload,
            "a compression round trip changed the bytes"
        );
    }
}

/// Dedicated contexts over a stream of messages: classic zlib's compressor (any window,
/// memLevel and level, chosen by the first two bytes), released down to its window between
/// messages where the control bits say so, read back by the connection's window through a
/// shared `Inflater` and by an independent live decompressor. Messages are the rest of the
/// input split at 0xff bytes. Both readers must get every message back unchanged.
pub fn dedicated(data: &[u8]) {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let bits = 9 + (a & 7).min(6);
    let mut config = CompressorConfig::default();
    config.window_bits = bits;
    config.mem_level = 1 + (a >> 3) % 9;
    config.level = b % 10;
    config.engine = DeflateEngine::Zlib;
    let mut c = Compressor::new(config);
    let mut inflater = Inflater::new();
    let mut state = InflateState::new(false, bits);
    let mut live = Decompressor::new(bits, false);
    for (i, msg) in rest.split(|&x| x == 0xff).enumerate() {
        let mut out = Vec::new();
        c.compress(msg, &mut out);
        let m = inflater
            .message(&mut state, false, &out, msg.len())
            .expect("our own compressed message inflates through the window");
        assert_eq!(m.as_bytes(), msg, "message {i} changed (window)");
        let m = live
            .decompress(&out, msg.len())
            .expect("our own compressed message inflates (live)");
        assert_eq!(&m[..], msg, "message {i} changed (live)");
        assert!(state.memory() <= 1 << bits);
        if (b >> 4) & (1 << (i % 4)) != 0 {
            assert!(c.release(), "a classic zlib compressor always releases");
        }
    }
}

/// The PROXY protocol parser (v1 and v2) and the forwarding-header parsers on arbitrary bytes.
pub fn proxy(data: &[u8]) {
    match proxy::parse(data) {
        Ok(proxy::Proxy::Complete { len, .. }) => {
            assert!(
                len <= data.len() && len > 0,
                "header length {len} out of the input"
            );
        }
        Ok(proxy::Proxy::Partial) => assert!(data.len() < proxy::V2_MAX.max(108)),
        Err(_) => {}
    }
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let _ = proxy::x_forwarded_for(values.iter().copied());
    let _ = proxy::forwarded_for(values.iter().copied());
}

/// Close payloads (as a control frame carries them: at most 125 bytes): what parses re-encodes
/// to the same frame.
pub fn close_payload(data: &[u8]) {
    if data.len() > 125 {
        return; // the reader refuses such a frame before its payload is parsed
    }
    if let Ok(Some(f)) = parse_payload(data, false) {
        let again = encode_payload(f.code, &f.reason);
        assert_eq!(parse_payload(&again, false), Ok(Some(f)));
    }
}

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target by name (for the regression test).
pub const TARGETS: &[(&str, Check)] = &[
    ("reader", reader),
    ("stream", stream),
    ("handshake", handshake),
    ("deflate_negotiation", deflate_negotiation),
    ("inflate", inflate),
    ("dedicated", dedicated),
    ("proxy", proxy),
    ("close_payload", close_payload),
];
