//! Turning the bytes of an HTTP request into an upgrade decision: runs the pure handshake code,
//! asks the application's [`Factory`], and builds the response bytes.

use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::BytesMut;

use crate::config::Config;
use crate::protocol::deflate::Negotiated;
use crate::protocol::error::HandshakeError;
use crate::protocol::handshake::{self, write_response, RequestHead};
use crate::protocol::proxy;
use crate::runtime::compress::WorkerDeflate;
use crate::runtime::deferred::Cell;
use crate::runtime::handle::{ConnLabel, ServerHandle};
use crate::runtime::handler::{Factory, Request, Response, Upgrade};
use crate::runtime::limits::IpLimits;

/// What to do with a connection in the handshake phase.
pub(crate) enum Outcome<H> {
    /// The request is incomplete: keep reading.
    Partial,
    /// Send the 101 in `bytes`: the connection is now a WebSocket.
    Upgraded {
        bytes: Vec<u8>,
        upgraded: Upgraded<H>,
    },
    /// A plain HTTP request answered by `Factory::http`: send `bytes`, then close.
    Http { bytes: Vec<u8> },
    /// An upgrade refused (invalid request, or by the application): send `bytes`, then close.
    Rejected { bytes: Vec<u8>, reason: Rejection },
    /// The application will decide later (`Upgrade::Defer`): park the connection.
    Deferred {
        cell: Arc<Cell<H>>,
        prepared: Prepared,
        /// Counted in the per-IP table: release it when the connection ends.
        ip_counted: bool,
        /// The client's address, when it is not the socket's peer.
        client: Option<SocketAddr>,
        /// Length of the request head.
        consumed: usize,
    },
}

/// What a valid upgrade request has settled before the application decides: enough to write
/// the 101 later (a deferred decision).
pub(crate) struct Prepared {
    accept: String,
    offered: Vec<String>,
    deflate: Option<Negotiated>,
}

/// Why an upgrade was refused (the statistics count each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 400: not valid HTTP, or not a valid upgrade.
    Malformed,
    /// 405: not GET.
    Method,
    /// 426: `Sec-WebSocket-Version` is not 13.
    Version,
    /// 431: the request head is too large.
    TooLarge,
    /// `Factory::upgrade` refused it.
    Application,
    /// `Factory::upgrade` panicked (500).
    FactoryPanic,
    /// Over a per-IP limit (429).
    PerIp,
    /// A deferred decision did not come within the handshake timeout (503).
    Undecided,
}

impl Rejection {
    fn of(err: &HandshakeError) -> Rejection {
        match err.status() {
            405 => Rejection::Method,
            426 => Rejection::Version,
            431 => Rejection::TooLarge,
            _ => Rejection::Malformed,
        }
    }
}

/// A completed upgrade.
pub(crate) struct Upgraded<H> {
    /// Counted in the per-IP table: release it when the connection ends.
    pub ip_counted: bool,
    /// The client's address, when it is not the socket's peer.
    pub client: Option<SocketAddr>,
    pub handler: H,
    pub protocol: Option<String>,
    pub deflate: Option<Negotiated>,
    /// Length of the request head (bytes after it are frames).
    pub consumed: usize,
}

fn reject<H>(label: ConnLabel, err: &HandshakeError) -> Outcome<H> {
    log::info!("{label}: rejecting upgrade with {}: {err}", err.status());
    let mut bytes = Vec::with_capacity(160);
    handshake::write_rejection(&mut bytes, err);
    Outcome::Rejected {
        bytes,
        reason: Rejection::of(err),
    }
}

/// The bytes of a plain HTTP response (`Connection: close`).
fn response_bytes(resp: &Response) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128 + resp.body.len());
    write_response(&mut bytes, resp.status, &resp.headers, &resp.body, true);
    bytes
}

/// Run a factory callback; a panic in it answers this request with 500 and is logged, and the
/// worker (and every other connection on it) goes on, as with a panicking handler.
fn isolate<T>(label: ConnLabel, what: &str, f: impl FnOnce() -> T) -> Result<T, Vec<u8>> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        log::error!("{label}: Factory::{what} panicked; answering 500");
        response_bytes(&Response::new(500).body("internal server error\n"))
    })
}

