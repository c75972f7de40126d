//! permessage-deflate over real sockets: negotiation per mode, the threshold, round trips of
//! small and large messages, context takeover, compressed publish to mixed subscribers, and the
//! decompression-bomb cap.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use util::*;
use volley::protocol::deflate::{Compressor, CompressorConfig, Decompressor};
use volley::protocol::frame::Frame;
use volley::protocol::handshake;
use volley::protocol::reader::{Event, Reader, ReaderConfig, Role};
use volley::{
    CloseCode, Compress, Config, Context, DeflateMode, DeflateWindow, Handler, Message, Request,
    Upgrade,
};

struct Echo;
impl Handler for Echo {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("all");
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if let Some(t) = msg.as_text().and_then(|t| t.strip_prefix("publish:")) {
            ctx.publish("all", t.to_string());
            return;
        }
        // "fragments:<text>": <text> back in three fragments, then a whole message.
        if let Some(t) = msg.as_text().and_then(|t| t.strip_prefix("fragments:")) {
            let third = t.len() / 3;
            ctx.send_text_fragment(&t[..third], false).unwrap();
            ctx.send_text_fragment(&t[third..2 * third], false).unwrap();
            ctx.send_text_fragment(&t[2 * third..], true).unwrap();
            let _ = ctx.send("after");
            return;
        }
        // Per-message control: "<how>:<text>" sends <text> back compressed as <how> says, from
        // the context, from a handle, or as a publish.
        let how = |s: &str| match s {
            "always" => Compress::Always,
            "never" => Compress::Never,
            _ => Compress::Auto,
        };
        if let Some((cmd, text)) = msg.as_text().and_then(|t| t.split_once(':')) {
            match cmd.split_once('-') {
                Some((h, "send")) => drop(ctx.send_with(text.to_string(), how(h))),
                Some((h, "handle")) => drop(ctx.handle().send_with(text.to_string(), how(h))),
                Some((h, "publish")) => ctx.publish_with("all", text.to_string(), how(h)),
                _ => drop(ctx.send(msg)),
            }
            return;
        }
        let _ = ctx.send(msg);
    }
}

