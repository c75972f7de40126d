//! Frame-level behaviour and hostile input over real sockets: each violation gets its close code,
//! the TCP connection ends, and other clients keep being served.

mod util;

#[path = "../src/protocol/test_rng.rs"]
mod test_rng;
use test_rng::Rng;

use std::sync::mpsc;
use std::time::Duration;

use util::*;
use volley::protocol::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use volley::{CloseCode, CloseFrame, Context, Error, Handler, Message, Request, Upgrade};

#[derive(Debug)]
#[allow(dead_code)] // fields are read through Debug output in assertion messages
enum Seen {
    Open,
    Msg(Message),
    Ping,
    Error(String),
    Close(CloseFrame),
}

struct Rec(mpsc::Sender<Seen>);
impl Handler for Rec {
    fn on_open(&mut self, _: &mut Context<'_>) {
        let _ = self.0.send(Seen::Open);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg.clone());
        let _ = self.0.send(Seen::Msg(msg));
    }
    fn on_ping(&mut self, _: &mut Context<'_>, _: bytes::Bytes) {
        let _ = self.0.send(Seen::Ping);
    }
    fn on_error(&mut self, _: &mut Context<'_>, e: Error) {
        let _ = self.0.send(Seen::Error(e.to_string()));
    }
    fn on_close(&mut self, _: &mut Context<'_>, f: CloseFrame) {
        let _ = self.0.send(Seen::Close(f));
    }
}

fn server_with(cfg: volley::Config) -> (TestServer, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let s = TestServer::start(cfg, move |_r: &Request<'_>| {
        Upgrade::accept(Rec(tx.lock().unwrap().clone()))
    });
    (s, rx)
}

fn server() -> (TestServer, mpsc::Receiver<Seen>) {
    server_with(config())
}

fn wait_close(rx: &mpsc::Receiver<Seen>) -> CloseFrame {
    loop {
        match rx.recv_timeout(Duration::from_secs(10)).expect("on_close") {
            Seen::Close(f) => return f,
            _ => continue,
        }
    }
}

/// Send `bytes` raw after the upgrade and expect a close frame with `code`, then EOF.
fn violation(bytes: &[u8], code: CloseCode) {
    let (s, rx) = server();
    let mut bad = Client::connect(s.addr);
    let mut good = Client::connect(s.addr);
    bad.send_raw(bytes);
    bad.expect_close_code(code);
    bad.expect_eof();
    let f = wait_close(&rx);
    assert_eq!(f.code, code);
    good.send_text("still here");
    assert_eq!(good.recv_text(), "still here");
}

fn frame(first: u8, len: u64, mask: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; MAX_HEADER_LEN];
    let hdr = FrameHeader {
        fin: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        rsv2: first & 0x20 != 0,
        rsv3: first & 0x10 != 0,
        opcode: OpCode::Text,
        mask: mask.then_some([0, 0, 0, 0]),
        payload_len: len,
    };
    let n = hdr.encode(&mut h);
    let mut v = h[..n].to_vec();
    v[0] = first; // raw first byte, so reserved opcodes can be expressed
    v.extend_from_slice(payload);
    v
}

#[test]
fn unmasked_client_frame_is_1002() {
    violation(&frame(0x81, 2, false, b"hi"), CloseCode::PROTOCOL);
}

#[test]
fn reserved_bits_and_opcodes_are_1002() {
    violation(&frame(0xC1, 2, true, b"hi"), CloseCode::PROTOCOL); // RSV1 without deflate
    violation(&frame(0x83, 0, true, b""), CloseCode::PROTOCOL); // opcode 3
    violation(&frame(0x8B, 0, true, b""), CloseCode::PROTOCOL); // opcode 0xB
}

#[test]
fn control_frame_rules_are_1002() {
    violation(&frame(0x89, 126, true, &[0u8; 126]), CloseCode::PROTOCOL); // ping > 125
    violation(&frame(0x09, 1, true, b"x"), CloseCode::PROTOCOL); // fragmented ping
    violation(&frame(0x80, 1, true, b"x"), CloseCode::PROTOCOL); // continuation with nothing open
}

