//! The crate-level [`Error`]. The wire-level errors it wraps live in the protocol layer
//! (`protocol/error.rs`), each mapped to its protocol answer in one place:
//! [`ProtocolError::close_code`] for frames, [`HandshakeError::status`] for the upgrade request.

use std::fmt;
use std::io;

use crate::protocol::error::{HandshakeError, ProtocolError};

/// Any error volley reports to an application.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A socket or system error.
    Io(io::Error),
    /// The peer broke RFC 6455 / RFC 7692 after the upgrade; the connection was closed with
    /// [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    /// The upgrade request was rejected with [`HandshakeError::status`].
    Handshake(HandshakeError),
    /// The connection's outbound queue is over [`Config::max_outbound_bytes`](crate::Config).
    OutboundFull {
        /// Bytes already queued.
        queued: usize,
        /// The configured limit.
        max: usize,
    },
    /// The connection is closing or closed; nothing more can be sent to it.
    Closed,
    /// The server is shutting down or has stopped.
    ServerStopped,
    /// A request handed over ([`ServerHandle::hand_off`](crate::ServerHandle::hand_off)) is
    /// not a WebSocket upgrade request: the other server answers it itself.
    NotUpgrade,
    /// A connection offered for a hand-off is not a plain TCP socket (for example, TLS that
    /// another server terminates): volley cannot take it over. Terminate TLS in front of both
    /// (a proxy), or let volley listen for `wss://` itself (`ServerBuilder::bind_tls`).
    NotTcp,
    /// A fragment of a text message while a binary one is being sent in fragments, or the
    /// other way round (finish the message under way first).
    FragmentKind,
    /// A TLS configuration could not be used (a certificate or key that does not parse or
    /// match, a rustls setting it refuses).
    #[cfg(feature = "tls")]
    Tls(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Handshake(e) => write!(f, "handshake rejected: {e}"),
            Error::OutboundFull { queued, max } => {
                write!(
                    f,
                    "outbound queue full ({queued} bytes queued, limit {max})"
                )
            }
            Error::Closed => f.write_str("connection closed"),
            Error::ServerStopped => f.write_str("server stopped"),
            Error::NotUpgrade => f.write_str("not a WebSocket upgrade request"),
            Error::NotTcp => f.write_str(
                "the connection is not a plain TCP socket (TLS terminated by another server?)",
            ),
            Error::FragmentKind => {
                f.write_str("a fragmented message of the other kind is being sent; finish it first")
            }
            #[cfg(feature = "tls")]
            Error::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}