/// Parse the request in `buf` and decide. `server` is what the factory's [`Request`] offers the
/// application (and where the configuration and the metrics path are read).
pub(crate) fn handle<F: Factory>(
    factory: &F,
    server: &ServerHandle,
    label: ConnLabel,
    proxied: Option<SocketAddr>,
    buf: &BytesMut,
) -> Outcome<F::Handler> {
    let cfg = &server.shared().config;
    let (head, len) = match handshake::parse_request(buf, cfg.max_headers) {
        Ok(Some(parsed)) if parsed.1 <= cfg.max_handshake_bytes => parsed,
        Ok(Some(_)) => return reject(label, &HandshakeError::HeadersTooLarge),
        Ok(None) if buf.len() > cfg.max_handshake_bytes => {
            return reject(label, &HandshakeError::HeadersTooLarge)
        }
        Ok(None) => return Outcome::Partial,
        Err(e) => return reject(label, &e),
    };
    decide(factory, server, label, proxied, &head, len)
}

/// Decide on a whole request head of `len` bytes: a plain HTTP request goes to
/// [`Factory::http`], an upgrade is validated and goes to [`Factory::upgrade`]. Also the entry
/// of a head another HTTP server read and handed over (`runtime/handoff.rs`), with `len` 0.
pub(crate) fn decide<F: Factory>(
    factory: &F,
    server: &ServerHandle,
    label: ConnLabel,
    proxied: Option<SocketAddr>,
    head: &RequestHead<'_>,
    len: usize,
) -> Outcome<F::Handler> {
    let cfg = &server.shared().config;
    let client = client_addr(cfg, proxied.unwrap_or(label.addr), head);
    let req = |protocols| Request {
        head,
        peer: label.addr,
        client,
        protocols,
        server,
        id: label.id,
    };
    if !handshake::wants_websocket(head) {
        return plain_http(factory, label, &req(&[]));
    }
    let up = match handshake::validate_upgrade(head) {
        Ok(up) => up,
        Err(e) => return reject(label, &e),
    };
    upgrade(factory, label, &req(&up.protocols), &up, len)
}

/// A plain HTTP request: the metrics path, else the factory's [`Factory::http`].
fn plain_http<F: Factory>(factory: &F, label: ConnLabel, req: &Request<'_>) -> Outcome<F::Handler> {
    #[cfg(feature = "metrics")]
    if let Some(bytes) =
        crate::runtime::metrics::answer(req.server.shared(), req.method(), req.path())
    {
        return Outcome::Http { bytes };
    }
    let bytes = match isolate(label, "http", || factory.http(req)) {
        Ok(resp) => response_bytes(&resp),
        Err(bytes) => bytes,
    };
    Outcome::Http { bytes }
}

/// A valid upgrade request (`req`, `up`, `len` bytes): counted against the per-IP limits, then
/// the factory's [`Factory::upgrade`] decides.
fn upgrade<F: Factory>(
    factory: &F,
    label: ConnLabel,
    req: &Request<'_>,
    up: &handshake::UpgradeRequest<'_>,
    len: usize,
) -> Outcome<F::Handler> {
    let shared = req.server.shared();
    // Per-IP limits, on the client address, before the application does any work.
    let limits = shared.ip_limits.as_ref();
    let ip_key = match limits
        .map(|l| admit_ip(l, label, req.client.ip()))
        .transpose()
    {
        Ok(key) => key,
        Err(bytes) => {
            let reason = Rejection::PerIp;
            return Outcome::Rejected { bytes, reason };
        }
    };
    let release = || {
        if let (Some(l), Some(key)) = (limits, ip_key) {
            l.release(key);
        }
    };
    let decision = match isolate(label, "upgrade", || factory.upgrade(req)) {
        Ok(decision) => decision,
        Err(bytes) => {
            release();
            let reason = Rejection::FactoryPanic;
            return Outcome::Rejected { bytes, reason };
        }
    };
    let prepared = Prepared {
        accept: handshake::accept_key(up.key),
        offered: up.protocols.iter().map(|p| p.to_string()).collect(),
        deflate: WorkerDeflate::negotiate(&shared.config, &up.extensions),
    };
    let ip_counted = ip_key.is_some();
    let client = (req.client != req.peer).then_some(req.client);
    match decision {
        Upgrade::Defer(d) => {
            log::debug!("{label}: upgrade deferred by the application");
            Outcome::Deferred {
                cell: d.cell,
                prepared,
                ip_counted,
                client,
                consumed: len,
            }
        }
        decision => {
            let out = finish(label, prepared, decision, ip_counted, client, len);
            if matches!(out, Outcome::Rejected { .. }) {
                release();
            }
            out
        }
    }
}