fn server(cfg: Config) -> TestServer {
    TestServer::start(cfg, |_r: &Request<'_>| Upgrade::accept(Echo))
}

/// A client that offers permessage-deflate and compresses what it sends.
struct Dc {
    s: TcpStream,
    buf: BytesMut,
    reader: Reader,
    cfg: ReaderConfig,
    ext: Option<String>,
    comp: Compressor,
    decomp: Decompressor,
    /// Whether the last message received was compressed.
    last_compressed: bool,
}

impl Dc {
    fn connect(addr: std::net::SocketAddr, offer: Option<&str>) -> Dc {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let key = handshake::generate_key();
        let mut req = Vec::new();
        let extra: Vec<(String, String)> = offer
            .map(|o| vec![("Sec-WebSocket-Extensions".into(), o.into())])
            .unwrap_or_default();
        handshake::write_client_request(&mut req, "localhost", "/", &key, &extra);
        s.write_all(&req).unwrap();
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 4096];
        let (n, ext) = loop {
            if let Some(r) = handshake::parse_response(&buf, &key).unwrap() {
                break r;
            }
            let k = s.read(&mut chunk).unwrap();
            assert!(k > 0);
            buf.extend_from_slice(&chunk[..k]);
        };
        let _ = buf.split_to(n);
        let mut reader = Reader::new();
        reader.set_compression(ext.is_some());
        let server_nct = ext
            .as_deref()
            .is_some_and(|e| e.contains("server_no_context_takeover"));
        let client_nct = ext
            .as_deref()
            .is_some_and(|e| e.contains("client_no_context_takeover"));
        let mut cc = CompressorConfig::default();
        cc.no_context_takeover = client_nct;
        // The window the server allowed us, if it limited it.
        if let Some(bits) = ext.as_deref().and_then(|e| {
            e.split(';')
                .filter_map(|p| p.trim().strip_prefix("client_max_window_bits="))
                .find_map(|v| v.parse().ok())
        }) {
            cc.window_bits = bits;
        }
        Dc {
            s,
            buf,
            reader,
            cfg: ReaderConfig {
                role: Role::Client,
                max_frame_size: 1 << 30,
                max_message_size: 1 << 30,
            },
            ext,
            comp: Compressor::new(cc),
            decomp: Decompressor::new(15, server_nct),
            last_compressed: false,
        }
    }

    fn send(&mut self, text: &str) {
        self.send_compressed_text(text.as_bytes());
    }

    /// Compress `bytes` and send them as a text message (valid UTF-8 or not).
    fn send_compressed_text(&mut self, bytes: &[u8]) {
        let mut out = Vec::new();
        self.comp.compress(bytes, &mut out);
        let frame = Frame::text(&out).compressed().masked([1, 2, 3, 4]).encode();
        self.s.write_all(&frame).unwrap();
    }

    fn send_raw_compressed(&mut self, payload: &[u8]) {
        self.s
            .write_all(
                &Frame::binary(payload)
                    .compressed()
                    .masked([5, 6, 7, 8])
                    .encode(),
            )
            .unwrap();
    }

    fn next(&mut self) -> Event {
        let mut chunk = vec![0u8; 65536];
        loop {
            if let Some(ev) = self.reader.read(&mut self.buf, &self.cfg).unwrap() {
                return ev;
            }
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "eof");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn recv_text(&mut self) -> String {
        match self.next() {
            Event::Message(m) => {
                self.last_compressed = false;
                m.as_text().unwrap().to_string()
            }
            Event::Compressed {
                text: true,
                payload,
            } => {
                self.last_compressed = true;
                let b = self.decomp.decompress(&payload, 1 << 30).unwrap();
                String::from_utf8(b.to_vec()).unwrap()
            }
            other => panic!("{other:?}"),
        }
    }
}

const OFFER: &str = "permessage-deflate; client_max_window_bits";

fn chatty(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(r#"{"type":"chat","room":"lobby","user":"alice","text":"hello everyone, how are you?"}"#);
    }
    s.truncate(n);
    s
}

#[test]
fn shared_mode_negotiates_no_context_takeover_both_ways() {
    let s = server(config());
    let c = Dc::connect(s.addr, Some(OFFER));
    let ext = c.ext.unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    assert!(ext.contains("server_no_context_takeover"), "{ext}");
    assert!(ext.contains("client_no_context_takeover"), "{ext}");
}

#[test]
fn off_mode_declines_and_rsv1_is_a_protocol_error() {
    let s = server(config().deflate(DeflateMode::Off));
    let mut c = Dc::connect(s.addr, Some(OFFER));
    assert_eq!(c.ext, None);
    c.send_raw_compressed(b"\x02\x00");
    match c.next() {
        Event::Close(Some(f)) => assert_eq!(f.code, CloseCode::PROTOCOL),
        other => panic!("{other:?}"),
    }
}

fn round_trips(mode: DeflateMode) {
    let s = server(config().deflate(mode).compression_threshold(100));
    let mut c = Dc::connect(s.addr, Some(OFFER));
    assert!(c.ext.is_some());
    for (len, compressed) in [
        (10, false),
        (99, false),
        (100, true),
        (5000, true),
        (70_000, true),
    ] {
        for _ in 0..3 {
            let text = chatty(len);
            c.send(&text);
            assert_eq!(c.recv_text(), text);
            assert_eq!(c.last_compressed, compressed, "len {len}");
        }
    }
    c.send("");
    assert_eq!(c.recv_text(), "");
    let st = s.handle.stats();
    assert_eq!(st.compressed_in, 16);
    assert_eq!(st.compressed_out, 9);
}

/// A message sent in fragments is compressed as one DEFLATE stream across them (RSV1 on the
/// first), in both modes, and the compression context goes on to the next message.
#[test]
fn fragmented_sends_are_compressed_as_one_message() {
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let s = server(config().deflate(mode).compression_threshold(10));
        let mut c = Dc::connect(s.addr, Some(OFFER));
        for round in 0..3 {
            let text = chatty(30_000 + round);
            c.send(&format!("fragments:{text}"));
            assert_eq!(c.recv_text(), text, "{mode:?} round {round}");
            assert!(c.last_compressed, "{mode:?}");
            assert_eq!(c.recv_text(), "after");
        }
        // Under the threshold: plain fragments.
        c.send("fragments:abc");
        assert_eq!(c.recv_text(), "abc");
        assert!(!c.last_compressed);
    }
}

