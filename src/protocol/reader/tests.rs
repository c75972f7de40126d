//! Unit tests of `protocol/reader/mod.rs`.

use super::*;
use crate::protocol::close::CloseCode;
use crate::protocol::frame::Frame;

const KEYS: [[u8; 4]; 4] = [
    [0x37, 0xfa, 0x21, 0x3d],
    [0x00, 0x00, 0x00, 0x00],
    [0xff, 0x01, 0x80, 0x7f],
    [0x12, 0x34, 0x56, 0x78],
];

fn cfg(role: Role) -> ReaderConfig {
    ReaderConfig {
        role,
        max_frame_size: 1 << 20,
        max_message_size: 1 << 21,
    }
}

fn server() -> ReaderConfig {
    cfg(Role::Server)
}

/// A masked frame as a client sends it (the key varies with the payload length).
fn cf(op: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    cfr(op, fin, false, payload)
}

fn cfr(op: OpCode, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let key = KEYS[payload.len() % KEYS.len()];
    let frame = Frame::new(op, payload).with_fin(fin).masked(key);
    if rsv1 { frame.compressed() } else { frame }
        .encode()
        .to_vec()
}

/// An unmasked frame as a server sends it.
fn sf(op: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    Frame::new(op, payload).with_fin(fin).encode().to_vec()
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn text(s: &str) -> Event {
    Event::Message(Message::text(s))
}

fn binary(b: &[u8]) -> Event {
    Event::Message(Message::binary(b.to_vec()))
}

/// What a run over some input produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    /// Bytes left in the buffer (only compared when there was no error).
    left: usize,
}

/// Feed `input` in the given chunks, reading until `Ok(None)` after each.
fn run_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    cfg: &ReaderConfig,
    compression: bool,
) -> Outcome {
    let mut reader = Reader::new();
    reader.set_compression(compression);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match reader.read(&mut buf, cfg) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => {
                    assert!(held_capacity(&reader) == 0);
                    return Outcome {
                        events,
                        error: Some(e),
                        left: 0,
                    };
                }
            }
        }
    }
    if reader.is_idle() {
        assert_eq!(held_capacity(&reader), 0, "idle reader holds memory");
    }
    Outcome {
        events,
        error: None,
        left: buf.len(),
    }
}

/// Read `input` fed at once, byte by byte, and split in two at every point; all must agree.
fn run_all_ways(input: &[u8], cfg: &ReaderConfig, compression: bool) -> Outcome {
    let whole = run_chunks([input], cfg, compression);
    let bytewise = run_chunks(input.chunks(1), cfg, compression);
    assert_eq!(bytewise, whole, "byte by byte");
    if input.len() <= 4096 {
        for k in 0..=input.len() {
            let (a, b) = input.split_at(k);
            assert_eq!(run_chunks([a, b], cfg, compression), whole, "split at {k}");
        }
    }
    whole
}

fn expect_events(input: &[u8], events: Vec<Event>) {
    let out = run_all_ways(input, &server(), false);
    assert_eq!(out.error, None);
    assert_eq!(out.events, events);
    assert_eq!(out.left, 0);
}

fn expect_error_with(
    input: &[u8],
    cfg: &ReaderConfig,
    compression: bool,
    events: Vec<Event>,
    error: ProtocolError,
) {
    let out = run_all_ways(input, cfg, compression);
    assert_eq!(out.events, events);
    assert_eq!(out.error, Some(error));
}

fn expect_error(input: &[u8], error: ProtocolError) {
    expect_error_with(input, &server(), false, vec![], error);
}

#[test]
fn reader_is_small() {
    let size = std::mem::size_of::<Reader>();
    assert!(size <= 48, "Reader is {size} bytes");
    #[cfg(target_pointer_width = "64")]
    assert_eq!(size, 40);
}

#[test]
fn single_frame_messages() {
    expect_events(&cf(OpCode::Text, true, b"Hello"), vec![text("Hello")]);
    expect_events(&cf(OpCode::Text, true, b""), vec![text("")]);
    expect_events(&cf(OpCode::Binary, true, b""), vec![binary(b"")]);
    expect_events(
        &cf(OpCode::Text, true, "κόσμε 𝄞".as_bytes()),
        vec![text("κόσμε 𝄞")],
    );
    for len in [1usize, 125, 126, 127, 1000, 65535, 65536, 100_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let input = cf(OpCode::Binary, true, &payload);
        if len <= 1000 {
            expect_events(&input, vec![binary(&payload)]);
        } else {
            let out = run_chunks([&input[..]], &server(), false);
            assert_eq!(out.events, vec![binary(&payload)]);
            let out = run_chunks(input.chunks(777), &server(), false);
            assert_eq!(out.events, vec![binary(&payload)]);
        }
        let s: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let out = run_chunks(
            cf(OpCode::Text, true, s.as_bytes()).chunks(333),
            &server(),
            false,
        );
        assert_eq!(out.events, vec![text(&s)]);
    }
}

