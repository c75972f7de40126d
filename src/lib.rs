//! # volley
//!
//! An embeddable, high-performance WebSocket server framework: implement [`Handler`] (and a
//! [`Factory`] that creates one per connection), hand it to a [`Server`], and get RFC 6455 on a
//! multi-threaded mio event loop.
//!
//! ```no_run
//! use volley::{Context, Handler, Message, Request, Server, Upgrade};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
//!         let _ = ctx.send(msg);
//!     }
//! }
//!
//! let server = Server::builder()
//!     .bind("127.0.0.1:9001")
//!     .start(|_req: &Request<'_>| Upgrade::accept(Echo))?;
//! server.run()?;
//! # Ok::<(), volley::Error>(())
//! ```
//!
//! The names to know: [`Server`] (and [`ServerBuilder`]), [`Factory`] and [`Handler`] (what you
//! implement), [`Context`] (what a handler can do), [`Message`], [`Config`], the handles
//! ([`ServerHandle`], [`ConnHandle`]) and [`Error`]. [`protocol`] is the sans-I/O RFC 6455 core,
//! public so clients such as the loadtest can reuse it. Topics shared across volley processes:
//! [`ServerBuilder::bridge`] with a [`Bridge`] (the Redis one, `RedisBridge`, needs the `redis`
//! feature). Inside an axum (or hyper) app on its port: [`ServerHandle::hand_off`], and with
//! the `axum` feature the `integrations::axum` extractor.
//!
//! The [`architecture`] module (docs/ARCHITECTURE.md in the repository) is the map: the layout,
//! the rule that keeps the layers apart, the threads, the life of a connection and of a frame.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod bridge;
mod config;
mod error;
#[cfg(feature = "axum")]
pub mod integrations;
pub mod protocol;
mod runtime;
mod server;
#[cfg(unix)]
mod signals;

#[cfg(feature = "redis")]
pub use bridge::RedisBridge;
pub use config::{
    AcceptMode, BackpressurePolicy, Compress, Config, DeflateMode, DeflateWindow, IpNetwork, Rate,
    RateLimitPolicy,
};
pub use error::Error;
pub use protocol::close::{CloseCode, CloseFrame};
pub use protocol::error::{HandshakeError, ProtocolError};
pub use protocol::message::{Chunk, Message, Utf8Bytes};
pub use protocol::reader::Streaming;
pub use runtime::bridge::{Bridge, BridgeNode};
pub use runtime::context::Context;
pub use runtime::deferred::{Deferred, PendingUpgrade};
pub use runtime::handle::{ConnHandle, ConnId, ServerHandle};
pub use runtime::handler::{Factory, Handler, RateLimited, Request, Response, Upgrade};
pub use runtime::handoff::{HandOff, HandOffDecision, HandOffHead, Ticket};
pub use runtime::stats::Stats;
pub use runtime::stream::ReadStreamer;
pub use runtime::streams::{HistoryOptions, Recovery, Since, StreamPosition, Subscribed};
#[cfg(feature = "tls")]
pub use runtime::tls::TlsConfig;
pub use runtime::waiter::{block_on, Stopped};
pub use server::{Server, ServerBuilder};
#[cfg(unix)]
pub use signals::SignalGuard;

pub use bytes::Bytes;

/// Internals exposed only for the criterion benches (`--features bench-internals`); not a
/// stable API.
#[cfg(feature = "bench-internals")]
pub mod bench_internals {
    pub use crate::runtime::outqueue::OutQueue;
}

/// The guide to volley's internals, for contributors and the curious: docs/ARCHITECTURE.md,
/// compiled into the API docs so docs.rs readers have it too. Documentation only.
#[doc = include_str!("../docs/ARCHITECTURE.md")]
pub mod architecture {}

/// The README's example, compiled and checked by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
