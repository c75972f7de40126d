//! Bridge engines: implementations of the runtime's [`Bridge`](crate::Bridge) trait, which
//! share topics with other nodes (other volley processes) through a broker.
//!
//! The trait, the [`BridgeNode`](crate::BridgeNode) an engine's threads work through and the
//! bridge's counters live on the runtime's side (`src/runtime/bridge.rs`): engines import them,
//! the runtime never imports an engine. The Redis bridge ([`RedisBridge`], feature `redis`) is
//! the engine shipped.

#[cfg(feature = "redis")]
mod redial;
#[cfg(feature = "redis")]
pub(crate) mod redis;

#[cfg(feature = "redis")]
pub use self::redis::RedisBridge;
