//! Shared start-up for the peer binaries: `BIN [ADDR] [WORKERS]`, a tokio multi-thread runtime
//! with `worker_threads = WORKERS` (default 1), and a listener on ADDR (default 127.0.0.1:9001).

use std::net::SocketAddr;

/// `(addr, workers)` from the command line.
pub fn args() -> (SocketAddr, usize) {
    let mut it = std::env::args().skip(1);
    let addr = it.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let workers = it
        .next()
        .map(|w| w.parse().expect("WORKERS must be a number"))
        .unwrap_or(1);
    (addr.parse().expect("ADDR must be host:port"), workers)
}

/// The runtime the peers run on.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
