//! Hand-off: another HTTP server (axum, hyper, anything that owns the listener) gives volley a
//! connection at upgrade time. Two steps, because that server sends the `101` itself and only
//! then lets go of the socket:
//!
//! 1. **Decide.** [`ServerHandle::hand_off`] sends the request head to a worker, which runs the
//!    same checks and the same [`Factory::upgrade`](crate::Factory::upgrade) as for a head it
//!    read itself (`upgrade::decide`: per-IP limits, the client address from trusted proxies,
//!    subprotocol, permessage-deflate, `Upgrade::Defer`). The handler stays parked on that
//!    worker, in a connection slot that has no socket yet; the [`HandOffDecision`] future
//!    resolves to the `101`'s headers and a [`Ticket`], or to the rejection to answer with.
//! 2. **Adopt.** Once the `101` went out, [`Ticket::adopt`] sends the TCP socket and the bytes
//!    the other server read past the head to that worker, which registers the socket, opens the
//!    connection (without writing a `101`), reads those bytes as frames and runs `on_open`.
//!
//! Nothing here needs an async runtime: the decision comes back through a mutex-and-`Waker`
//! cell (`runtime/waiter.rs`). A connection whose TLS another server terminated cannot be
//! handed over: volley needs the socket itself, and the TLS state lives in that server.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use crate::error::Error;
use crate::protocol::handshake::{Header, RequestHead};
use crate::runtime::handle::{ConnId, ServerHandle};
use crate::runtime::handler::Response;
use crate::runtime::waiter::Reply;
use crate::runtime::{Command, Shared};

/// The request head another server read: method, target (path and query), headers, and the
/// peer address of its socket. Build it with [`HandOffHead::new`] and
/// [`header`](HandOffHead::header).
#[derive(Debug, Clone)]
pub struct HandOffHead {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    peer: SocketAddr,
}

impl HandOffHead {
    /// A head with this method (`GET`), target (`/ws?room=a`) and socket peer address.
    pub fn new(method: impl Into<String>, target: impl Into<String>, peer: SocketAddr) -> Self {
        HandOffHead {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            peer,
        }
    }

    /// Add a header (repeat it for several values).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The socket's peer address (before any trusted proxy's forwarding headers).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The head as the handshake code reads it (borrowing this one).
    pub(crate) fn as_request_head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            target: &self.target,
            minor_version: 1,
            headers: (self.headers.iter())
                .map(|(name, value)| Header { name, value })
                .collect(),
        }
    }
}

/// What volley decided about a handed-off request.
#[derive(Debug)]
pub enum HandOff {
    /// Accepted: answer `101 Switching Protocols` with `headers` (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-Accept`, and where negotiated `Sec-WebSocket-Protocol`,
    /// `Sec-WebSocket-Extensions`, then the application's own), then give the socket to
    /// `ticket`.
    Accept {
        /// The `101`'s headers, in order.
        headers: Vec<(String, String)>,
        /// Where the socket goes once the `101` is sent.
        ticket: Ticket,
    },
    /// Refused (an invalid upgrade, a per-IP limit, the application, a decision that did not
    /// come in time): answer with this response.
    Reject(Response),
}

/// The result a worker sends back to the [`HandOffDecision`].
pub(crate) type Answer = Result<HandOff, Error>;

/// The worker's end of a [`HandOffDecision`]: answers it once; dropped unanswered (the worker
/// exited, or dropped the parked connection in a shutdown), it answers
/// [`Error::ServerStopped`].
pub(crate) struct Responder(Arc<Reply<Answer>>);

impl Responder {
    pub fn answer(self, answer: Answer) {
        self.0.resolve(answer);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.0.resolve(Err(Error::ServerStopped)); // a no-op after an answer
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Responder")
    }
}

/// A hand-off on its way to a worker (`Command::HandOff`).
#[derive(Debug)]
pub(crate) struct HandOffRequest {
    pub head: HandOffHead,
    pub reply: Responder,
}

/// The future [`ServerHandle::hand_off`] returns: volley's decision about the request. Await it
/// from any executor (or [`block_on`](crate::block_on) on a plain thread); it takes no lock for
/// longer than a few instructions and never blocks.
#[must_use = "a future does nothing unless awaited"]
pub struct HandOffDecision {
    reply: Arc<Reply<Answer>>,
}

impl fmt::Debug for HandOffDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandOffDecision")
    }
}

impl Future for HandOffDecision {
    type Output = Result<HandOff, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.reply.poll_take(cx)
    }
}