#[test]
fn shared_mode_round_trips_and_respects_threshold() {
    round_trips(DeflateMode::Shared);
}

#[test]
fn dedicated_mode_round_trips_with_context_takeover() {
    let s = server(config().deflate(DeflateMode::Dedicated));
    let c = Dc::connect(s.addr, Some(OFFER));
    assert!(
        !c.ext.as_deref().unwrap().contains("no_context_takeover"),
        "{:?}",
        c.ext
    );
    drop(c);
    round_trips(DeflateMode::Dedicated);
}

#[test]
fn compressed_publish_reaches_plain_and_deflate_subscribers() {
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let s = server(config().deflate(mode).compression_threshold(0));
        let mut d1 = Dc::connect(s.addr, Some(OFFER));
        let mut d2 = Dc::connect(s.addr, Some("permessage-deflate"));
        let mut plain = Dc::connect(s.addr, None);
        wait_until(5, "subscribed", || s.handle.subscriber_count("all") == 3);
        for i in 0..5 {
            let text = format!("publish:{}", chatty(2000 + i));
            d1.send(&text);
            let want = &text["publish:".len()..];
            assert_eq!(d1.recv_text(), want);
            assert!(d1.last_compressed);
            assert_eq!(d2.recv_text(), want);
            assert_eq!(plain.recv_text(), want);
            assert!(!plain.last_compressed);
        }
    }
}

#[test]
fn deflate_bomb_is_cut_at_the_message_limit() {
    let s = server(config().max_message_size(1 << 20));
    let mut c = Dc::connect(s.addr, Some(OFFER));
    // 64 MiB of zeros deflate to ~64 KiB at level 9: a bomb with a 1000:1 ratio.
    let zeros = vec![0u8; 64 << 20];
    let mut cc = CompressorConfig::default();
    cc.level = 9;
    let mut comp = Compressor::new(cc);
    let mut payload = Vec::new();
    comp.compress(&zeros, &mut payload);
    drop(zeros);
    assert!(payload.len() < 1 << 20, "{}", payload.len());
    let rss_before = rss_kib();
    c.send_raw_compressed(&payload);
    match c.next() {
        Event::Close(Some(f)) => assert_eq!(f.code, CloseCode::TOO_BIG),
        other => panic!("{other:?}"),
    }
    let grew = rss_kib().saturating_sub(rss_before);
    assert!(
        grew < 64 << 10,
        "server memory grew by {grew} KiB inflating a bomb"
    );
    wait_until(5, "1009 counted", || s.handle.stats().closed_too_big == 1);
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn corrupt_compressed_data_is_1002_and_bad_utf8_is_1007() {
    let s = server(config());
    let mut c = Dc::connect(s.addr, Some(OFFER));
    c.send_raw_compressed(&[0xff, 0xff, 0xff, 0xff, 0x00]);
    match c.next() {
        Event::Close(Some(f)) => assert_eq!(f.code, CloseCode::PROTOCOL),
        other => panic!("{other:?}"),
    }
    let mut c = Dc::connect(s.addr, Some(OFFER));
    c.send_compressed_text(b"\xff\xfe invalid");
    match c.next() {
        Event::Close(Some(f)) => assert_eq!(f.code, CloseCode::INVALID_PAYLOAD),
        other => panic!("{other:?}"),
    }
}

/// `send_with`, `ConnHandle::send_with` and `publish_with` decide compression per message,
/// whatever the threshold: RSV1 on the wire says which, in both modes.
#[test]
fn per_message_compression_is_seen_on_the_wire() {
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let s = server(config().deflate(mode).compression_threshold(1000));
        let mut c = Dc::connect(s.addr, Some(OFFER));
        let mut plain = Dc::connect(s.addr, None);
        wait_until(5, "subscribed", || s.handle.subscriber_count("all") == 2);
        let small = "a small message";
        let large = chatty(3000);
        for via in ["send", "handle", "publish"] {
            for (how, text, compressed) in [
                ("always", small, true),
                ("never", large.as_str(), false),
                ("auto", small, false),
                ("auto", large.as_str(), true),
            ] {
                c.send(&format!("{how}-{via}:{text}"));
                assert_eq!(c.recv_text(), text, "{mode:?} {how} {via}");
                assert_eq!(c.last_compressed, compressed, "{mode:?} {how} {via}");
                if via == "publish" {
                    assert_eq!(plain.recv_text(), text);
                    assert!(!plain.last_compressed);
                }
            }
        }
    }
}