#[test]
fn rfc_example_frames() {
    // RFC 6455 §5.7: a masked "Hello", and an unmasked one read by a client.
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    expect_events(&masked, vec![text("Hello")]);
    let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let out = run_all_ways(&unmasked, &cfg(Role::Client), false);
    assert_eq!(out.events, vec![text("Hello")]);
    // Unmasked ping then pong from the RFC.
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let out = run_all_ways(&ping, &cfg(Role::Client), false);
    assert_eq!(out.events, vec![Event::Ping(Bytes::from_static(b"Hello"))]);
}

#[test]
fn several_messages_in_one_buffer_come_out_one_per_call() {
    let input = cat(&[
        cf(OpCode::Text, true, b"one"),
        cf(OpCode::Binary, true, &[1, 2, 3]),
        cf(OpCode::Ping, true, b"p"),
        cf(OpCode::Text, true, b"two"),
    ]);
    let mut buf = BytesMut::from(&input[..]);
    let mut partial = cf(OpCode::Text, true, b"three");
    partial.truncate(4);
    buf.extend_from_slice(&partial);
    let mut r = Reader::new();
    let c = server();
    assert_eq!(r.read(&mut buf, &c), Ok(Some(text("one"))));
    assert_eq!(r.read(&mut buf, &c), Ok(Some(binary(&[1, 2, 3]))));
    assert_eq!(
        r.read(&mut buf, &c),
        Ok(Some(Event::Ping(Bytes::from_static(b"p"))))
    );
    assert_eq!(r.read(&mut buf, &c), Ok(Some(text("two"))));
    assert_eq!(r.read(&mut buf, &c), Ok(None));
    assert_eq!(r.read(&mut buf, &c), Ok(None));
    assert_eq!(buf.len(), 4, "the partial frame stays in the buffer");
}

#[test]
fn fragmented_messages_with_interleaved_control_frames() {
    let input = cat(&[
        cf(OpCode::Text, false, "κό".as_bytes()),
        cf(OpCode::Ping, true, b"ping 1"),
        cf(OpCode::Continuation, false, b""),
        cf(OpCode::Pong, true, b""),
        cf(OpCode::Continuation, false, &"σμε".as_bytes()[..3]), // splits "μ"
        cf(OpCode::Ping, true, b""),
        cf(OpCode::Continuation, true, &"σμε".as_bytes()[3..]),
        cf(OpCode::Binary, false, &[1, 2]),
        cf(OpCode::Continuation, false, &[3]),
        cf(OpCode::Continuation, true, &[4, 5, 6]),
        cf(OpCode::Text, false, b""),
        cf(OpCode::Continuation, true, b""),
    ]);
    expect_events(
        &input,
        vec![
            Event::Ping(Bytes::from_static(b"ping 1")),
            Event::Pong(Bytes::new()),
            Event::Ping(Bytes::new()),
            text("κόσμε"),
            binary(&[1, 2, 3, 4, 5, 6]),
            text(""),
        ],
    );
}

#[test]
fn code_point_split_at_every_fragment_boundary() {
    let s = "a€𝄞é".as_bytes();
    for k in 0..=s.len() {
        let input = cat(&[
            cf(OpCode::Text, false, &s[..k]),
            cf(OpCode::Continuation, true, &s[k..]),
        ]);
        expect_events(&input, vec![text("a€𝄞é")]);
    }
}

#[test]
fn close_frames() {
    expect_events(&cf(OpCode::Close, true, b""), vec![Event::Close(None)]);
    expect_events(
        &cf(OpCode::Close, true, b"\x03\xe8"),
        vec![Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, "")))],
    );
    expect_events(
        &cf(OpCode::Close, true, b"\x0f\xa0bye \xc3\xa9"),
        vec![Event::Close(Some(CloseFrame::new(
            CloseCode(4000),
            "bye é",
        )))],
    );
    // Between fragments.
    expect_events(
        &cat(&[
            cf(OpCode::Text, false, b"ab"),
            cf(OpCode::Close, true, b"\x03\xe9"),
        ]),
        vec![Event::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            "",
        )))],
    );
    expect_error(
        &cf(OpCode::Close, true, b"\x03"),
        ProtocolError::InvalidClosePayload,
    );
    expect_error(
        &cf(OpCode::Close, true, b"\x03\xed"),
        ProtocolError::InvalidCloseCode(1005),
    );
    expect_error(
        &cf(OpCode::Close, true, b"\x03\xe8\xce"),
        ProtocolError::InvalidUtf8,
    );
}

