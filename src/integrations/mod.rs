//! volley inside other HTTP servers: the other server keeps the listener and hands each
//! WebSocket upgrade over ([`ServerHandle::hand_off`](crate::ServerHandle::hand_off)); these
//! modules do that for one framework each.

#[cfg(feature = "axum")]
pub mod axum;
