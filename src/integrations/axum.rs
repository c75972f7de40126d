//! `/ws` of an axum app served by volley, on the app's own port (feature `axum`).
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::{extract::State, response::Response, routing::get, Router};
//! use volley::integrations::axum::VolleyUpgrade;
//! use volley::{Context, Handler, Message, Request, Server, ServerHandle, Upgrade};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
//!         let _ = ctx.send(msg);
//!     }
//! }
//!
//! async fn ws(up: VolleyUpgrade, State(volley): State<ServerHandle>) -> Response {
//!     up.accept_with(&volley).await
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .without_listener()
//!     .start(|_req: &Request<'_>| Upgrade::accept(Echo))?;
//! let app = Router::new().route("/ws", get(ws)).with_state(server.handle());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // The peer address volley needs (per-IP limits, trusted proxies) comes from ConnectInfo.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! What happens: the extractor takes the request head and hyper's upgrade handle;
//! [`VolleyUpgrade::accept_with`] hands the head to volley ([`ServerHandle::hand_off`]), which
//! asks the [`Factory`](crate::Factory) on a worker. On acceptance the route answers `101` with
//! volley's headers (deflate and subprotocol included), and a task waits for hyper to let go of
//! the connection, takes the `TcpStream` and the bytes hyper read past the head back out
//! (`Upgraded::downcast`), and gives them to the parked handler ([`Ticket::adopt`]). Refusals
//! become ordinary responses.
//!
//! Needs the plain TCP connection: `axum::serve` on a `tokio::net::TcpListener`, or hyper's
//! HTTP/1 server on `TokioIo<TcpStream>`. Behind TLS that axum (or hyper) terminates
//! (axum-server with rustls, ...), the connection cannot be handed over: the upgrade is
//! answered but the socket refused with [`Error::NotTcp`] (logged) and closed. Terminate TLS in
//! front of the app (a proxy), or let volley serve `wss://` itself on its own port
//! (`ServerBuilder::bind_tls`). HTTP/2 extended CONNECT is not supported (HTTP/1.1 upgrades
//! only).

use std::net::SocketAddr;

use ::axum::body::Body;
use ::axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use ::axum::http::request::Parts;
use ::axum::http::{header, HeaderValue, StatusCode};
use ::axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::Error;
use crate::runtime::handle::ServerHandle;
use crate::runtime::handoff::{HandOff, HandOffHead, Ticket};

/// An axum extractor for a WebSocket upgrade that volley will serve: take it in a handler and
/// return [`accept_with`](Self::accept_with)'s response. It never refuses the request itself:
/// a request that is not an upgrade is answered by `accept_with` (`426`).
#[derive(Debug)]
pub struct VolleyUpgrade {
    head: Result<HandOffHead, &'static str>,
    on_upgrade: Option<OnUpgrade>,
}

impl<S: Send + Sync> FromRequestParts<S> for VolleyUpgrade {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            let why = "no peer address: serve the app with \
                       into_make_service_with_connect_info::<SocketAddr>()";
            return Ok(VolleyUpgrade {
                head: Err(why),
                on_upgrade,
            });
        };
        // The target as the client sent it, also under a nested router.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |u| &u.0);
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = HandOffHead::new(parts.method.as_str(), target, *peer);
        for (name, value) in &parts.headers {
            head = head.header(name.as_str(), value.as_bytes());
        }
        Ok(VolleyUpgrade {
            head: Ok(head),
            on_upgrade,
        })
    }
}

impl VolleyUpgrade {
    /// The request head volley will see (`None` without the peer address, see the module).
    pub fn head(&self) -> Option<&HandOffHead> {
        self.head.as_ref().ok()
    }

    /// Hand the request to `server` and answer as volley decides: `101` with its headers (the
    /// connection then goes to the handler the factory made), the factory's or the
    /// handshake's refusal, `426` for a request that is not a WebSocket upgrade, `503` while
    /// the server shuts down. Must be called from a tokio runtime (it spawns the task that
    /// waits for the upgrade).
    pub async fn accept_with(self, server: &ServerHandle) -> Response {
        let head = match self.head {
            Ok(head) => head,
            Err(why) => {
                log::error!("volley hand-off: {why}");
                return (StatusCode::INTERNAL_SERVER_ERROR, why).into_response();
            }
        };
        match server.hand_off(head).await {
            Ok(HandOff::Accept { headers, ticket }) => match self.on_upgrade {
                Some(on_upgrade) => {
                    tokio::spawn(adopt_when_upgraded(on_upgrade, ticket));
                    response(101, &headers, Body::empty())
                }
                // A valid head without hyper's upgrade handle (HTTP/2): the ticket is dropped.
                None => {
                    let why = "this connection cannot be upgraded (HTTP/1.1 only)\n";
                    (StatusCode::HTTP_VERSION_NOT_SUPPORTED, why).into_response()
                }
            },
            Ok(HandOff::Reject(resp)) => response(
                resp.status(),
                resp.headers(),
                Body::from(resp.body_bytes().clone()),
            ),
            Err(Error::NotUpgrade) => {
                let mut resp = (
                    StatusCode::UPGRADE_REQUIRED,
                    "this endpoint speaks WebSocket\n",
                )
                    .into_response();
                let h = resp.headers_mut();
                h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                h.insert("sec-websocket-version", HeaderValue::from_static("13"));
                resp
            }
            Err(Error::ServerStopped) => {
                (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
            }
            Err(e) => {
                log::error!("volley hand-off failed: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response()
            }
        }
    }
}

/// An axum response with this status, headers (those axum cannot take are skipped; volley
/// already refused unsafe ones) and body.
fn response(status: u16, headers: &[(String, String)], body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    for (name, value) in headers {
        let name = header::HeaderName::from_bytes(name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            h.append(name, value);
        }
    }
    resp
}

/// After the `101` went out: take the socket back from hyper and give it to the ticket.
async fn adopt_when_upgraded(on_upgrade: OnUpgrade, ticket: Ticket) {
    let result = match on_upgrade.await {
        Ok(upgraded) => adopt(upgraded, ticket),
        Err(e) => Err(Error::Io(std::io::Error::other(e))),
    };
    if let Err(e) = result {
        log::warn!("volley hand-off: the connection could not be adopted: {e}");
    }
}

/// The TCP socket and the bytes hyper read past the head, out of `upgraded`: from axum::serve
/// (hyper-util's `auto` server, which wraps the socket once more), or from hyper's own HTTP/1
/// server. Anything else (TLS) is refused, and dropping `upgraded` closes it.
fn adopt(upgraded: Upgraded, ticket: Ticket) -> Result<(), Error> {
    use hyper_util::server::conn::auto::upgrade::downcast;
    let (io, read_buf) = match downcast::<TokioIo<TcpStream>>(upgraded) {
        Ok(parts) => (parts.io, parts.read_buf),
        Err(upgraded) => match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (parts.io, parts.read_buf),
            Err(_) => return Err(Error::NotTcp),
        },
    };
    let stream = io.into_inner().into_std()?;
    ticket.adopt(stream, read_buf)
}