#[test]
fn masking_rules_by_role() {
    expect_error(&sf(OpCode::Text, true, b"hi"), ProtocolError::UnmaskedFrame);
    expect_error(&sf(OpCode::Ping, true, b""), ProtocolError::UnmaskedFrame);
    let client = cfg(Role::Client);
    expect_error_with(
        &cf(OpCode::Text, true, b"hi"),
        &client,
        false,
        vec![],
        ProtocolError::MaskedFrame,
    );
    // A client reads unmasked frames, fragmented ones included.
    let input = cat(&[
        sf(OpCode::Text, false, "é".as_bytes()[..1].as_ref()),
        sf(OpCode::Ping, true, b"x"),
        sf(OpCode::Continuation, true, "é".as_bytes()[1..].as_ref()),
        sf(OpCode::Close, true, b"\x03\xe8ok"),
    ]);
    let out = run_all_ways(&input, &client, false);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        vec![
            Event::Ping(Bytes::from_static(b"x")),
            text("é"),
            Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, "ok"))),
        ]
    );
}

/// A masked frame with arbitrary first-byte bits.
fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = cf(OpCode::Binary, true, payload);
    f[0] = b0;
    f
}

#[test]
fn reserved_bits() {
    for rsv in [0x40, 0x20, 0x10, 0x70] {
        expect_error(&raw_frame(0x82 | rsv, b"x"), ProtocolError::ReservedBits);
        expect_error(&raw_frame(0x89 | rsv, b""), ProtocolError::ReservedBits);
    }
    // With compression, RSV2/RSV3 are still reserved, and RSV1 is only for a message's
    // first frame.
    let c = server();
    for input in [
        raw_frame(0xA1, b"x"),
        raw_frame(0x91, b"x"),
        raw_frame(0xC9, b""),
        raw_frame(0xCA, b""),
        raw_frame(0xC8, b""),
        cat(&[cfr(OpCode::Text, false, true, b"a"), raw_frame(0xC0, b"b")]),
    ] {
        expect_error_with(&input, &c, true, vec![], ProtocolError::ReservedBits);
    }
}

#[test]
fn reserved_opcodes() {
    for op in (3..=7).chain(0xB..=0xF) {
        expect_error(
            &raw_frame(0x80 | op, b"x"),
            ProtocolError::ReservedOpcode(op),
        );
    }
    // After a valid message, the error comes after its event.
    let input = cat(&[cf(OpCode::Text, true, b"ok"), raw_frame(0x83, b"")]);
    expect_error_with(
        &input,
        &server(),
        false,
        vec![text("ok")],
        ProtocolError::ReservedOpcode(3),
    );
}

#[test]
fn invalid_length() {
    let input = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    expect_error(&input, ProtocolError::InvalidLength);
}

#[test]
fn non_minimal_length_encoding_is_accepted() {
    // "abc" with a 16-bit length, then with a 64-bit length.
    let key = [1, 2, 3, 4];
    let mut body = *b"abc";
    apply_mask(&mut body, key, 0);
    let mut input = vec![0x81, 0xFE, 0, 3];
    input.extend_from_slice(&key);
    input.extend_from_slice(&body);
    input.extend_from_slice(&[0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 3]);
    input.extend_from_slice(&key);
    input.extend_from_slice(&body);
    expect_events(&input, vec![text("abc"), text("abc")]);
}

#[test]
fn control_frame_rules() {
    expect_error(
        &cf(OpCode::Ping, true, &[0; 126]),
        ProtocolError::ControlFrameTooLong(126),
    );
    expect_error(
        &cf(OpCode::Close, true, &[0; 65536]),
        ProtocolError::ControlFrameTooLong(65536),
    );
    expect_events(
        &cf(OpCode::Pong, true, &[7; 125]),
        vec![Event::Pong(Bytes::from(vec![7; 125]))],
    );
    for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        expect_error(&cf(op, false, b""), ProtocolError::FragmentedControlFrame);
    }
}

