//! How long a recovery takes (issue 26): a server whose topic `room` keeps a history in memory,
//! 1,000 publications made while no client is there, then a client subscribes from the position
//! before them (`Since::After`) and the time from its subscribe command to the last byte of the
//! 1,000th recovered message is taken; 8 rounds after a warm-up, median, min and max printed.
//!
//! Run: `cargo run --release --example recovery-harness`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use volley::protocol::frame::Frame;
use volley::protocol::handshake;
use volley::{
    Context, Handler, HistoryOptions, Message, Request, Server, Since, StreamPosition, Upgrade,
};

const MISSED: u64 = 1000;

/// A text command `OFFSET EPOCH` subscribes from that position.
struct Resume;

impl Handler for Resume {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let text = msg.as_text().unwrap_or_default().to_string();
        if let Some((offset, epoch)) = text.split_once(' ') {
            let offset = offset.parse().unwrap_or(0);
            let epoch = epoch.to_string();
            ctx.subscribe_stream("room", Since::After(StreamPosition { offset, epoch }));
        }
    }
}

/// Connect and upgrade; the stream after the 101.
fn connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let key = handshake::generate_key();
    let mut req = Vec::new();
    handshake::write_client_request(&mut req, &addr.to_string(), "/", &key, &[]);
    s.write_all(&req).expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("101");
        head.push(byte[0]);
    }
    s
}

/// One round: publish `MISSED` messages, resume from before them, time until the last arrives.
fn round(addr: SocketAddr, h: &volley::ServerHandle) -> Duration {
    let body = "y".repeat(40);
    let build = |p: &StreamPosition| Message::text(format!("{} {body}", p.offset));
    let first = h
        .publish_stream("room", build)
        .expect("room keeps a history");
    for _ in 1..MISSED {
        h.publish_stream("room", build);
    }
    let mut s = connect(addr);
    let cmd = format!("{} {}", first.offset - 1, first.epoch);
    let cmd = Frame::text(cmd.as_bytes()).masked([1, 2, 3, 4]).encode();
    let last = format!("{} {body}", first.offset + MISSED - 1);
    let (mut buf, mut got) = (vec![0u8; 1 << 20], Vec::new());
    let t0 = Instant::now();
    s.write_all(&cmd).expect("subscribe");
    while !got.ends_with(last.as_bytes()) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed");
        got.extend_from_slice(&buf[..n]);
    }
    t0.elapsed()
}

fn main() {
    let keep = HistoryOptions::new(100_000, Duration::from_secs(600));
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .history("room", keep)
        .start(|_r: &Request<'_>| Upgrade::accept(Resume))
        .expect("start");
    let (addr, h) = (server.local_addr(), server.handle());
    std::thread::spawn(move || server.run());
    round(addr, &h);
    let mut times: Vec<Duration> = (0..8).map(|_| round(addr, &h)).collect();
    times.sort();
    println!(
        "recovery of {MISSED} missed publications (in memory): median {:?}, min {:?}, max {:?}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    h.shutdown();
}
