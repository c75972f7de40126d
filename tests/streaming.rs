//! Streaming receive over real sockets (`Streaming`, `Handler::on_chunk`): large messages reach
//! the handler in chunks as their bytes arrive, text cut on code point boundaries, compressed
//! messages inflated chunk by chunk; late invalid UTF-8 closes with 1007, a streamed deflate
//! bomb with 1009; control frames between fragments are answered in place; small messages
//! still arrive whole; and a connection can switch streaming on for itself.

mod util;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::*;
use volley::protocol::deflate::{Compressor, CompressorConfig};
use volley::protocol::frame::{Frame, OpCode};
use volley::{
    Chunk, CloseCode, Compress, Context, DeflateMode, Error, Handler, Message, Request, Streaming,
    Upgrade,
};

/// What a handler saw, in order.
#[derive(Debug, Default)]
struct Log {
    /// "chunk N", "message N", "ping", "error CODE".
    events: Vec<String>,
    /// Every chunk's (len, first, last, text).
    chunks: Vec<(usize, bool, bool, bool)>,
}

struct Rec {
    log: Arc<Mutex<Log>>,
    joined: Vec<u8>,
    /// Switch streaming on from `on_open` (else the config's setting holds).
    own: Option<Streaming>,
}

impl Handler for Rec {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        if let Some(s) = self.own {
            ctx.set_streaming(Some(s));
        }
    }

    fn on_chunk(&mut self, ctx: &mut Context<'_>, chunk: Chunk) {
        {
            let mut log = self.log.lock().unwrap();
            log.events.push(format!("chunk {}", chunk.len()));
            log.chunks.push((
                chunk.len(),
                chunk.is_first(),
                chunk.is_last(),
                chunk.is_text(),
            ));
        }
        if let Some(t) = chunk.as_text() {
            // Each text chunk is UTF-8 on its own.
            assert!(std::str::from_utf8(t.as_bytes()).is_ok());
        }
        self.joined.extend_from_slice(chunk.as_bytes());
        if chunk.is_last() {
            let whole = std::mem::take(&mut self.joined);
            let reply = if chunk.is_text() {
                Message::text(String::from_utf8(whole).unwrap())
            } else {
                Message::binary(whole)
            };
            // Uncompressed, for the test client.
            let _ = ctx.send_with(reply, Compress::Never);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        self.log
            .lock()
            .unwrap()
            .events
            .push(format!("message {}", msg.len()));
        let _ = ctx.send(msg);
    }

    fn on_ping(&mut self, _ctx: &mut Context<'_>, _payload: bytes::Bytes) {
        self.log.lock().unwrap().events.push("ping".into());
    }

    fn on_error(&mut self, _ctx: &mut Context<'_>, err: Error) {
        let code = match &err {
            Error::Protocol(p) => p.close_code().0,
            _ => 0,
        };
        self.log
            .lock()
            .unwrap()
            .events
            .push(format!("error {code}"));
    }
}

fn server(config: volley::Config, own: Option<Streaming>) -> (TestServer, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    let l = log.clone();
    let s = TestServer::start(config, move |_req: &Request<'_>| {
        Upgrade::accept(Rec {
            log: l.clone(),
            joined: Vec::new(),
            own,
        })
    });
    (s, log)
}

