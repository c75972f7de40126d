//! What a shard's threads share: the phase the control thread moves them through, and each
//! poll thread's progress, which the control thread sums into [`Progress`] snapshots.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Opening connections.
pub const CONNECT: u8 = 0;
/// The measurement window.
pub const RUN: u8 = 1;
/// After the window: no new requests, outstanding ones may still arrive.
pub const DRAIN: u8 = 2;
/// Closing every connection.
pub const CLOSE: u8 = 3;

/// Per-thread progress, written by the thread, read by the control thread.
#[derive(Debug, Default)]
pub struct ThreadState {
    /// Counters mirrored from the thread's stats.
    pub attempted: AtomicU64,
    /// Handshakes completed.
    pub established: AtomicU64,
    /// Connect failures.
    pub failed: AtomicU64,
    /// Established connections lost.
    pub dropped: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
    /// Errors.
    pub errors: AtomicU64,
    /// Every planned connection is established or failed.
    pub connect_done: AtomicBool,
    /// When that happened, ns after the shard's epoch.
    pub last_connect_ns: AtomicU64,
    /// Nothing outstanding (echo: no request in flight).
    pub drained: AtomicBool,
    /// The thread has finished.
    pub finished: AtomicBool,
}

/// State shared by a shard's threads.
#[derive(Debug)]
pub struct Shared {
    /// Current phase.
    pub phase: AtomicU8,
    /// One per poll thread.
    pub threads: Vec<ThreadState>,
    /// wss:// targets: the TLS client configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A progress snapshot, summed over a shard's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Phase.
    pub phase: u8,
    /// Connections attempted.
    pub attempted: u64,
    /// Established.
    pub established: u64,
    /// Failed to connect.
    pub failed: u64,
    /// Dropped after connecting.
    pub dropped: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Errors.
    pub errors: u64,
}

impl Progress {
    /// Sum of two snapshots (phase: the lowest, i.e. the laggard's).
    pub fn add(&self, o: &Progress) -> Progress {
        Progress {
            phase: self.phase.min(o.phase),
            attempted: self.attempted + o.attempted,
            established: self.established + o.established,
            failed: self.failed + o.failed,
            dropped: self.dropped + o.dropped,
            sent: self.sent + o.sent,
            received: self.received + o.received,
            errors: self.errors + o.errors,
        }
    }
}

impl Shared {
    /// The threads' progress, summed.
    pub fn snapshot(&self) -> Progress {
        let mut p = Progress {
            phase: self.phase.load(Relaxed),
            ..Progress::default()
        };
        for t in &self.threads {
            p.attempted += t.attempted.load(Relaxed);
            p.established += t.established.load(Relaxed);
            p.failed += t.failed.load(Relaxed);
            p.dropped += t.dropped.load(Relaxed);
            p.sent += t.sent.load(Relaxed);
            p.received += t.received.load(Relaxed);
            p.errors += t.errors.load(Relaxed);
        }
        p
    }
}
