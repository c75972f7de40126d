//! # volley
//!
//! An embeddable, high-performance WebSocket server framework: implement [`Handler`] (and a
//! [`Factory`] that creates one per connection), hand it to a [`Server`], and get RFC 6455 on a
//! multi-threaded mio event loop.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod config;
mod error;
mod handler;
mod message;
pub mod protocol;
mod runtime;
mod server;

pub use config::{AcceptMode, BackpressurePolicy, Config};
pub use error::{Error, HandshakeError, ProtocolError};
pub use handler::{Factory, Handler, Request, Response, Upgrade};
pub use message::{CloseCode, CloseFrame, Message, Utf8Bytes};
pub use runtime::context::Context;
pub use server::{ConnHandle, ConnId, Server, ServerHandle, Stats};

pub use bytes::Bytes;
