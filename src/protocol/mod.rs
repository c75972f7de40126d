//! The sans-I/O protocol core: RFC 6455 (and RFC 7692) over byte slices, with no sockets and no
//! threads. The server runtime drives it; the loadtest client reuses it (framing and masking,
//! the client side of the handshake, the reader, permessage-deflate). Everything here can be
//! unit-tested and fuzzed on plain bytes.
//!
//! This module is a leaf: nothing in it imports anything of the crate outside `protocol/`
//! (the wire types [`Message`](message::Message), [`CloseCode`](close::CloseCode) and the errors
//! live here and are re-exported at the crate root).

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod proxy;
pub mod reader;
pub mod utf8;

#[cfg(test)]
pub(crate) mod test_rng;
