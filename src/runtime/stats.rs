//! Per-worker traffic counters, summed on read.
//!
//! Each worker is the only writer of its own counters, so an increment is a relaxed load and store
//! (no locked read-modify-write) on a cache line no other worker writes; readers sum all workers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One worker's counters, on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct WorkerStats {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub handshakes_rejected: AtomicU64,
    pub http_requests: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped_messages: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    pub timeouts: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub closed_1002: AtomicU64,
    pub closed_1007: AtomicU64,
    pub closed_1009: AtomicU64,
    pub compressed_in: AtomicU64,
    pub compressed_out: AtomicU64,
}

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

/// Server-wide statistics: a snapshot summed over every worker by
/// [`ServerHandle::stats`](crate::ServerHandle::stats). Counters are monotonic except
/// `connections_open`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// WebSocket connections open now (after the upgrade, until closed).
    pub connections_open: u64,
    /// WebSocket connections opened since start.
    pub connections_total: u64,
    /// Upgrade requests refused (bad request, 426, 431, application rejection, over capacity).
    pub handshakes_rejected: u64,
    /// Plain HTTP requests answered by [`Factory::http`](crate::Factory::http).
    pub http_requests: u64,
    /// Data messages received.
    pub messages_in: u64,
    /// Payload bytes of data messages received (after inflating).
    pub bytes_in: u64,
    /// Data messages queued for sending (a publish counts once per recipient).
    pub messages_out: u64,
    /// Bytes written to sockets (frames, headers included).
    pub bytes_out: u64,
    /// Messages dropped for a recipient at its outbound limit ([`BackpressurePolicy::Drop`](crate::BackpressurePolicy::Drop)).
    pub dropped_messages: u64,
    /// Connections closed for exceeding the outbound limit ([`BackpressurePolicy::Close`](crate::BackpressurePolicy::Close)).
    pub slow_consumers_closed: u64,
    /// Connections ended by a timeout (handshake, heartbeat, idle, close).
    pub timeouts: u64,
    /// Connections failed for a protocol violation by the peer (all close codes).
    pub protocol_errors: u64,
    /// Of those, closed with 1002 (protocol error).
    pub closed_protocol_error: u64,
    /// Of those, closed with 1007 (invalid UTF-8).
    pub closed_invalid_payload: u64,
    /// Of those, closed with 1009 (too big).
    pub closed_too_big: u64,
    /// Compressed (permessage-deflate) messages received.
    pub compressed_in: u64,
    /// Compressed messages sent (a shared-mode publish counts once per recipient).
    pub compressed_out: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, w: &WorkerStats) {
        let g = |c: &AtomicU64| c.load(Relaxed);
        self.connections_open += g(&w.connections_open);
        self.connections_total += g(&w.connections_total);
        self.handshakes_rejected += g(&w.handshakes_rejected);
        self.http_requests += g(&w.http_requests);
        self.messages_in += g(&w.messages_in);
        self.bytes_in += g(&w.bytes_in);
        self.messages_out += g(&w.messages_out);
        self.bytes_out += g(&w.bytes_out);
        self.dropped_messages += g(&w.dropped_messages);
        self.slow_consumers_closed += g(&w.slow_consumers_closed);
        self.timeouts += g(&w.timeouts);
        self.protocol_errors += g(&w.protocol_errors);
        self.closed_protocol_error += g(&w.closed_1002);
        self.closed_invalid_payload += g(&w.closed_1007);
        self.closed_too_big += g(&w.closed_1009);
        self.compressed_in += g(&w.compressed_in);
        self.compressed_out += g(&w.compressed_out);
    }
}
