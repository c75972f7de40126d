//! Per-worker traffic counters, summed on read.
//!
//! Each worker is the only writer of its own counters, so an increment is a relaxed load and store
//! (no locked read-modify-write) on a cache line no other worker writes; readers sum all workers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Add to a counter that only the calling worker writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Subtract from a single-writer gauge.
#[inline]
pub(crate) fn drop_one(c: &AtomicU64) {
    c.store(c.load(Relaxed).saturating_sub(1), Relaxed);
}

/// The one list of counters: generates the per-worker atomics ([`WorkerStats`]), the public
/// snapshot ([`Stats`], with these docs) and the summing, so the three never drift apart.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// One worker's counters, on its own cache lines.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub(crate) struct WorkerStats {
            $(pub $name: AtomicU64,)*
        }

        /// Server-wide statistics: a snapshot summed over every worker by
        /// [`ServerHandle::stats`](crate::ServerHandle::stats). Counters are monotonic except
        /// `connections_open`.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Stats {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Stats {
            /// Add one worker's counters to this snapshot.
            pub(crate) fn add(&mut self, w: &WorkerStats) {
                $(self.$name += w.$name.load(Relaxed);)*
            }
        }
    };
}

counters! {
    /// WebSocket connections open now (after the upgrade, until closed).
    connections_open,
    /// WebSocket connections opened since start.
    connections_total,
    /// Upgrade requests refused (bad request, 426, 431, application rejection, over capacity).
    handshakes_rejected,
    /// Plain HTTP requests answered by [`Factory::http`](crate::Factory::http).
    http_requests,
    /// Data messages received.
    messages_in,
    /// Payload bytes of data messages received (after inflating).
    bytes_in,
    /// Data messages queued for sending (a publish counts once per recipient).
    messages_out,
    /// Bytes written to sockets (frames, headers included).
    bytes_out,
    /// Messages dropped for a recipient at its outbound limit ([`BackpressurePolicy::Drop`](crate::BackpressurePolicy::Drop)).
    dropped_messages,
    /// Connections closed for exceeding the outbound limit ([`BackpressurePolicy::Close`](crate::BackpressurePolicy::Close)).
    slow_consumers_closed,
    /// Connections ended by a timeout (handshake, heartbeat, idle, close).
    timeouts,
    /// Connections failed for a protocol violation by the peer (all close codes).
    protocol_errors,
    /// Of those, closed with 1002 (protocol error).
    closed_protocol_error,
    /// Of those, closed with 1007 (invalid UTF-8).
    closed_invalid_payload,
    /// Of those, closed with 1009 (too big).
    closed_too_big,
    /// Compressed (permessage-deflate) messages received.
    compressed_in,
    /// Compressed messages sent (a shared-mode publish counts once per recipient).
    compressed_out,
}
