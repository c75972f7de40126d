//! The traits an application implements: a [`Factory`] that sees every HTTP request, and the
//! per-connection [`Handler`] it creates.

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::error::Error;
use crate::protocol::close::CloseFrame;
use crate::protocol::handshake::RequestHead;
use crate::protocol::message::{Chunk, Message};
use crate::runtime::context::Context;
use crate::runtime::deferred::{self, Deferred, PendingUpgrade};
use crate::runtime::handle::{ConnId, ServerHandle};

/// A per-connection WebSocket handler. It owns the connection's state (`&mut self`) and lives on
/// one worker thread for the connection's whole life, so it needs neither `Send` nor locks.
///
/// Every callback has a default, so an echo server overrides only [`Handler::on_message`]:
///
/// ```
/// use volley::{Context, Handler, Message};
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
///         let _ = ctx.send(msg);
///     }
/// }
/// ```
pub trait Handler: 'static {
    /// The upgrade completed; the connection is open.
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A complete text or binary message arrived (reassembled, inflated, UTF-8 checked).
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = (ctx, msg);
    }

    /// The next piece of a message streamed to this connection ([`Config::streaming`],
    /// [`Context::set_streaming`]): chunks come in order, the first with
    /// [`Chunk::is_first`], the last with [`Chunk::is_last`]; text chunks are whole code points.
    /// Streaming is off unless turned on, and then a handler that does not override this
    /// method loses its large messages. If the message fails after some chunks (invalid UTF-8,
    /// over [`Streaming::max_size`](crate::Streaming::max_size)), [`Handler::on_error`] and
    /// [`Handler::on_close`] follow instead of a last chunk.
    ///
    /// [`Config::streaming`]: crate::Config::streaming
    fn on_chunk(&mut self, ctx: &mut Context<'_>, chunk: Chunk) {
        let _ = (ctx, chunk);
    }

    /// A ping arrived. volley has already queued the pong; this is for observation only.
    fn on_ping(&mut self, ctx: &mut Context<'_>, payload: Bytes) {
        let _ = (ctx, payload);
    }

    /// A pong arrived (an answer to our ping, or an unsolicited heartbeat).
    fn on_pong(&mut self, ctx: &mut Context<'_>, payload: Bytes) {
        let _ = (ctx, payload);
    }

    /// The connection has ended; called exactly once per opened connection. `frame` is the peer's
    /// close frame, [`CloseCode::NO_STATUS`](crate::CloseCode::NO_STATUS) if it carried no code,
    /// or [`CloseCode::ABNORMAL`](crate::CloseCode::ABNORMAL) (1006) when the connection ended
    /// without a close handshake; `frame.reason` then says why. Sending is no longer possible.
    fn on_close(&mut self, ctx: &mut Context<'_>, frame: CloseFrame) {
        let _ = (ctx, frame);
    }

    /// Something went wrong on this connection: a protocol violation by the peer (already
    /// answered with its close code), or a socket error. [`Handler::on_close`] follows.
    fn on_error(&mut self, ctx: &mut Context<'_>, err: Error) {
        let _ = (ctx, err);
    }

    /// The socket could not take everything queued at some point (the peer reads slower than we
    /// send), and now the whole queue has been written: a good moment to resume sending. Watch
    /// [`Context::buffered_amount`] to decide when to pause.
    fn on_drain(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A data message went over the connection's rate limit ([`Config::message_rate`] or
    /// [`Config::byte_rate`]) and was not delivered. Under [`RateLimitPolicy::Drop`] the
    /// connection stays open: tell the client to slow down, or close it yourself after
    /// `info.in_a_row` refusals. Under [`RateLimitPolicy::Close`] this runs just before the
    /// 1008 close frame is queued (a last message can still be sent).
    ///
    /// [`Config::message_rate`]: crate::Config::message_rate
    /// [`Config::byte_rate`]: crate::Config::byte_rate
    /// [`RateLimitPolicy::Drop`]: crate::RateLimitPolicy::Drop
    /// [`RateLimitPolicy::Close`]: crate::RateLimitPolicy::Close
    fn on_rate_limited(&mut self, ctx: &mut Context<'_>, info: RateLimited) {
        let _ = (ctx, info);
    }

    /// A timer set with [`Context::set_timer`] fired.
    fn on_timer(&mut self, ctx: &mut Context<'_>, id: u64) {
        let _ = (ctx, id);
    }
}

