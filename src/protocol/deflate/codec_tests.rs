//! Unit tests of `protocol/deflate/codec.rs`.

use super::*;
use crate::protocol::deflate::{negotiate, DeflateOptions};
use crate::protocol::test_rng::Rng;

fn opts() -> DeflateOptions {
    DeflateOptions::default()
}

// ---- codec -------------------------------------------------------------------------------

/// Found by the `inflate` fuzz target: a final block that ends exactly one byte over the
/// limit was let through (2 bytes inflated with a cap of 1).
#[test]
fn a_final_block_one_byte_over_the_cap_is_refused() {
    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    let mut data = Vec::with_capacity(64);
    z.compress_vec(b"ab", &mut data, flate2::FlushCompress::Finish)
        .unwrap();
    let mut d = Decompressor::new(15, true);
    assert!(matches!(
        d.decompress(&data, 1),
        Err(ProtocolError::MessageTooLarge { max: 1, .. })
    ));
    assert_eq!(&d.decompress(&data, 2).unwrap()[..], b"ab");
}

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

/// A compressor released between messages (down to its window) and rebuilt continues one
/// stream: a single independent inflater reads everything, and repeats stay small.
#[test]
fn a_released_compressor_continues_the_stream() {
    for bits in [9u8, 12, 15] {
        let mut c = Compressor::new(CompressorConfig {
            window_bits: bits,
            mem_level: 2,
            engine: DeflateEngine::Zlib,
            ..CompressorConfig::default()
        });
        let mut reference = flate2::Decompress::new(false);
        for (i, msg) in sample_messages().iter().enumerate() {
            let payload = compress(&mut c, msg);
            if i % 2 == 1 {
                assert!(c.release(), "window {bits}");
                assert!(c.is_released());
            }
            let mut with_tail = payload.clone();
            with_tail.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(msg.len() + 1);
            reference
                .decompress_vec(&with_tail, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, *msg, "window {bits}, message {i}");
        }
        // After a release the repeat of the previous message still refers to it.
        let json = &sample_messages()[0];
        compress(&mut c, json);
        assert!(c.release());
        let again = compress(&mut c, json);
        assert!(
            again.len() < json.len() / 3,
            "window {bits}: {}",
            again.len()
        );
    }
    // zlib-rs cannot hand its window out: only a reset-per-message one releases.
    let mut rs = compressor(15, false);
    compress(&mut rs, b"abc");
    assert!(!rs.release());
    let mut rs = compressor(15, true);
    compress(&mut rs, b"abc");
    assert!(rs.release());
    assert_eq!(
        compress(&mut rs, b"abc"),
        compress(&mut compressor(15, true), b"abc")
    );
}

/// The connection's window alone carries a context-takeover stream from one message to the
/// next: many connections interleaved through one `Inflater` each read their own stream.
#[test]
fn connections_keep_only_their_window_between_messages() {
    let mut inflater = Inflater::new();
    let mut conns: Vec<(Compressor, InflateState)> = [9u8, 10, 12, 14]
        .iter()
        .map(|&bits| {
            let c = Compressor::new(CompressorConfig {
                window_bits: bits,
                engine: DeflateEngine::Zlib,
                ..CompressorConfig::default()
            });
            (c, InflateState::new(false, bits))
        })
        .collect();
    let messages = sample_messages();
    for round in 0..3 {
        for (k, (c, state)) in conns.iter_mut().enumerate() {
            for (i, msg) in messages.iter().enumerate() {
                let payload = compress(c, msg);
                let back = inflater.message(state, false, &payload, 1 << 20).unwrap();
                assert_eq!(back.as_bytes(), &msg[..], "round {round} conn {k} msg {i}");
                assert!(state.memory() <= 1 << state.peer_window_bits);
            }
        }
    }
    assert_eq!(conns[0].1.memory(), 512);
    // A peer that resets after every message holds nothing.
    let mut nct = InflateState::new(true, 15);
    let mut c = compressor(15, true);
    let payload = compress(&mut c, &messages[0]);
    inflater.message(&mut nct, true, &payload, 1 << 20).unwrap();
    assert!(!nct.holds_context());
}

#[test]
fn every_setting_round_trips_through_an_independent_decoder() {
    let text = sample_messages()[4].clone();
    for window_bits in 8..=15u8 {
        for (mem_level, level, engine) in (0..32).map(|i| {
            let engine = if i % 2 == 0 {
                DeflateEngine::ZlibRs
            } else {
                DeflateEngine::Zlib
            };
            ([1, 4, 8, 9][i / 8], [0, 1, 6, 9][i / 2 % 4], engine)
        }) {
            {
                let mut c = Compressor::new(CompressorConfig {
                    level,
                    window_bits,
                    mem_level,
                    no_context_takeover: false,
                    engine,
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
                    "{window_bits}/{mem_level}/{level}/{engine:?}: {max_distance}"
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
        engine: DeflateEngine::Zlib,
    });
    assert_eq!(
        c.config(),
        CompressorConfig {
            level: 9,
            window_bits: 8,
            mem_level: 1,
            no_context_takeover: false,
            engine: DeflateEngine::Zlib,
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
    let mut rng = Rng(0x853c_49e6_748f_ea9bu64);
    let mut next = || rng.next();
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
            no_context_takeover: false,
            engine: DeflateEngine::ZlibRs,
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
                                lengths.extend(std::iter::repeat_n(prev, n as usize));
                            }
                            17 => lengths.extend(std::iter::repeat_n(0, 3 + s.bits(3) as usize)),
                            _ => lengths.extend(std::iter::repeat_n(0, 11 + s.bits(7) as usize)),
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
                        let distance = usize::from(DBASE[d]) + s.bits(u32::from(DEXT[d])) as usize;
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