#[test]
fn fragmentation_rules() {
    expect_error(
        &cf(OpCode::Continuation, true, b"x"),
        ProtocolError::UnexpectedContinuation,
    );
    expect_error(
        &cf(OpCode::Continuation, false, b"x"),
        ProtocolError::UnexpectedContinuation,
    );
    // After a complete fragmented message, a continuation is unexpected again.
    expect_error_with(
        &cat(&[
            cf(OpCode::Binary, false, b"a"),
            cf(OpCode::Continuation, true, b"b"),
            cf(OpCode::Continuation, true, b"c"),
        ]),
        &server(),
        false,
        vec![binary(b"ab")],
        ProtocolError::UnexpectedContinuation,
    );
    for op in [OpCode::Text, OpCode::Binary] {
        for fin in [true, false] {
            expect_error(
                &cat(&[cf(OpCode::Text, false, b"a"), cf(op, fin, b"b")]),
                ProtocolError::ExpectedContinuation,
            );
        }
    }
}

#[test]
fn invalid_utf8() {
    expect_error(
        &cf(OpCode::Text, true, b"ab\xff"),
        ProtocolError::InvalidUtf8,
    );
    expect_error(&cf(OpCode::Text, true, b"\xce"), ProtocolError::InvalidUtf8);
    // In a middle fragment: the error comes before the message ends.
    expect_error(
        &cat(&[
            cf(OpCode::Text, false, b"ok"),
            cf(OpCode::Continuation, false, b"\xed\xa0\x80"),
        ]),
        ProtocolError::InvalidUtf8,
    );
    // Incomplete at the end of the message.
    expect_error(
        &cat(&[
            cf(OpCode::Text, false, b"ok"),
            cf(OpCode::Continuation, true, b"\xf0\x9d"),
        ]),
        ProtocolError::InvalidUtf8,
    );
    // Binary is not validated.
    expect_events(&cf(OpCode::Binary, true, b"\xff"), vec![binary(b"\xff")]);
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // Autobahn 6.4.x: the invalid bytes arrive, the rest of the frame does not (yet).
    let mut payload = b"Hello-\xce\xbc\xce\xb5-".to_vec();
    payload.extend_from_slice(b"\xf4\x90\x80\x80"); // > U+10FFFF
    payload.extend_from_slice(&[b'x'; 1000]);
    let frame = cf(OpCode::Text, true, &payload);
    // Header and key (8 bytes), then 12 bytes that can still start valid UTF-8 (the last is
    // the lead byte 0xF4); the next byte, 0x90, shows the code point is out of range.
    let bad_at = 8 + 12;
    let mut buf = BytesMut::from(&frame[..bad_at]);
    let mut r = Reader::new();
    assert_eq!(r.read(&mut buf, &server()), Ok(None));
    buf.extend_from_slice(&frame[bad_at..bad_at + 1]);
    assert_eq!(r.read(&mut buf, &server()), Err(ProtocolError::InvalidUtf8));

    // Same in a continuation frame.
    let first = cf(OpCode::Text, false, b"ok");
    let second = cf(OpCode::Continuation, true, &payload);
    let mut buf = BytesMut::from(&first[..]);
    buf.extend_from_slice(&second[..bad_at + 1]);
    let mut r = Reader::new();
    assert_eq!(r.read(&mut buf, &server()), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn partial_text_is_unmasked_once() {
    // The prefix of a pending text frame is unmasked early; completing the frame must not
    // unmask it again, whatever the chunking.
    let s = "xyzzy €𝄞 ".repeat(50);
    let frame = cf(OpCode::Text, true, s.as_bytes());
    for chunk in [1, 2, 3, 5, 7, 64, 100] {
        let out = run_chunks(frame.chunks(chunk), &server(), false);
        assert_eq!(out.events, vec![text(&s)], "chunk {chunk}");
        assert_eq!(out.left, 0);
    }
}

fn limits(max_frame_size: usize, max_message_size: usize) -> ReaderConfig {
    ReaderConfig {
        role: Role::Server,
        max_frame_size,
        max_message_size,
    }
}

#[test]
fn frame_size_limit_is_checked_from_the_header() {
    let c = limits(1000, 10_000);
    let frame = cf(OpCode::Binary, true, &[0; 1001]);
    // Only the header (4 + 4 bytes) has arrived.
    let mut buf = BytesMut::from(&frame[..8]);
    assert_eq!(
        Reader::new().read(&mut buf, &c),
        Err(ProtocolError::FrameTooLarge {
            size: 1001,
            max: 1000
        })
    );
    // A declared length far beyond memory, header only.
    let mut huge = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    huge.extend_from_slice(&[1, 2, 3, 4]);
    let mut buf = BytesMut::from(&huge[..]);
    assert_eq!(
        Reader::new().read(&mut buf, &c),
        Err(ProtocolError::FrameTooLarge {
            size: u64::MAX >> 1,
            max: 1000
        })
    );
    // At the limit it is fine.
    let out = run_chunks([&cf(OpCode::Binary, true, &[0; 1000])[..]], &c, false);
    assert_eq!(out.events, vec![binary(&[0; 1000])]);
    // Also for text (whose prefix would otherwise be validated early).
    expect_error_with(
        &cf(OpCode::Text, true, &[b'a'; 1001]),
        &c,
        false,
        vec![],
        ProtocolError::FrameTooLarge {
            size: 1001,
            max: 1000,
        },
    );
}

#[test]
fn message_size_limit_is_checked_from_the_header() {
    let c = limits(1000, 1500);
    let first = cf(OpCode::Binary, false, &[1; 800]);
    let second = cf(OpCode::Continuation, true, &[2; 800]);
    let mut buf = BytesMut::from(&first[..]);
    buf.extend_from_slice(&second[..8]); // the header of the second fragment only
    assert_eq!(
        Reader::new().read(&mut buf, &c),
        Err(ProtocolError::MessageTooLarge {
            size: 1600,
            max: 1500
        })
    );
    // A single frame over the message limit (but within the frame limit).
    let c = limits(1000, 500);
    let mut buf = BytesMut::from(&cf(OpCode::Text, true, &[b'a'; 501])[..8]);
    assert_eq!(
        Reader::new().read(&mut buf, &c),
        Err(ProtocolError::MessageTooLarge {
            size: 501,
            max: 500
        })
    );
    // Control frames do not count towards the message.
    let c = limits(1000, 10);
    let input = cat(&[
        cf(OpCode::Text, false, b"01234"),
        cf(OpCode::Ping, true, &[0; 100]),
        cf(OpCode::Continuation, true, b"56789"),
    ]);
    let out = run_all_ways(&input, &c, false);
    assert_eq!(out.error, None);
    assert_eq!(out.events[1], text("0123456789"));
}

#[test]
fn single_frame_messages_are_zero_copy() {
    let frame = cf(OpCode::Text, true, &[b'z'; 300]);
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(&frame);
    buf.extend_from_slice(&cf(OpCode::Binary, true, &[9; 10]));
    let base = buf.as_ptr() as usize;
    let mut r = Reader::new();
    let Ok(Some(Event::Message(Message::Text(t)))) = r.read(&mut buf, &server()) else {
        panic!("expected text");
    };
    assert_eq!(t.as_bytes().as_ptr() as usize, base + 8);
    let Ok(Some(Event::Message(Message::Binary(b)))) = r.read(&mut buf, &server()) else {
        panic!("expected binary");
    };
    assert_eq!(b.as_ptr() as usize, base + frame.len() + 6);
    assert_eq!(&b[..], &[9; 10]);
    assert!(buf.is_empty());
}

#[test]
fn fragment_memory_is_released() {
    let mut r = Reader::new();
    let input = cat(&[
        cf(OpCode::Binary, false, &[1; 1000]),
        cf(OpCode::Continuation, true, &[2; 1000]),
    ]);
    let mut buf = BytesMut::from(&input[..1500]);
    assert_eq!(r.read(&mut buf, &server()), Ok(None));
    assert!(!r.is_idle());
    assert!(held_capacity(&r) >= 1000);
    buf.extend_from_slice(&input[1500..]);
    let Ok(Some(Event::Message(m))) = r.read(&mut buf, &server()) else {
        panic!("expected a message");
    };
    assert_eq!(m.len(), 2000);
    assert!(r.is_idle());
    assert_eq!(held_capacity(&r), 0);
    // And after an error mid-message (the first fragment is 8 + 1000 bytes).
    let mut buf = BytesMut::from(&input[..1008]);
    assert_eq!(r.read(&mut buf, &server()), Ok(None));
    buf.extend_from_slice(&cf(OpCode::Ping, false, b""));
    assert!(r.read(&mut buf, &server()).is_err());
    assert_eq!(held_capacity(&r), 0);
}

#[test]
fn compressed_messages() {
    let c = server();
    // Single frame: raw bytes out, not validated as UTF-8.
    let out = run_all_ways(&cfr(OpCode::Text, true, true, b"\xff\x00"), &c, true);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        vec![Event::Compressed {
            text: true,
            payload: Bytes::from_static(b"\xff\x00"),
        }]
    );
    let input = cat(&[
        cfr(OpCode::Binary, true, true, b"abc"),
        cfr(OpCode::Text, false, true, b"\xff"),
        cf(OpCode::Ping, true, b""),
        cf(OpCode::Continuation, false, b"\xfe"),
        cf(OpCode::Continuation, true, b"\xfd"),
        cf(OpCode::Text, true, b"plain"),
    ]);
    let out = run_all_ways(&input, &c, true);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        vec![
            Event::Compressed {
                text: false,
                payload: Bytes::from_static(b"abc")
            },
            Event::Ping(Bytes::new()),
            Event::Compressed {
                text: true,
                payload: Bytes::from_static(b"\xff\xfe\xfd")
            },
            text("plain"),
        ]
    );
    // Without compression negotiated, RSV1 is reserved.
    expect_error(
        &cfr(OpCode::Text, true, true, b"x"),
        ProtocolError::ReservedBits,
    );
}

