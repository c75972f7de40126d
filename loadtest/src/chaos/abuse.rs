//! The abusive clients of the chaos scenario: each behaviour is one function that opens its own
//! connection(s), misbehaves and leaves. None of them checks the server's answer beyond not
//! hanging: what matters is that the healthy clients and the server are unaffected.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use volley::protocol::deflate::{Compressor, CompressorConfig};
use volley::protocol::frame::{Frame, FrameHeader, OpCode};

use super::client::{request, Ws, MASK};
use super::test_rng::Rng;

/// One abusive behaviour against the server at the address.
pub type Behaviour = fn(SocketAddr, &Bomb);

/// Every behaviour, by name.
pub const BEHAVIOURS: &[(&str, Behaviour)] = &[
    ("cut mid-handshake", cut_mid_handshake),
    ("cut mid-frame", cut_mid_frame),
    ("half-open", half_open),
    ("slow reader", slow_reader),
    ("ping flood", ping_flood),
    ("oversized frame", oversized_frame),
    ("invalid frames", invalid_frames),
    ("deflate bomb", deflate_bomb),
    ("connect burst", connect_burst),
    ("garbage", garbage),
];

/// A permessage-deflate payload that inflates to 128 MiB of zeros (about 128 KiB compressed),
/// made once.
pub struct Bomb(pub Vec<u8>);

impl Bomb {
    pub fn new() -> Bomb {
        let mut config = CompressorConfig::default();
        config.level = 9;
        let mut c = Compressor::new(config);
        let mut out = Vec::new();
        c.compress(&vec![0u8; 128 << 20], &mut out);
        Bomb(out)
    }
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    Some(s)
}

fn upgraded(addr: SocketAddr, path: &str) -> Option<Ws> {
    Ws::connect(addr, path, &[]).ok()
}

/// Read until the server closes (or 5 s pass).
fn drain(s: &mut TcpStream) {
    let mut b = [0u8; 16 << 10];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

fn cut_mid_handshake(addr: SocketAddr, _: &Bomb) {
    if let Some(mut s) = connect(addr) {
        let (req, _) = request(addr, "/", &[]);
        let _ = s.write_all(&req[..req.len() / 2]);
    }
}

fn cut_mid_frame(addr: SocketAddr, _: &Bomb) {
    if let Some(mut ws) = upgraded(addr, "/") {
        let mut f = Vec::new();
        Frame::binary(&[7u8; 10_000])
            .masked(MASK)
            .encode_into(&mut f);
        let _ = ws.stream.write_all(&f[..4_321]);
    }
}

fn half_open(addr: SocketAddr, _: &Bomb) {
    if let Some(mut ws) = upgraded(addr, "/") {
        let _ = ws.send(OpCode::Text, b"and now I stop writing");
        let _ = ws.stream.shutdown(Shutdown::Write);
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn slow_reader(addr: SocketAddr, _: &Bomb) {
    // In the broadcast room, asking for echoes of 64 KiB messages, never reading.
    if let Some(mut ws) = upgraded(addr, "/room") {
        let big = vec![b'x'; 64 << 10];
        for _ in 0..16 {
            if ws.send(OpCode::Binary, &big).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn ping_flood(addr: SocketAddr, _: &Bomb) {
    if let Some(mut ws) = upgraded(addr, "/") {
        let mut f = Vec::new();
        for _ in 0..2000 {
            Frame::ping(b"are you there?")
                .masked(MASK)
                .encode_into(&mut f);
        }
        let _ = ws.stream.write_all(&f);
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn oversized_frame(addr: SocketAddr, _: &Bomb) {
    if let Some(mut ws) = upgraded(addr, "/") {
        let mut h = [0u8; 14];
        let n = FrameHeader::new(OpCode::Binary, 1 << 40)
            .masked(MASK)
            .encode(&mut h);
        let _ = ws.stream.write_all(&h[..n]);
        let _ = ws.stream.write_all(&[0u8; 4096]);
        drain(&mut ws.stream);
    }
}

fn invalid_frames(addr: SocketAddr, _: &Bomb) {
    let bad: [&[u8]; 4] = [
        &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], // unmasked
        &[0x83, 0x80, 1, 2, 3, 4],                   // reserved opcode
        &[0x89, 0xfe, 0, 200, 1, 2, 3, 4],           // control frame over 125 bytes
        &[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28],       // invalid UTF-8
    ];
    for b in bad {
        if let Some(mut ws) = upgraded(addr, "/") {
            let _ = ws.stream.write_all(b);
            drain(&mut ws.stream);
        }
    }
}

fn deflate_bomb(addr: SocketAddr, bomb: &Bomb) {
    let ext = [(
        "Sec-WebSocket-Extensions".to_string(),
        "permessage-deflate".to_string(),
    )];
    if let Ok(mut ws) = Ws::connect(addr, "/", &ext) {
        let mut f = Vec::with_capacity(bomb.0.len() + 14);
        Frame::binary(&bomb.0)
            .compressed()
            .masked(MASK)
            .encode_into(&mut f);
        let _ = ws.stream.write_all(&f);
        drain(&mut ws.stream);
    }
}

fn connect_burst(addr: SocketAddr, _: &Bomb) {
    let socks: Vec<Ws> = (0..200).filter_map(|_| upgraded(addr, "/")).collect();
    for ws in socks {
        drop(ws); // most without a close frame
    }
}

fn garbage(addr: SocketAddr, _: &Bomb) {
    if let Some(mut s) = connect(addr) {
        let mut junk = vec![0u8; 3000];
        Rng(0x9e37_79b9_7f4a_7c15).fill(&mut junk);
        let _ = s.write_all(&junk);
        drain(&mut s);
    }
}