/// `dedicated_deflate` announces the two windows, and context takeover works through them.
#[test]
fn dedicated_presets_announce_their_windows_and_round_trip() {
    for (ours, theirs) in [
        (DeflateWindow::B512, DeflateWindow::K4),
        (DeflateWindow::K32, DeflateWindow::B512),
        (DeflateWindow::K4, DeflateWindow::K32),
    ] {
        let s = server(
            config()
                .dedicated_deflate(ours, theirs)
                .compression_threshold(0),
        );
        let mut c = Dc::connect(s.addr, Some(OFFER));
        let ext = c.ext.clone().unwrap();
        if ours.bits() < 15 {
            assert!(
                ext.contains(&format!("server_max_window_bits={}", ours.bits())),
                "{ext}"
            );
        }
        if theirs.bits() < 15 {
            assert!(
                ext.contains(&format!("client_max_window_bits={}", theirs.bits())),
                "{ext}"
            );
        }
        assert!(!ext.contains("no_context_takeover"), "{ext}");
        for i in 0..50 {
            let text = chatty(80 + i * 37);
            c.send(&text);
            assert_eq!(c.recv_text(), text, "{ours:?}/{theirs:?} message {i}");
            assert!(c.last_compressed);
        }
        // A client that does not offer client_max_window_bits keeps its 15.
        let mut c = Dc::connect(s.addr, Some("permessage-deflate"));
        assert!(!c.ext.as_deref().unwrap().contains("client_max_window_bits"));
        for i in 0..10 {
            let text = chatty(200 + i * 500);
            c.send(&text);
            assert_eq!(c.recv_text(), text);
        }
    }
}

/// An idle connection's compressor is released down to its window and the stream goes on
/// where it was: the client's one decompressor reads every later message.
#[test]
fn idle_compressors_are_released_and_the_stream_continues() {
    let s = server(
        config()
            .dedicated_deflate(DeflateWindow::K4, DeflateWindow::K4)
            .compression_threshold(0)
            .ping_interval(None)
            .deflate_idle_release(Some(Duration::from_millis(200))),
    );
    let mut c = Dc::connect(s.addr, Some(OFFER));
    for round in 1..=3u64 {
        for i in 0..5 {
            let text = chatty(100 + i * 50);
            c.send(&text);
            assert_eq!(c.recv_text(), text, "round {round}");
            assert!(c.last_compressed);
        }
        wait_until(5, "the idle compressor released", || {
            s.handle.stats().deflate_released == round
        });
    }
    // Nothing is released while messages keep coming.
    let released = s.handle.stats().deflate_released;
    for _ in 0..8 {
        c.send(&chatty(300));
        assert_eq!(c.recv_text(), chatty(300));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.handle.stats().deflate_released, released);
}