#[test]
fn length_2_pow_63_is_rejected() {
    let mut v = vec![0x82, 0xFF];
    v.extend_from_slice(&(1u64 << 63).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    violation(&v, CloseCode::PROTOCOL);
}

#[test]
fn frame_over_limit_is_1009_before_payload_arrives() {
    let (s, rx) = server_with(config().max_frame_size(1000).max_message_size(1000));
    let mut c = Client::connect(s.addr);
    c.send_raw(&frame(0x82, 1001, true, b"")); // header only: the payload never comes
    c.expect_close_code(CloseCode::TOO_BIG);
    assert_eq!(wait_close(&rx).code, CloseCode::TOO_BIG);
    // Fragments adding up past the message limit.
    let mut c = Client::connect(s.addr);
    c.send_frame(OpCode::Text, false, &[b'a'; 600]);
    c.send_frame(OpCode::Continuation, true, &[b'a'; 600]);
    c.expect_close_code(CloseCode::TOO_BIG);
    util::wait_until(5, "1009 counted", || s.handle.stats().closed_too_big == 2);
}

#[test]
fn invalid_utf8_split_across_fragments_is_1007() {
    let (s, _rx) = server();
    let mut c = Client::connect(s.addr);
    // "κόσμε" then an invalid continuation of a 3-byte sequence split across fragments.
    c.send_frame(OpCode::Text, false, "κόσμε".as_bytes());
    c.send_frame(OpCode::Continuation, false, b"\xe0");
    c.send_frame(OpCode::Continuation, true, b"\x41\x41");
    c.expect_close_code(CloseCode::INVALID_PAYLOAD);
    // A valid code point split across fragments is fine.
    let mut c = Client::connect(s.addr);
    let euro = "€".as_bytes();
    c.send_frame(OpCode::Text, false, &euro[..1]);
    c.send_frame(OpCode::Continuation, false, &euro[1..2]);
    c.send_frame(OpCode::Continuation, true, &euro[2..]);
    assert_eq!(c.recv_text(), "€");
}

#[test]
fn close_payload_rules() {
    let (s, _rx) = server();
    let mut c = Client::connect(s.addr);
    c.send_frame(OpCode::Close, true, b"\x03");
    c.expect_close_code(CloseCode::PROTOCOL);
    let mut c = Client::connect(s.addr);
    c.send_frame(OpCode::Close, true, &1005u16.to_be_bytes());
    c.expect_close_code(CloseCode::PROTOCOL);
    let mut c = Client::connect(s.addr);
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"\xff\xfe");
    c.send_frame(OpCode::Close, true, &p);
    c.expect_close_code(CloseCode::INVALID_PAYLOAD);
}

#[test]
fn clean_close_handshake() {
    let (s, rx) = server();
    let mut c = Client::connect(s.addr);
    c.send_close(4001, "bye");
    assert_eq!(c.expect_close().map(|f| f.code), Some(CloseCode(4001)));
    c.expect_eof();
    let f = wait_close(&rx);
    assert_eq!(f, CloseFrame::new(CloseCode(4001), "bye"));
    // Empty close is answered and reported as 1005.
    let mut c = Client::connect(s.addr);
    c.send_frame(OpCode::Close, true, b"");
    assert_eq!(c.expect_close(), None);
    assert_eq!(wait_close(&rx).code, CloseCode::NO_STATUS);
}

#[test]
fn abrupt_disconnect_is_1006() {
    let (s, rx) = server();
    let c = Client::connect(s.addr);
    drop(c);
    assert_eq!(wait_close(&rx).code, CloseCode::ABNORMAL);
}

#[test]
fn pings_get_pongs_between_fragments() {
    let (s, _rx) = server();
    let mut c = Client::connect(s.addr);
    c.send_frame(OpCode::Text, false, b"frag");
    c.send_frame(OpCode::Ping, true, b"are you there");
    assert_eq!(c.next(), Got::Pong(b"are you there".to_vec()));
    c.send_frame(OpCode::Continuation, true, b"ment");
    assert_eq!(c.recv_text(), "fragment");
}