use crate::protocol::test_rng::Rng;

/// A random valid client stream of 1..=`messages` data messages (text or binary, up to
/// `size` code points or bytes), each cut into 1..4 fragments at arbitrary bytes with pings
/// between some of them; and the events reading it must give.
fn random_stream(rng: &mut Rng, messages: usize, size: usize) -> (Vec<u8>, Vec<Event>) {
    let alphabet = ["a", "Z", " ", "é", "€", "𝄞", "κόσμε"];
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..rng.below(messages) + 1 {
        let is_text = rng.below(2) == 0;
        let payload: Vec<u8> = if is_text {
            (0..rng.below(size))
                .flat_map(|_| alphabet[rng.below(alphabet.len())].bytes())
                .collect()
        } else {
            (0..rng.below(size * 7)).map(|_| rng.next() as u8).collect()
        };
        let mut cuts: Vec<usize> = (0..rng.below(4))
            .map(|_| rng.below(payload.len() + 1))
            .collect();
        cuts.sort_unstable();
        cuts.push(payload.len());
        let mut from = 0;
        for (i, &to) in cuts.iter().enumerate() {
            let op = match (i, is_text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let key = (rng.next() as u32).to_ne_bytes();
            let fin = i + 1 == cuts.len();
            input.extend_from_slice(
                &Frame::new(op, &payload[from..to])
                    .with_fin(fin)
                    .masked(key)
                    .encode(),
            );
            from = to;
            if !fin && rng.below(3) == 0 {
                let ping = vec![rng.next() as u8; rng.below(126)];
                input.extend_from_slice(&cf(OpCode::Ping, true, &ping));
                expected.push(Event::Ping(Bytes::from(ping)));
            }
        }
        expected.push(if is_text {
            text(std::str::from_utf8(&payload).unwrap())
        } else {
            binary(&payload)
        });
    }
    (input, expected)
}

/// `input` cut into reads of 1 to 50 bytes.
fn random_reads<'a>(rng: &mut Rng, input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (a, b) = rest.split_at(rng.below(rest.len().min(50)) + 1);
        chunks.push(a);
        rest = b;
    }
    chunks
}

