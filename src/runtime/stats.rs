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

/// The counter of `code` among the `closes_*` counters.
pub(crate) fn close_counter(w: &WorkerStats, code: u16) -> &AtomicU64 {
    match code {
        1000 => &w.closes_normal,
        1001 => &w.closes_going_away,
        1002 => &w.closes_protocol_error,
        1003 => &w.closes_unsupported,
        1005 => &w.closes_no_status,
        1006 => &w.closes_abnormal,
        1007 => &w.closes_invalid_payload,
        1008 => &w.closes_policy,
        1009 => &w.closes_too_big,
        1011 => &w.closes_internal,
        _ => &w.closes_other,
    }
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
        /// the gauges `connections_open` and `bridge_connected`.
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
    /// TLS connections closed for a TLS error (a bad record, a failed handshake: plaintext
    /// on a TLS port, an unsupported hello).
    tls_errors,
    /// Dedicated compressors released down to their window after
    /// [`Config::deflate_idle_release`](crate::Config::deflate_idle_release) without use.
    deflate_released,
    /// Of `messages_in`, text messages (the rest are binary).
    text_messages_in,
    /// Of `messages_out`, text messages (the rest are binary).
    text_messages_out,
    /// Of `handshakes_rejected`: a malformed request or upgrade (400).
    rejected_malformed,
    /// Of `handshakes_rejected`: an upgrade with a method other than GET (405).
    rejected_method,
    /// Of `handshakes_rejected`: a `Sec-WebSocket-Version` other than 13 (426).
    rejected_version,
    /// Of `handshakes_rejected`: a request head over `max_handshake_bytes` (431).
    rejected_too_large,
    /// Of `handshakes_rejected`: refused by `Factory::upgrade` ([`Upgrade::Reject`](crate::Upgrade::Reject)).
    rejected_by_application,
    /// Of `handshakes_rejected`: `Factory::upgrade` panicked (answered 500).
    rejected_factory_panic,
    /// Data messages over `Config::message_rate` or `Config::byte_rate` (dropped, or their
    /// connection closed with 1008, per `Config::rate_limit_policy`).
    rate_limited,
    /// Of `handshakes_rejected`: over a per-IP limit (429).
    rejected_per_ip,
    /// Of `handshakes_rejected`: over `max_connections` (503; counted by workers, so not in
    /// acceptor mode, where the acceptor thread answers).
    rejected_over_capacity,
    /// Upgrades the application deferred ([`Upgrade::Defer`](crate::Upgrade::Defer)).
    upgrades_deferred,
    /// Of `handshakes_rejected`: a deferred upgrade not decided within the handshake timeout
    /// (503).
    rejected_undecided,
    /// Connections closed with 1000 (normal), as their handler's `on_close` saw it.
    closes_normal,
    /// Connections closed with 1001 (going away).
    closes_going_away,
    /// Connections closed with 1002 (protocol error).
    closes_protocol_error,
    /// Connections closed with 1003 (unsupported data).
    closes_unsupported,
    /// Connections closed by a close frame without a code (1005).
    closes_no_status,
    /// Connections that ended without a close handshake (1006: reset, dead peer, timeout).
    closes_abnormal,
    /// Connections closed with 1007 (invalid payload).
    closes_invalid_payload,
    /// Connections closed with 1008 (policy violation).
    closes_policy,
    /// Connections closed with 1009 (message too big).
    closes_too_big,
    /// Connections closed with 1011 (internal error).
    closes_internal,
    /// Connections closed with any other code.
    closes_other,
    /// Bytes ever queued for sending (frames, HTTP answers); see [`Stats::queued_bytes`].
    bytes_queued,
    /// Queued bytes discarded unwritten with their connection (a peer gone with a full queue).
    bytes_discarded,
    /// 1 while the bridge to other nodes ([`ServerBuilder::bridge`](crate::ServerBuilder::bridge))
    /// reaches its broker, else 0 (a gauge; 0 without a bridge).
    bridge_connected,
    /// Publishes sent to other nodes through the bridge.
    bridge_published,
    /// Messages from other nodes delivered here through the bridge (each once, however many
    /// subscribers it reached).
    bridge_received,
    /// Publishes dropped because the bridge's outgoing queue was full (its broker unreachable
    /// or too slow).
    bridge_dropped,
    /// Connections to the bridge's broker made again after one was lost.
    bridge_reconnects,
    /// Stream subscriptions that recovered every publication after their position
    /// ([`Recovery::Recovered`](crate::Recovery::Recovered)).
    recoveries,
    /// Stream subscriptions whose position could not be recovered
    /// ([`Recovery::Failed`](crate::Recovery::Failed)).
    recoveries_failed,
}

impl Stats {
    /// Bytes queued for sending and not yet written, now: queued − written − discarded.
    pub fn queued_bytes(&self) -> u64 {
        self.bytes_queued
            .saturating_sub(self.bytes_out)
            .saturating_sub(self.bytes_discarded)
    }
}
