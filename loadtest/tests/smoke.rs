//! Smoke tests of the loadtest binary over real loopback sockets: a minimal echo server of its own
//! (thread per connection, std::net), and volley's runtime for broadcast across two client
//! processes. Short and bounded: each run is 1–2 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

use volley::protocol::frame::{Frame, FrameHeader, OpCode, MAX_HEADER_LEN};
use volley::protocol::handshake::accept_key;
use volley::protocol::mask::apply_mask;
use volley::{Config, Context, Handler, Message, Request, Server, Upgrade};

const BIN: &str = env!("CARGO_BIN_EXE_volley-loadtest");

/// Serve one connection: the upgrade, then echo data frames, answer pings, close on close.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    let mut key = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("sec-websocket-key") {
                key = value.trim().to_string();
            }
        }
        if line == "\r\n" {
            break;
        }
    }
    write!(
        w,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    )?;
    // Every scenario must answer pings: one per connection, right after the upgrade.
    w.write_all(&[0x89, 0x02, b'h', b'i'])?;
    let mut head = [0u8; MAX_HEADER_LEN];
    let mut payload = Vec::new();
    loop {
        // Read the 2 fixed bytes, then as many more as the header needs.
        r.read_exact(&mut head[..2])?;
        let mut have = 2;
        let (h, _) = loop {
            match FrameHeader::decode(&head[..have]).expect("valid frame") {
                Some(x) => break x,
                None => {
                    r.read_exact(&mut head[have..have + 1])?;
                    have += 1;
                }
            }
        };
        payload.resize(h.payload_len as usize, 0);
        r.read_exact(&mut payload)?;
        if let Some(m) = h.mask {
            apply_mask(&mut payload, m, 0);
        }
        let reply = match h.opcode {
            OpCode::Ping => OpCode::Pong,
            // A wrong pong ends the connection, which the client counts as an error.
            OpCode::Pong if payload == b"hi" => continue,
            OpCode::Pong => return Ok(()),
            op => op,
        };
        w.write_all(&Frame::new(reply, &payload).encode())?;
        if h.opcode == OpCode::Close {
            return Ok(());
        }
    }
}

fn minimal_echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn echo_200_connections_against_a_minimal_server() {
    let port = minimal_echo_server();
    let dir = std::env::temp_dir().join(format!("loadtest-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("echo.json");
    let svg = dir.join("echo.svg");
    let out = Command::new(BIN)
        .args([
            "echo",
            &format!("ws://127.0.0.1:{port}/"),
            "-c",
            "200",
            "-d",
            "2s",
            "-w",
            "2",
            "-s",
            "100",
            "-q",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&json);
    let c = &r["counters"];
    assert_eq!(c["established"], 200, "{stdout}");
    assert_eq!(c["errors"], 0, "{stdout}");
    assert_eq!(c["mismatched"], 0);
    assert_eq!(c["unanswered"], 0);
    assert_eq!(c["sent"], c["received"]);
    assert_eq!(
        c["pings"], 200,
        "every connection answers the server's ping"
    );
    assert!(c["window_received"].as_u64().unwrap() > 200, "{stdout}");
    assert!(r["rtt"]["count"].as_u64().unwrap() > 0);
    assert!(r["derived"]["messages_per_s"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
    assert!(stdout.contains("round trip"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

struct Member;

impl Handler for Member {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("room");
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        ctx.publish("room", msg);
    }
}

#[test]
fn broadcast_across_two_client_processes_against_volley() {
    let server = Server::builder()
        .config(Config::default().workers(1))
        .bind("127.0.0.1:0")
        .start(|_req: &Request<'_>| Upgrade::accept(Member))
        .unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    let t = std::thread::spawn(move || server.run());
    let json = std::env::temp_dir().join(format!("loadtest-bcast-{}.json", std::process::id()));
    let out = Command::new(BIN)
        .args([
            "broadcast",
            &format!("ws://{addr}/"),
            "-c",
            "200",
            "--processes",
            "2",
            "--publishers",
            "4",
        ])
        .args([
            "-r",
            "200",
            "-d",
            "1s",
            "--grace",
            "1s",
            "-q",
            "--server-pid",
            &std::process::id().to_string(),
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    handle.shutdown();
    let _ = t.join();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(r["params"]["processes"], 2);
    assert_eq!(r["counters"]["established"], 200, "{stdout}");
    assert_eq!(r["counters"]["errors"], 0, "{stdout}");
    let published = r["counters"]["published"].as_u64().unwrap();
    assert!(published > 0);
    assert_eq!(
        r["derived"]["expected_deliveries"].as_u64().unwrap(),
        published * 200
    );
    assert_eq!(r["derived"]["lost"], 0, "{stdout}");
    assert_eq!(r["counters"]["out_of_order"], 0);
    assert!(r["server"]["connected"]["rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn refuses_non_loopback_targets() {
    let out = Command::new(BIN)
        .args(["echo", "ws://10.1.2.3:9001/", "-c", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
}
