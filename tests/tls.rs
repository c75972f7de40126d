//! wss:// over real sockets (feature `tls`): a rustls client against TLS listeners beside a plain
//! one; ECDSA (made here by rcgen, under a test CA) and RSA (tests/fixtures) certificates; SNI;
//! a certificate reload seen by new clients while an old connection keeps echoing; and bad input
//! on the TLS port (plaintext HTTP, garbage, a truncated ClientHello, a stalled handshake, a
//! name the certificate does not cover), each closing only its own connection.
#![cfg(feature = "tls")]

#[path = "../src/protocol/test_rng.rs"]
mod test_rng;
mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use util::*;
use volley::protocol::frame::Frame;
use volley::protocol::handshake;
use volley::protocol::reader::{Event, Reader, ReaderConfig, Role};
use volley::{Context, Handler, Message, Request, Server, ServerHandle, TlsConfig, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

/// A test CA and leaf certificates it signs (ECDSA P-256).
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "volley test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `names`.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        client_config(roots)
    }
}

fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

use rustls::pki_types::pem::PemObject;

fn tls_config(ca: &Ca) -> TlsConfig {
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"]);
    TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
}

struct Servers {
    handle: ServerHandle,
    plain: SocketAddr,
    tls: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(tls: TlsConfig, cfg: volley::Config) -> Servers {
    let server = Server::builder()
        .config(cfg)
        .bind("127.0.0.1:0")
        .bind_tls("127.0.0.1:0", tls)
        .start(|_r: &Request<'_>| Upgrade::accept(Echo))
        .unwrap();
    let addrs = server.local_addrs();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    Servers {
        handle,
        plain: addrs[0],
        tls: addrs[1],
        thread: Some(thread),
    }
}

/// A blocking WebSocket client over any stream.
struct Ws<S: Read + Write> {
    s: S,
    buf: BytesMut,
    reader: Reader,
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = ClientConnection::new(config, ServerName::try_from(name.to_string()).unwrap())
        .map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    // Drive the handshake to completion (errors show here).
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

impl<S: Read + Write> Ws<S> {
    fn upgrade(mut s: S) -> Ws<S> {
        let key = handshake::generate_key();
        let mut req = Vec::new();
        handshake::write_client_request(&mut req, "localhost", "/", &key, &[]);
        s.write_all(&req).unwrap();
        s.flush().unwrap();
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 4096];
        let n = loop {
            if let Some((n, _)) = handshake::parse_response(&buf, &key).unwrap() {
                break n;
            }
            let k = s.read(&mut chunk).unwrap();
            assert!(k > 0, "eof during the upgrade");
            buf.extend_from_slice(&chunk[..k]);
        };
        let _ = buf.split_to(n);
        Ws {
            s,
            buf,
            reader: Reader::new(),
        }
    }

    fn send(&mut self, frame: Frame<'_>) {
        self.s
            .write_all(&frame.masked([1, 2, 3, 4]).encode())
            .unwrap();
        self.s.flush().unwrap();
    }

    fn next(&mut self) -> Event {
        let cfg = ReaderConfig {
            role: Role::Client,
            max_frame_size: 1 << 30,
            max_message_size: 1 << 30,
        };
        let mut chunk = vec![0u8; 65536];
        loop {
            if let Some(ev) = self.reader.read(&mut self.buf, &cfg).unwrap() {
                return ev;
            }
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "eof");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn echo(&mut self, payload: &[u8]) {
        self.send(Frame::binary(payload));
        match self.next() {
            Event::Message(m) => assert_eq!(m.as_bytes(), payload),
            other => panic!("{other:?}"),
        }
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn wss_and_ws_side_by_side() {
    let ca = Ca::new();
    let s = start(tls_config(&ca), config());
    let mut secure = Ws::upgrade(tls_connect(s.tls, ca.client(), "localhost").unwrap());
    let mut plain = Ws::upgrade(TcpStream::connect(s.plain).unwrap());
    for n in [0, 1, 125, 126, 20_000, 70_000, 1 << 20] {
        secure.echo(&pattern(n));
        plain.echo(&pattern(n));
    }
    secure.send(Frame::text(b"hello over tls"));
    match secure.next() {
        Event::Message(m) => assert_eq!(m.as_text(), Some("hello over tls")),
        other => panic!("{other:?}"),
    }
    // The 101 and everything after it went through TLS: ALPN said http/1.1.
    assert_eq!(secure.s.conn.alpn_protocol(), None); // the client offered none
    assert_eq!(s.handle.stats().tls_errors, 0);
}

#[test]
fn rsa_certificates_and_sni() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let rsa = TlsConfig::from_pem_files(
        format!("{dir}/tests/fixtures/rsa-2048.crt"),
        format!("{dir}/tests/fixtures/rsa-2048.key"),
    )
    .unwrap();
    let ca = Ca::new();
    let (cert, key) = ca.leaf(&["chat.test"]);
    let tls = rsa
        .with_sni_pem("Chat.Test", cert.as_bytes(), key.as_bytes())
        .unwrap();
    let s = start(tls, config());
    // The default certificate: the RSA one, trusted directly.
    let mut roots = RootCertStore::empty();
    let rsa_pem = std::fs::read(format!("{dir}/tests/fixtures/rsa-2048.crt")).unwrap();
    roots
        .add(CertificateDer::from_pem_slice(&rsa_pem).unwrap())
        .unwrap();
    let mut a = Ws::upgrade(tls_connect(s.tls, client_config(roots), "localhost").unwrap());
    a.echo(b"rsa");
    // By SNI: the ECDSA certificate for chat.test.
    let mut b = Ws::upgrade(tls_connect(s.tls, ca.client(), "chat.test").unwrap());
    b.echo(b"sni");
    a.echo(b"still here");
}

fn fingerprint(s: &TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn reloaded_certificates_reach_new_clients_and_old_ones_keep_going() {
    let ca = Ca::new();
    let first = tls_config(&ca);
    let s = start(first, config());
    let mut old = Ws::upgrade(tls_connect(s.tls, ca.client(), "localhost").unwrap());
    old.echo(b"before");
    let before = fingerprint(&old.s);
    assert_eq!(s.handle.reload_tls(tls_config(&ca)), 1);
    let mut new = Ws::upgrade(tls_connect(s.tls, ca.client(), "localhost").unwrap());
    let after = fingerprint(&new.s);
    assert_ne!(before, after, "a new client still saw the old certificate");
    new.echo(b"new");
    old.echo(b"after the reload");
    assert_eq!(fingerprint(&old.s), before);
}

/// Bytes in, then what the server sends back until it closes (or `wait` passes).
fn poke(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    let mut chunk = [0u8; 4096];
    while start.elapsed() < wait {
        match s.read(&mut chunk) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

#[test]
fn bad_input_on_the_tls_port_closes_only_that_connection() {
    let ca = Ca::new();
    let s = start(
        tls_config(&ca),
        config().handshake_timeout(Some(Duration::from_millis(500))),
    );
    let mut healthy = Ws::upgrade(tls_connect(s.tls, ca.client(), "localhost").unwrap());
    healthy.echo(b"first");

    // Plaintext HTTP on the TLS port: an alert record (content type 21), then the close.
    let (got, closed) = poke(
        s.tls,
        &upgrade_request("/", "").into_bytes(),
        Duration::from_secs(5),
    );
    assert!(closed, "plaintext on the TLS port was not closed");
    assert_eq!(got.first(), Some(&21), "no alert: {got:?}");
    healthy.echo(b"after plaintext");

    // Garbage that looks like no record at all.
    let (_, closed) = poke(s.tls, &[0xff; 64], Duration::from_secs(5));
    assert!(closed);
    healthy.echo(b"after garbage");

    // A ClientHello cut short, then silence: dropped at the handshake timeout like a
    // slowloris.
    let (_, closed) = poke(
        s.tls,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
        Duration::from_secs(5),
    );
    assert!(closed, "a stalled TLS handshake was not dropped");
    healthy.echo(b"after a stalled hello");

    // A name the certificate does not cover: the client refuses it, the server sees the
    // client's alert and drops only that connection.
    let err = tls_connect(s.tls, ca.client(), "wrong.example").unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    healthy.echo(b"after a wrong name");

    // A client that trusts a different CA: the same.
    assert!(tls_connect(s.tls, Ca::new().client(), "localhost").is_err());
    healthy.echo(b"after an unknown CA");

    wait_until(5, "TLS errors counted", || s.handle.stats().tls_errors >= 3);
    // The plain listener never noticed.
    let mut plain = Ws::upgrade(TcpStream::connect(s.plain).unwrap());
    plain.echo(b"plain");
}

/// A handler that answers "flood" with 256 binary messages of 64 KiB (16 MiB: more than the
/// socket buffers of a client that does not read can absorb).
struct Flood;
impl Handler for Flood {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if msg.as_text() == Some("flood") {
            for _ in 0..256 {
                if ctx.send(Message::binary(vec![7u8; 64 << 10])).is_err() {
                    break;
                }
            }
        } else {
            let _ = ctx.send(msg);
        }
    }
}

/// A TLS client that stops reading is a slow consumer like any other: its queue (frames and
/// the records encrypted from them) reaches `max_outbound_bytes`, it is closed with 1008, and
/// a healthy TLS client keeps echoing meanwhile.
#[test]
fn a_tls_client_that_stops_reading_hits_the_outbound_limit() {
    let ca = Ca::new();
    let server = Server::builder()
        .config(config().max_outbound_bytes(512 << 10))
        .bind_tls("127.0.0.1:0", tls_config(&ca))
        .start(|_r: &Request<'_>| Upgrade::accept(Flood))
        .unwrap();
    let addr = server.local_addr();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    let mut slow = Ws::upgrade(tls_connect(addr, ca.client(), "localhost").unwrap());
    slow.send(Frame::text(b"flood"));
    let mut healthy = Ws::upgrade(tls_connect(addr, ca.client(), "localhost").unwrap());
    wait_until(10, "the slow consumer closed", || {
        handle.stats().slow_consumers_closed == 1
    });
    healthy.echo(b"still served");
    handle.shutdown();
    thread.join().unwrap();
}

/// Hostile bytes at the TLS layer, many times over: random garbage, and a real ClientHello with
/// random bytes changed or cut short, each on its own connection. Every one is closed (alert or
/// handshake timeout) without disturbing the others: a healthy client echoes throughout, and
/// the server still accepts new TLS clients at the end.
#[test]
fn mutated_client_hellos_and_garbage_never_disturb_others() {
    let ca = Ca::new();
    let s = start(
        tls_config(&ca),
        config().handshake_timeout(Some(Duration::from_millis(300))),
    );
    let mut healthy = Ws::upgrade(tls_connect(s.tls, ca.client(), "localhost").unwrap());
    // A real ClientHello, as rustls's client writes it.
    let mut hello = Vec::new();
    let mut client =
        ClientConnection::new(ca.client(), ServerName::try_from("localhost").unwrap()).unwrap();
    while client.wants_write() {
        client.write_tls(&mut hello).unwrap();
    }
    // TLS_MUTATIONS / TLS_SEED run it longer or differently (default 300, fixed seed).
    let n: usize = std::env::var("TLS_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("TLS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x7f4a_7c15_9e37_79b9u64);
    let mut rng = test_rng::Rng(seed | 1);
    let mut sockets = Vec::new();
    for i in 0..n {
        let bytes = match i % 3 {
            0 => {
                let mut b = vec![0u8; 1 + rng.below(2000)];
                rng.fill(&mut b);
                b
            }
            1 => {
                let mut b = hello.clone();
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                b
            }
            _ => hello[..rng.below(hello.len())].to_vec(),
        };
        if let Ok(mut sock) = TcpStream::connect(s.tls) {
            let _ = sock.write_all(&bytes);
            sockets.push(sock);
        }
        if i % 50 == 49 {
            healthy.echo(format!("after {i}").as_bytes());
            sockets.clear();
        }
    }
    drop(sockets);
    healthy.echo(b"still here");
    let mut fresh = Ws::upgrade(tls_connect(s.tls, ca.client(), "localhost").unwrap());
    fresh.echo(b"new clients are served");
    // Everything hostile was closed: only the two healthy connections remain.
    wait_until(5, "the hostile connections closed", || {
        s.handle.stats().connections_open == 2
    });
}