/// Write `bytes` in pieces of `step` with a pause between, so the server reads them apart.
fn trickle(c: &mut Client, bytes: &[u8], step: usize) {
    for piece in bytes.chunks(step) {
        c.stream.write_all(piece).unwrap();
        c.stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn masked(op: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    Frame::new(op, payload)
        .with_fin(fin)
        .masked([9, 8, 7, 6])
        .encode()
        .to_vec()
}

fn text_of(len: usize) -> String {
    let words = ["hello ", "wörld ", "€uro ", "𝄞 ", "κόσμε "];
    let mut t = String::new();
    let mut i = 0;
    while t.len() < len {
        t.push_str(words[i % words.len()]);
        i += 1;
    }
    t
}

#[test]
fn text_streams_in_chunks_cut_on_code_points() {
    let (s, log) = server(config().streaming(Some(Streaming::over(1000))), None);
    let mut c = Client::connect(s.addr);
    let text = text_of(300_000);
    // One frame, written at odd offsets (7,777 bytes: code points are cut everywhere).
    trickle(&mut c, &masked(OpCode::Text, true, text.as_bytes()), 7_777);
    assert_eq!(c.recv_text(), text);
    // A small message still arrives whole.
    c.send_text("small");
    assert_eq!(c.recv_text(), "small");
    let log = log.lock().unwrap();
    let n = log.chunks.len();
    assert!(n > 5, "only {n} chunks");
    assert!(
        log.chunks[0].1 && log.chunks[n - 1].2,
        "first and last flags"
    );
    assert!(log.chunks.iter().all(|c| c.3), "text chunks");
    assert_eq!(log.chunks.iter().filter(|c| c.1).count(), 1);
    assert_eq!(log.chunks.iter().filter(|c| c.2).count(), 1);
    assert_eq!(log.events.last().unwrap(), "message 5");
    s.stop();
}

#[test]
fn invalid_utf8_in_a_late_chunk_closes_with_1007() {
    let (s, log) = server(config().streaming(Some(Streaming::over(0))), None);
    let mut c = Client::connect(s.addr);
    let mut bad = text_of(200_000).into_bytes();
    let at = bad.len() - 5;
    bad[at] = 0xff;
    trickle(&mut c, &masked(OpCode::Text, true, &bad), 20_000);
    c.expect_close_code(CloseCode::INVALID_PAYLOAD);
    let log = log.lock().unwrap();
    assert!(log.chunks.len() > 1, "chunks went out before the bad byte");
    assert!(log.chunks.iter().all(|c| !c.2), "no last chunk");
    assert_eq!(log.events.last().unwrap(), "error 1007");
    s.stop();
}

#[test]
fn control_frames_between_fragments_are_answered_in_place() {
    let (s, log) = server(config(), Some(Streaming::over(10_000)));
    let mut c = Client::connect(s.addr);
    let part = vec![5u8; 40_000];
    let mut wire = masked(OpCode::Binary, false, &part);
    wire.extend(masked(OpCode::Ping, true, b"one"));
    wire.extend(masked(OpCode::Continuation, false, &part));
    wire.extend(masked(OpCode::Ping, true, b"two"));
    wire.extend(masked(OpCode::Continuation, true, &part));
    trickle(&mut c, &wire, 30_000);
    // Pongs come back in order, before the message (echoed at its last chunk).
    let mut pongs = Vec::new();
    let msg = loop {
        match c.next() {
            Got::Pong(p) => pongs.push(p),
            Got::Msg(m) => break m,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(pongs, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(msg.len(), 120_000);
    assert!(msg.as_bytes().iter().all(|&b| b == 5));
    let log = log.lock().unwrap();
    let pings: Vec<usize> = log
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| *e == "ping")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(pings.len(), 2);
    assert!(
        pings[0] > 0 && pings[1] < log.events.len() - 1,
        "{:?}",
        log.events
    );
    s.stop();
}

#[test]
fn streaming_can_be_switched_per_connection() {
    // Off in the config: one connection turns it on for itself, the other gets whole messages
    // up to max_message_size.
    let (s, log) = server(config().max_message_size(100_000), None);
    let mut whole = Client::connect(s.addr);
    whole.send_binary(&[1; 90_000]);
    assert_eq!(whole.recv().len(), 90_000);
    whole.send_binary(&[1; 200_000]);
    whole.expect_close_code(CloseCode::TOO_BIG);
    assert!(log.lock().unwrap().chunks.is_empty());
    drop(s);

    let (s, log) = server(
        config().max_message_size(100_000),
        Some(Streaming::over(50_000)),
    );
    let mut streamed = Client::connect(s.addr);
    streamed.send_binary(&[2; 3_000_000]);
    assert_eq!(streamed.recv().len(), 3_000_000);
    assert!(log.lock().unwrap().chunks.len() > 1);
    s.stop();
}

#[test]
fn the_stream_limit_closes_with_1009() {
    let streaming = Streaming::over(0).max_size(1_000_000);
    let (s, log) = server(config().streaming(Some(streaming)), None);
    let mut c = Client::connect(s.addr);
    c.send_binary(&[3; 999_999]);
    assert_eq!(c.recv().len(), 999_999);
    // Refused from the header, before any payload.
    let frame = masked(OpCode::Binary, true, &[3; 1_000_001]);
    c.send_raw(&frame[..20]);
    c.expect_close_code(CloseCode::TOO_BIG);
    assert_eq!(log.lock().unwrap().events.last().unwrap(), "error 1009");
    s.stop();
}

/// A client compressor matching what a shared-mode server accepts (no context takeover).
fn compressed(op: OpCode, data: &[u8]) -> Vec<u8> {
    let mut c = Compressor::new({
        let mut cc = CompressorConfig::default();
        cc.no_context_takeover = true;
        cc
    });
    let mut out = Vec::new();
    c.compress(data, &mut out);
    Frame::new(op, &out)
        .compressed()
        .masked([1, 2, 3, 4])
        .encode()
        .to_vec()
}

const OFFER: (&str, &str) = ("Sec-WebSocket-Extensions", "permessage-deflate");

#[test]
fn compressed_messages_inflate_chunk_by_chunk() {
    let cfg = config()
        .deflate(DeflateMode::Shared)
        .streaming(Some(Streaming::over(100)));
    let (s, log) = server(cfg, None);
    let mut c = Client::connect_with(s.addr, "/", &[OFFER]).unwrap();
    assert!(c.response.contains("permessage-deflate"));
    let text = text_of(2_000_000);
    let wire = compressed(OpCode::Text, text.as_bytes());
    assert!(wire.len() < 200_000);
    trickle(&mut c, &wire, 8_000);
    assert_eq!(c.recv_text(), text);
    let log = log.lock().unwrap();
    // Inflated in pieces of at most 64 KiB, never the whole message at once.
    assert!(log.chunks.len() >= 2_000_000 / (64 << 10));
    assert!(log.chunks.iter().all(|c| c.0 <= 64 << 10));
    s.stop();
}

#[test]
fn a_streamed_deflate_bomb_closes_with_1009() {
    let max = 8u64 << 20;
    let cfg = config()
        .deflate(DeflateMode::Shared)
        .streaming(Some(Streaming::over(0).max_size(max)));
    let (s, log) = server(cfg, None);
    let mut c = Client::connect_with(s.addr, "/", &[OFFER]).unwrap();
    // 64 MiB of zeros in well under 1 MiB on the wire.
    let bomb = compressed(OpCode::Binary, &vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    c.send_raw(&bomb);
    c.expect_close_code(CloseCode::TOO_BIG);
    let log = log.lock().unwrap();
    let total: usize = log.chunks.iter().map(|c| c.0).sum();
    assert!(total as u64 <= max, "{total} bytes handed out");
    assert!(log.chunks.iter().all(|c| c.0 <= 64 << 10 && !c.2));
    assert_eq!(log.events.last().unwrap(), "error 1009");
    s.stop();
}
