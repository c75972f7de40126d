//! Everything that touches sockets and threads.

pub(crate) mod context;
// Unused outside tests until the worker drives it.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod timer;