#[test]
fn random_valid_streams_read_back_under_random_chunking() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..300 {
        let (input, expected) = random_stream(&mut rng, 6, 40);
        let out = run_chunks(random_reads(&mut rng, &input), &server(), false);
        assert_eq!(out.error, None);
        assert_eq!(out.events, expected);
        assert_eq!(out.left, 0);
    }
}

fn held_capacity(r: &Reader) -> usize {
    match &r.held {
        Held::Fragments(v) => v.capacity(),
        Held::Stream(_) => usize::MAX,
    }
}

/// What a streaming read of `chunks` gives, with each streamed message's chunks joined
/// back into the message (checking their flags on the way), and the most bytes `buf` held
/// after a read that returned `Ok(None)`.
struct Streamed {
    events: Vec<Event>,
    chunks: usize,
    error: Option<ProtocolError>,
    most_left: usize,
}

fn run_streaming<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    cfg: &ReaderConfig,
    streaming: Streaming,
) -> Streamed {
    let mut reader = Reader::new();
    reader.set_compression(true);
    let mut buf = BytesMut::new();
    let mut out = Streamed {
        events: Vec::new(),
        chunks: 0,
        error: None,
        most_left: 0,
    };
    let mut joining: Option<(bool, Vec<u8>)> = None;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match reader.read_streaming(&mut buf, cfg, Some(streaming)) {
                Ok(Some(Event::Chunk(c))) => {
                    out.chunks += 1;
                    assert_eq!(c.is_first(), joining.is_none(), "first flag");
                    assert!(c.is_last() || !c.is_empty(), "empty chunk before the last");
                    let (is_text, data) = joining.get_or_insert((c.is_text(), Vec::new()));
                    assert_eq!(*is_text, c.is_text());
                    if c.is_text() {
                        assert!(c.as_text().is_some());
                    }
                    data.extend_from_slice(c.as_bytes());
                    if c.is_last() {
                        let (is_text, data) = joining.take().unwrap();
                        out.events.push(if is_text {
                            text(std::str::from_utf8(&data).unwrap())
                        } else {
                            binary(&data)
                        });
                    }
                }
                Ok(Some(e)) => out.events.push(e),
                Ok(None) => {
                    out.most_left = out.most_left.max(buf.len());
                    break;
                }
                Err(e) => {
                    assert_eq!(held_capacity(&reader), 0);
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    assert!(joining.is_none() || !reader.is_idle());
    out
}

#[test]
fn streamed_messages_come_out_as_their_bytes_arrive() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let input = cf(OpCode::Binary, true, &payload);
    let mut reader = Reader::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for (i, piece) in input.chunks(4096).enumerate() {
        buf.extend_from_slice(piece);
        while let Some(ev) = reader
            .read_streaming(&mut buf, &server(), Some(Streaming::over(1000)))
            .unwrap()
        {
            let Event::Chunk(c) = ev else {
                panic!("expected a chunk, got {ev:?}");
            };
            assert_eq!(c.is_first(), got.is_empty());
            assert_eq!(c.is_last(), got.len() + c.len() == payload.len());
            got.extend_from_slice(c.as_bytes());
        }
        // Nothing is held back: every payload byte left as soon as it came.
        assert!(buf.is_empty(), "read {i} left {} bytes", buf.len());
        assert!(!reader.is_idle() || got.len() == payload.len());
    }
    assert_eq!(got, payload);
    assert!(reader.is_idle());
    assert_eq!(held_capacity(&reader), 0);
}

#[test]
fn small_messages_still_come_whole_and_fragments_switch_when_over() {
    let streaming = Streaming::over(100);
    // Under the threshold: whole messages, as without streaming.
    let out = run_streaming(
        [&cf(OpCode::Text, true, b"hello")[..]],
        &server(),
        streaming,
    );
    assert_eq!((out.events, out.chunks), (vec![text("hello")], 0));
    // Fragments held until the message goes over 100 bytes: then they leave as its first
    // chunk, and the rest streams; a ping between fragments comes out where it was.
    let input = cat(&[
        cf(OpCode::Binary, false, &[1; 60]),
        cf(OpCode::Ping, true, b"p"),
        cf(OpCode::Continuation, false, &[2; 60]),
        cf(OpCode::Continuation, true, &[3; 60]),
    ]);
    let mut expected = [1u8; 60].to_vec();
    expected.extend_from_slice(&[2; 60]);
    expected.extend_from_slice(&[3; 60]);
    let out = run_streaming([&input[..]], &server(), streaming);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        vec![Event::Ping(Bytes::from_static(b"p")), binary(&expected)]
    );
    assert_eq!(out.chunks, 3);
}