/// A message refused by the rate limit, as [`Handler::on_rate_limited`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimited {
    /// The refused message's payload length.
    pub len: usize,
    /// Messages refused in a row, this one included (reset by the next message let through).
    pub in_a_row: u32,
}

/// The application: sees every HTTP request on the server's port and decides what to do with it.
///
/// It is shared by all worker threads, so it is `Send + Sync`; per-connection state belongs in
/// the [`Handler`] it returns. Any `Fn(&Request<'_>) -> Upgrade<H>` closure is a `Factory` too.
pub trait Factory: Send + Sync + 'static {
    /// The per-connection handler type.
    type Handler: Handler;

    /// A valid WebSocket upgrade request arrived: accept it with a handler (optionally choosing
    /// one of [`Request::protocols`]), or reject it with an HTTP response (Origin check, auth).
    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Self::Handler>;

    /// A plain HTTP request (no WebSocket upgrade) arrived: answer it. The connection is closed
    /// after the response. Default: `426 Upgrade Required`.
    fn http(&self, req: &Request<'_>) -> Response {
        let _ = req;
        Response::new(426)
            .header("Sec-WebSocket-Version", "13")
            .header("Upgrade", "websocket")
            .body("this endpoint speaks WebSocket\n")
    }

    /// A topic gained its first subscriber on the server (`active == true`) or lost its last one
    /// (`false`): what a bridge to other nodes needs to subscribe upstream per topic. Called on
    /// the worker thread that made the change.
    fn on_topic(&self, topic: &str, active: bool) {
        let _ = (topic, active);
    }
}

impl<H, F> Factory for F
where
    H: Handler,
    F: Fn(&Request<'_>) -> Upgrade<H> + Send + Sync + 'static,
{
    type Handler = H;
    fn upgrade(&self, req: &Request<'_>) -> Upgrade<H> {
        self(req)
    }
}

/// An HTTP request as the [`Factory`] sees it: method, path, query, headers, peer address, and
/// for upgrades the offered subprotocols.
#[derive(Debug)]
pub struct Request<'a> {
    pub(crate) head: &'a RequestHead<'a>,
    pub(crate) peer: SocketAddr,
    pub(crate) client: SocketAddr,
    pub(crate) protocols: &'a [&'a str],
    pub(crate) server: &'a ServerHandle,
    pub(crate) id: ConnId,
}

