//! Turning the bytes of an HTTP request into an upgrade decision: runs the pure handshake code,
//! asks the application's [`Factory`], and builds the response bytes.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use crate::config::Config;
use crate::handler::{Factory, Request, Response, Upgrade};
use crate::protocol::deflate::Negotiated;
use crate::protocol::error::HandshakeError;
use crate::protocol::handshake::{self, write_response};
use crate::runtime::compress::WorkerDeflate;
use crate::runtime::Shared;

/// What to do with a connection in the handshake phase.
pub(crate) enum Outcome<H> {
    /// The request is incomplete: keep reading.
    Partial,
    /// Send `bytes`; if `upgraded` holds the handler, the chosen subprotocol and the request
    /// length, the connection is now a WebSocket; otherwise close after sending.
    Respond {
        bytes: Vec<u8>,
        upgraded: Option<Upgraded<H>>,
        rejected: bool,
    },
}

/// A completed upgrade.
pub(crate) struct Upgraded<H> {
    pub handler: H,
    pub protocol: Option<String>,
    pub deflate: Option<Negotiated>,
    /// Length of the request head (bytes after it are frames).
    pub consumed: usize,
}

fn reject<H>(peer: SocketAddr, err: &HandshakeError) -> Outcome<H> {
    log::info!("{peer}: rejecting upgrade with {}: {err}", err.status());
    let mut bytes = Vec::with_capacity(160);
    handshake::write_rejection(&mut bytes, err);
    Outcome::Respond {
        bytes,
        upgraded: None,
        rejected: true,
    }
}

fn respond<H>(resp: &Response, rejected: bool) -> Outcome<H> {
    let mut bytes = Vec::with_capacity(128 + resp.body.len());
    write_response(&mut bytes, resp.status, &resp.headers, &resp.body, true);
    Outcome::Respond {
        bytes,
        upgraded: None,
        rejected,
    }
}

/// Parse the request in `buf` and decide.
pub(crate) fn handle<F: Factory>(
    factory: &F,
    cfg: &Config,
    peer: SocketAddr,
    buf: &BytesMut,
) -> Outcome<F::Handler> {
    let (head, len) = match handshake::parse_request(buf, cfg.max_headers) {
        Ok(Some(parsed)) => parsed,
        Ok(None) if buf.len() > cfg.max_handshake_bytes => {
            return reject(peer, &HandshakeError::HeadersTooLarge)
        }
        Ok(None) => return Outcome::Partial,
        Err(e) => return reject(peer, &e),
    };
    if len > cfg.max_handshake_bytes {
        return reject(peer, &HandshakeError::HeadersTooLarge);
    }
    if !handshake::wants_websocket(&head) {
        let req = Request {
            head: &head,
            peer,
            protocols: &[],
        };
        return respond(&factory.http(&req), false);
    }
    let up = match handshake::validate_upgrade(&head) {
        Ok(up) => up,
        Err(e) => return reject(peer, &e),
    };
    let req = Request {
        head: &head,
        peer,
        protocols: &up.protocols,
    };
    match factory.upgrade(&req) {
        Upgrade::Reject(resp) => {
            log::info!(
                "{peer}: upgrade refused by the application with {}",
                resp.status
            );
            respond(&resp, true)
        }
        Upgrade::Accept {
            handler,
            protocol,
            headers,
        } => {
            let protocol = protocol.filter(|p| {
                let offered = up.protocols.iter().any(|o| o == p);
                if !offered {
                    log::warn!("{peer}: application chose subprotocol {p:?}, which was not offered; omitting it");
                }
                offered
            });
            let deflate = WorkerDeflate::negotiate(cfg, &up.extensions);
            let accept = handshake::accept_key(up.key);
            let mut bytes = Vec::with_capacity(200);
            let ext = deflate.as_ref().map(|n| n.response());
            handshake::write_switching_protocols(
                &mut bytes,
                &accept,
                protocol.as_deref(),
                ext,
                &headers,
            );
            let upgraded = Upgraded {
                handler,
                protocol,
                deflate,
                consumed: len,
            };
            Outcome::Respond {
                bytes,
                upgraded: Some(upgraded),
                rejected: false,
            }
        }
    }
}

/// Count a new socket against `max_connections`; false if the server is full.
pub(crate) fn reserve_slot(shared: &Shared) -> bool {
    let max = shared.config.max_connections;
    shared
        .conn_count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Best-effort `503` on a socket we will not keep.
pub(crate) fn write_unavailable(stream: &mut mio::net::TcpStream) {
    let mut bytes = Vec::with_capacity(128);
    write_response(&mut bytes, 503, &[], b"server at connection limit\n", true);
    let _ = stream.write(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