/// Count a connection from `ip` against the per-IP limits: its key in the table, or the bytes
/// of the 429 that refuses it.
fn admit_ip(limits: &IpLimits, label: ConnLabel, ip: IpAddr) -> Result<IpAddr, Vec<u8>> {
    let key = limits.key(ip);
    match limits.admit(key, std::time::Instant::now()) {
        Ok(()) => Ok(key),
        Err(refusal) => {
            log::info!("{label}: over a per-IP limit for {ip}; answering 429");
            let resp = Response::new(429)
                .header("Retry-After", refusal.retry_after.to_string())
                .body("too many connections from your address\n");
            Err(response_bytes(&resp))
        }
    }
}

/// The answer to a decided upgrade: the 101 and the connection's parts, or the application's
/// refusal. (`Upgrade::Defer` here, a deferral decided with another deferral, is answered 500.)
pub(crate) fn finish<H>(
    label: ConnLabel,
    prepared: Prepared,
    decision: Upgrade<H>,
    ip_counted: bool,
    client: Option<SocketAddr>,
    consumed: usize,
) -> Outcome<H> {
    match decision {
        Upgrade::Reject(resp) => {
            log::info!(
                "{label}: upgrade refused by the application with {}",
                resp.status
            );
            Outcome::Rejected {
                bytes: response_bytes(&resp),
                reason: Rejection::Application,
            }
        }
        Upgrade::Defer(_) => Outcome::Rejected {
            bytes: response_bytes(&Response::new(500).body("internal server error\n")),
            reason: Rejection::Application,
        },
        Upgrade::Accept {
            handler,
            protocol,
            headers,
        } => {
            let protocol = protocol.filter(|p| {
                let offered = prepared.offered.iter().any(|o| o == p);
                if !offered {
                    log::warn!("{label}: application chose subprotocol {p:?}, which was not offered; omitting it");
                }
                offered
            });
            let mut bytes = Vec::with_capacity(200);
            let ext = prepared.deflate.as_ref().map(|n| n.response());
            handshake::write_switching_protocols(
                &mut bytes,
                &prepared.accept,
                protocol.as_deref(),
                ext,
                &headers,
            );
            let upgraded = Upgraded {
                ip_counted,
                client,
                handler,
                protocol,
                deflate: prepared.deflate,
                consumed,
            };
            Outcome::Upgraded { bytes, upgraded }
        }
    }
}

/// The 503 for a deferred decision that did not come in time.
pub(crate) fn undecided_bytes() -> Vec<u8> {
    response_bytes(
        &Response::new(503)
            .header("Retry-After", "1")
            .body("the upgrade was not decided in time\n"),
    )
}

/// The client's address: `immediate` (the socket's peer, or the PROXY header's source), or, when
/// that is a trusted proxy, the right-most hop of its `Forwarded` (else `X-Forwarded-For`)
/// headers that is not a trusted proxy itself. An unparsable hop ends the walk at the last
/// address known.
fn client_addr(cfg: &Config, immediate: SocketAddr, head: &RequestHead<'_>) -> SocketAddr {
    let trusted = |ip: IpAddr| cfg.trusted_proxies.iter().any(|n| n.contains(ip));
    if cfg.trusted_proxies.is_empty() || !trusted(immediate.ip()) {
        return immediate;
    }
    let text = |name| {
        head.header_all(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .collect::<Vec<_>>()
    };
    let forwarded = text("forwarded");
    let hops = if forwarded.is_empty() {
        proxy::x_forwarded_for(text("x-forwarded-for"))
    } else {
        proxy::forwarded_for(forwarded)
    };
    let mut client = immediate;
    for hop in hops.iter().rev() {
        let Some(ip) = *hop else { break };
        client = SocketAddr::new(ip, 0);
        if !trusted(ip) {
            break;
        }
    }
    client
}
