//! Everything that touches sockets and threads.

pub(crate) mod context;