#[test]
fn streamed_text_is_cut_on_code_points_and_fails_late_when_invalid() {
    let text_in = "ab€😀é".repeat(300);
    let input = cf(OpCode::Text, true, text_in.as_bytes());
    for step in [1, 2, 3, 5, 7, 64, 1000] {
        let out = run_streaming(input.chunks(step), &server(), Streaming::over(0));
        assert_eq!(out.error, None, "step {step}");
        assert_eq!(out.events, vec![text(&text_in)]);
    }
    // Invalid UTF-8 near the end fails the message after its first chunks went out.
    let mut bad = text_in.clone().into_bytes();
    let at = bad.len() - 3;
    bad[at] = 0xff;
    let input = cf(OpCode::Text, true, &bad);
    let out = run_streaming(input.chunks(500), &server(), Streaming::over(0));
    assert_eq!(out.error, Some(ProtocolError::InvalidUtf8));
    assert!(out.chunks > 0);
    // So does a message that ends inside a code point.
    let input = cat(&[
        cf(OpCode::Text, false, "x€".as_bytes()),
        cf(OpCode::Continuation, true, &"€".as_bytes()[..2]),
    ]);
    let out = run_streaming([&input[..]], &server(), Streaming::over(0));
    assert_eq!(out.error, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn streamed_messages_have_their_own_size_limit() {
    // Frame and message limits do not apply (nothing is held)...
    let cfg = limits(1000, 1000);
    let input = cf(OpCode::Binary, true, &[7; 50_000]);
    let out = run_streaming(input.chunks(3000), &cfg, Streaming::over(10));
    assert_eq!((out.error, out.events), (None, vec![binary(&[7; 50_000])]));
    // ... the stream's does, from the header, across fragments.
    let streaming = Streaming::over(10).max_size(40_000);
    let out = run_streaming([&input[..]], &cfg, streaming);
    assert!(matches!(
        out.error,
        Some(ProtocolError::MessageTooLarge { size: 50_000, .. })
    ));
    assert_eq!(out.chunks, 0, "refused before any payload");
    let input = cat(&[
        cf(OpCode::Binary, false, &[1; 30_000]),
        cf(OpCode::Continuation, true, &[2; 30_000]),
    ]);
    let out = run_streaming([&input[..]], &cfg, streaming);
    assert!(matches!(
        out.error,
        Some(ProtocolError::MessageTooLarge { size: 60_000, .. })
    ));
    // Frame rules still hold inside a stream.
    let input = cat(&[
        cf(OpCode::Binary, false, &[1; 300]),
        cf(OpCode::Text, true, b"x"),
    ]);
    let out = run_streaming([&input[..]], &cfg, Streaming::over(10));
    assert_eq!(out.error, Some(ProtocolError::ExpectedContinuation));
}

#[test]
fn compressed_messages_stream_their_raw_bytes() {
    let input = cat(&[
        cfr(OpCode::Text, false, true, &[9; 700]),
        cf(OpCode::Continuation, true, &[8; 700]),
    ]);
    let mut reader = Reader::new();
    reader.set_compression(true);
    let mut buf = BytesMut::new();
    let mut joined = Vec::new();
    let mut lasts = 0;
    for piece in input.chunks(333) {
        buf.extend_from_slice(piece);
        while let Some(ev) = reader
            .read_streaming(&mut buf, &server(), Some(Streaming::over(100)))
            .unwrap()
        {
            let Event::CompressedChunk {
                text,
                first,
                last,
                payload,
            } = ev
            else {
                panic!("expected a compressed chunk, got {ev:?}");
            };
            assert!(text);
            assert_eq!(first, joined.is_empty());
            lasts += usize::from(last);
            joined.extend_from_slice(&payload);
        }
    }
    assert_eq!(lasts, 1);
    assert_eq!(joined.len(), 1400);
    assert!(joined[..700].iter().all(|&b| b == 9) && joined[700..].iter().all(|&b| b == 8));
}

#[test]
fn random_valid_streams_read_back_when_streamed() {
    let mut rng = Rng(0x5eed_0fc0_ffee);
    for _ in 0..300 {
        let (input, expected) = random_stream(&mut rng, 5, 80);
        let over = rng.below(200);
        let out = run_streaming(
            random_reads(&mut rng, &input),
            &server(),
            Streaming::over(over),
        );
        assert_eq!(out.error, None);
        assert_eq!(out.events, expected, "over {over}");
        // What stays in the buffer between reads is at most a frame header or a small
        // frame that is not streamed (data up to `over`, or a control frame).
        assert!(
            out.most_left <= over.max(125) + 14,
            "left {}",
            out.most_left
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for round in 0..3000 {
        let len = rng.below(200);
        let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Bias first bytes towards plausible headers so deeper paths are reached.
        if let Some(b) = input.first_mut() {
            *b = (*b & 0x8F) | if round % 3 == 0 { 0x40 } else { 0 };
        }
        if let Some(b) = input.get_mut(1) {
            *b |= 0x80;
            if round % 2 == 0 {
                *b &= 0x8F;
            }
        }
        let c = ReaderConfig {
            role: if round % 5 == 0 {
                Role::Client
            } else {
                Role::Server
            },
            max_frame_size: rng.below(300),
            max_message_size: rng.below(600),
        };
        let compression = round % 3 == 0;
        let whole = run_chunks([&input[..]], &c, compression);
        let bytewise = run_chunks(input.chunks(1), &c, compression);
        assert_eq!(whole.events, bytewise.events);
        assert_eq!(whole.error, bytewise.error);
    }
}