impl ServerHandle {
    /// Offer a connection that another HTTP server accepted and read the head of: volley
    /// validates the upgrade and asks the [`Factory`](crate::Factory) as if it had read the
    /// head itself, on one of its workers (picked by a hash of the peer address). See
    /// [`HandOff`] for what to answer; then, for an acceptance, [`Ticket::adopt`].
    ///
    /// The future's errors: [`Error::NotUpgrade`] (not a WebSocket upgrade request: answer it
    /// yourself), [`Error::ServerStopped`] (the server is shutting down or has stopped).
    pub fn hand_off(&self, head: HandOffHead) -> HandOffDecision {
        let reply = Reply::new();
        let decision = HandOffDecision {
            reply: reply.clone(),
        };
        let shared = self.shared();
        if shared.stopping.load(Ordering::Relaxed) {
            reply.resolve(Err(Error::ServerStopped));
            return decision;
        }
        let w = worker_for(head.peer, shared.remotes.len());
        let req = HandOffRequest {
            head,
            reply: Responder(reply.clone()),
        };
        // If the worker has exited, the command and its responder are dropped: that answers
        // `ServerStopped`.
        shared.remotes[w].send(Command::HandOff(Box::new(req)));
        decision
    }
}

/// The worker of a hand-off from `peer`: a hash, so that no counter is shared.
fn worker_for(peer: SocketAddr, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    peer.hash(&mut h);
    (h.finish() % workers as u64) as usize
}

/// An accepted hand-off: the handler waits, parked on its worker, for the socket. Give it with
/// [`adopt`](Self::adopt) once the `101` is sent; dropping the ticket instead frees the parked
/// handler (and its per-IP count). It must come within `Config::handshake_timeout`.
pub struct Ticket {
    id: ConnId,
    shared: Arc<Shared>,
    used: bool,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Ticket").field(&self.id).finish()
    }
}

impl Ticket {
    pub(crate) fn new(id: ConnId, shared: Arc<Shared>) -> Self {
        Ticket {
            id,
            shared,
            used: false,
        }
    }

    /// The id the connection has once adopted (the one the factory saw in
    /// [`Request::id`](crate::Request::id)).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Give the socket to volley, after the `101` went out, with `already_read`: the bytes the
    /// other server read past the request head (early frames; often empty). The socket must be
    /// the plain TCP connection to the client: not a TLS stream another server decrypts.
    ///
    /// The worker registers it, opens the connection, reads `already_read` as frames and runs
    /// `on_open`. `Err(Error::ServerStopped)` if the server is shutting down, `Err(Error::Io)`
    /// if the socket cannot be made non-blocking; in both cases the socket is closed. If the
    /// handshake timeout passed first, the worker closes the socket (the handler was dropped).
    pub fn adopt(mut self, stream: std::net::TcpStream, already_read: Bytes) -> Result<(), Error> {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return Err(Error::ServerStopped);
        }
        stream.set_nonblocking(true)?;
        let stream = mio::net::TcpStream::from_std(stream);
        let remote = &self.shared.remotes[usize::from(self.id.worker())];
        self.used = true;
        if remote.send(Command::Adopt(self.id, stream, already_read)) {
            Ok(())
        } else {
            Err(Error::ServerStopped)
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.used {
            let remote = &self.shared.remotes[usize::from(self.id.worker())];
            remote.send(Command::HandOffDropped(self.id));
        }
    }
}

/// An HTTP response volley wrote (`101`, a rejection) read back into its parts, for a server
/// that writes its own: status, headers and body. `Content-Length` and `Connection: close` are
/// left out of a rejection (the other server frames its response itself).
pub(crate) fn read_back(bytes: &[u8]) -> (u16, Vec<(String, String)>, Bytes) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = resp.parse(bytes) else {
        return (500, Vec::new(), Bytes::new()); // cannot happen: volley wrote it
    };
    let status = resp.code.unwrap_or(500);
    let headers = (resp.headers.iter())
        .filter(|h| status == 101 || !h.name.eq_ignore_ascii_case("content-length"))
        .filter(|h| status == 101 || !h.name.eq_ignore_ascii_case("connection"))
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_owned(), value)
        })
        .collect();
    (status, headers, Bytes::copy_from_slice(&bytes[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_reads_back_without_its_framing_headers() {
        let mut bytes = Vec::new();
        let headers = [("Retry-After".to_owned(), "1".to_owned())];
        crate::protocol::handshake::write_response(&mut bytes, 429, &headers, b"slow down", true);
        let (status, headers, body) = read_back(&bytes);
        assert_eq!(status, 429);
        assert_eq!(&body[..], b"slow down");
        let names: Vec<_> = headers.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(names, ["Retry-After", "Content-Type"]);
    }

    #[test]
    fn a_101_reads_back_whole() {
        let mut bytes = Vec::new();
        crate::protocol::handshake::write_switching_protocols(
            &mut bytes,
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            Some("chat"),
            Some("permessage-deflate"),
            &[],
        );
        let (status, headers, body) = read_back(&bytes);
        assert_eq!(status, 101);
        assert!(body.is_empty());
        let names: Vec<_> = headers.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "Upgrade",
                "Connection",
                "Sec-WebSocket-Accept",
                "Sec-WebSocket-Protocol",
                "Sec-WebSocket-Extensions"
            ]
        );
    }
}