impl<'a> Request<'a> {
    /// The method (`GET` for upgrades).
    pub fn method(&self) -> &'a str {
        self.head.method
    }
    /// The path, without the query.
    pub fn path(&self) -> &'a str {
        self.head.path()
    }
    /// The query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query()
    }
    /// The value of the first query parameter called `name`, percent-decoded (`?room=a%20b` and
    /// `?room=a+b` give `a b`; names are decoded too). Borrowed when there was nothing to
    /// decode; a value that does not decode to UTF-8 gets U+FFFD in place of the bad bytes.
    /// [`query`](Self::query) has the raw text.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k) == name).then(|| decode(v))
        })
    }
    /// The first header with this name (case-insensitive), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        std::str::from_utf8(self.head.header(name)?)
            .ok()
            .map(str::trim)
    }
    /// All headers as (name, raw value) pairs, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.head.headers.iter().map(|h| (h.name, h.value))
    }
    /// The `Origin` header: check it against an allowlist to stop cross-site WebSocket hijacking.
    pub fn origin(&self) -> Option<&'a str> {
        self.header("origin")
    }
    /// The socket's peer address (a proxy's, behind one).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
    /// The client's address: from the PROXY header ([`Config::proxy_protocol`]), or from the
    /// forwarding headers of a trusted proxy ([`Config::trusted_proxies`]; the port is then 0,
    /// as those headers rarely carry it), else the socket's peer.
    ///
    /// [`Config::proxy_protocol`]: crate::Config::proxy_protocol
    /// [`Config::trusted_proxies`]: crate::Config::trusted_proxies
    pub fn client_addr(&self) -> SocketAddr {
        self.client
    }
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in the client's order of preference
    /// (empty for plain HTTP requests).
    pub fn protocols(&self) -> &'a [&'a str] {
        self.protocols
    }

    /// The server this request reached: its statistics, publish and broadcast, shutdown, from
    /// inside a factory without globals (a health check that reports open connections, an
    /// admin page that broadcasts).
    pub fn server(&self) -> &'a ServerHandle {
        self.server
    }

    /// The id the connection will have once open.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Decide this upgrade later, from another thread: return the [`Upgrade`] from
    /// [`Factory::upgrade`] and hand the [`PendingUpgrade`] to the thread that checks the
    /// token (a database, an HTTP call). The worker keeps serving its other connections.
    /// The handle is `Send` when the handler is.
    ///
    /// ```
    /// use volley::{Handler, PendingUpgrade, Request, Response, Upgrade};
    /// struct Chat;
    /// impl Handler for Chat {}
    ///
    /// fn check_token(token: &str) -> bool { token == "let-me-in" }
    ///
    /// let factory = |req: &Request<'_>| {
    ///     let token = req.query_param("token").unwrap_or_default().into_owned();
    ///     let (upgrade, pending): (Upgrade<Chat>, PendingUpgrade<Chat>) = req.defer();
    ///     std::thread::spawn(move || {
    ///         let _ = if check_token(&token) {
    ///             pending.accept(Chat)
    ///         } else {
    ///             pending.reject(Response::new(401).body("bad token\n"))
    ///         };
    ///     });
    ///     upgrade
    /// };
    /// # let _ = factory;
    /// ```
    ///
    /// Only meaningful for upgrade requests (a plain HTTP request is answered at once).
    pub fn defer<H>(&self) -> (Upgrade<H>, PendingUpgrade<H>) {
        deferred::defer(self.id, self.server.shared_arc())
    }
}

/// `s` with `+` as space and `%XX` escapes decoded; borrowed when there is nothing to decode.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The [`Factory`]'s answer to an upgrade request.
#[derive(Debug)]
pub enum Upgrade<H> {
    /// Complete the upgrade and hand the connection to `handler`.
    Accept {
        /// The connection's handler.
        handler: H,
        /// The chosen subprotocol; must be one the client offered.
        protocol: Option<String>,
        /// Extra response headers (e.g. `Set-Cookie`).
        headers: Vec<(String, String)>,
    },
    /// Refuse with this HTTP response, then close.
    Reject(Response),
    /// Decide later, from any thread, through the [`PendingUpgrade`] that
    /// [`Request::defer`] returned with this value.
    Defer(Deferred<H>),
}

impl<H> Upgrade<H> {
    /// Accept with `handler`, no subprotocol.
    pub fn accept(handler: H) -> Self {
        Upgrade::Accept {
            handler,
            protocol: None,
            headers: Vec::new(),
        }
    }
    /// Accept with `handler` and the chosen subprotocol.
    pub fn accept_protocol(handler: H, protocol: impl Into<String>) -> Self {
        Upgrade::Accept {
            handler,
            protocol: Some(protocol.into()),
            headers: Vec::new(),
        }
    }
    /// Reject with a status code and a short text body.
    pub fn reject(status: u16, body: impl Into<Bytes>) -> Self {
        Upgrade::Reject(Response::new(status).body(body))
    }
}

/// A small HTTP response: a page, a health check, a rejection.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Response {
    /// A response with this status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
    /// `200 OK` with a body and its content type.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> Self {
        Response::new(200)
            .header("Content-Type", content_type)
            .body(body)
    }
    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Response::new(404)
            .header("Content-Type", "text/plain")
            .body("not found\n")
    }
    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// The headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }
}