#[test]
fn masked_frame_split_at_every_byte_boundary() {
    let (s, _rx) = server();
    let mut c = Client::connect(s.addr);
    c.stream.set_nodelay(true).unwrap();
    let payload: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let f = volley::protocol::frame::Frame::binary(&payload)
        .masked([9, 8, 7, 6])
        .encode();
    for split in [1usize, 2, 3, 5, 7, 13, 150] {
        for chunk in f.chunks(split) {
            c.send_raw(chunk);
            std::thread::sleep(Duration::from_micros(50));
        }
        assert_eq!(c.recv(), Message::binary(payload.clone()), "split {split}");
    }
}

#[test]
fn garbage_does_not_disturb_others() {
    let (s, _rx) = server();
    let mut good = Client::connect(s.addr);
    let mut rng = Rng(0x1234_5678);
    for _ in 0..20 {
        let mut bad = Client::connect(s.addr);
        let mut junk = vec![0u8; 512];
        rng.fill(&mut junk);
        bad.send_raw(&junk);
        good.send_text("ping-pong");
        assert_eq!(good.recv_text(), "ping-pong");
    }
    // Garbage before any handshake.
    let r = raw_request(
        s.addr,
        &[0xde, 0xad, 0xbe, 0xef, b'\r', b'\n', b'\r', b'\n'],
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    good.send_text("still fine");
    assert_eq!(good.recv_text(), "still fine");
}

#[test]
fn large_fragmented_message_round_trips() {
    let (s, _rx) = server();
    let mut c = Client::connect(s.addr);
    let text = "x".repeat(3 << 20);
    for (i, chunk) in text.as_bytes().chunks(100_000).enumerate() {
        let op = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        let last = (i + 1) * 100_000 >= text.len();
        c.send_frame(op, last, chunk);
    }
    assert_eq!(c.recv_text().len(), text.len());
}

#[test]
fn ping_flood_without_reading_meets_the_outbound_limit() {
    // 64 KiB limit; 125-byte pings whose pongs the client never reads.
    let (s, rx) = server_with(config().max_outbound_bytes(64 << 10));
    let mut flood = Client::connect(s.addr);
    let mut good = Client::connect(s.addr);
    let ping = volley::protocol::frame::Frame::ping(&[7u8; 125])
        .masked([1, 2, 3, 4])
        .encode();
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    // Keep sending until the server gives up on us (the socket errors once it is dropped).
    for _ in 0..2000 {
        if std::io::Write::write_all(&mut flood.stream, &burst).is_err() {
            break;
        }
        if s.handle.stats().slow_consumers_closed > 0 {
            break;
        }
    }
    util::wait_until(20, "slow consumer closed", || {
        s.handle.stats().slow_consumers_closed == 1
    });
    let f = wait_close(&rx);
    assert!(
        f.code == CloseCode::ABNORMAL || f.code == CloseCode::POLICY,
        "{f:?}"
    );
    good.send_text("fine");
    assert_eq!(good.recv_text(), "fine");
}

/// Large frames whose rest is read straight into their own buffer (not through the worker's
/// read block) arrive byte for byte, however the sender splits them, and frames after them in
/// the same stream are not lost.
#[test]
fn large_frames_trickling_in_arrive_intact() {
    let (s, _rx) = server();
    let mut c = Client::connect(s.addr);
    let mut payload = vec![0u8; 300_000];
    Rng(0x2545_f491_4f6c_dd1d).fill(&mut payload);
    let mut bytes = frame(0x82, payload.len() as u64, true, &payload);
    bytes.extend(frame(0x81, 5, true, b"after"));
    bytes.extend(frame(0x82, 70_000, true, &payload[..70_000]));
    // Odd-sized pieces with pauses, so the server sees the frames over many reads, some ending
    // mid-header.
    for piece in bytes.chunks(37_001) {
        c.send_raw(piece);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.recv(), Message::Binary(payload.clone().into()));
    assert_eq!(c.recv_text(), "after");
    assert_eq!(c.recv(), Message::Binary(payload[..70_000].to_vec().into()));
}
