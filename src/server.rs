//! Server, its builder and handles.

/// A connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    worker: u16,
    slot: u32,
    generation: u32,
}
/// Handle to one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {}
/// Handle to the server.
#[derive(Debug, Clone)]
pub struct ServerHandle {}
/// Statistics.
#[derive(Debug, Clone, Default)]
pub struct Stats {}
/// The server.
#[derive(Debug)]
pub struct Server {}
