//! Topic bridges as the runtime sees them: the [`Bridge`] trait it calls, the [`BridgeNode`] it
//! hands a bridge's threads, and the bridge's counters ([`BridgeStats`]).
//!
//! A [`Bridge`] shares publishes with other nodes (other volley processes) through a broker. It
//! is handed to [`ServerBuilder::bridge`](crate::ServerBuilder::bridge). The server calls it,
//! never blocking, from the worker that made the change: [`Bridge::publish`] for every publish
//! that should leave the node ([`Context::publish`](crate::Context::publish) and
//! [`ServerHandle::publish`], not the `publish_local` variants), and [`Bridge::topic_changed`]
//! when a topic gains its first or loses its last subscriber on this node. The bridge runs its
//! own threads; what arrives from other nodes it hands to [`BridgeNode::deliver`], which encodes
//! each message once and reaches every worker with one command.
//!
//! Implementations live outside the runtime (`src/bridge/`: the Redis one, `RedisBridge`,
//! feature `redis`); another engine (NATS, Redis Cluster's sharded pub/sub) implements the same
//! four methods. The runtime never imports them.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::config::Compress;
use crate::protocol::message::Message;
use crate::runtime::handle::ServerHandle;
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::stats::Stats;
use crate::runtime::{Command, Delivery, Shared};

/// A link between this node's topics and other nodes'.
///
/// Every method but [`start`](Bridge::start) is called on worker threads while they serve
/// connections: it must return at once (queue the work for the bridge's own threads, and drop
/// and count what does not fit in a bounded queue).
pub trait Bridge: Send + Sync + fmt::Debug + 'static {
    /// Start the bridge's threads, once, when the server starts. `node` is how they deliver
    /// messages from other nodes and read this node's topics.
    fn start(&self, node: BridgeNode) -> io::Result<()>;

    /// `msg` was published on `topic` on this node (and delivered here already): send it to
    /// the other nodes. Returns false if it was dropped (the outgoing queue is full); the
    /// server counts it in `Stats::bridge_dropped`.
    fn publish(&self, topic: &Arc<str>, msg: &Message) -> bool;

    /// `topic` gained its first or lost its last subscriber on this node. Several changes may
    /// be reported out of order from different workers: read the current state with
    /// [`BridgeNode::is_active`] when acting on it.
    fn topic_changed(&self, topic: &Arc<str>);

    /// The server has stopped: end the threads (after sending what is queued, if possible).
    fn stop(&self);
}

/// The bridge's counters, the `bridge_*` fields of [`Stats`]. Unlike a worker's block they
/// have several writers (the bridge's threads, and workers for refused publishes), so they are
/// read-modify-writes.
#[derive(Debug, Default)]
pub(crate) struct BridgeStats {
    connected: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

impl BridgeStats {
    /// Count `n` outgoing publishes dropped (`Stats::bridge_dropped`).
    pub(crate) fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Add these counters to a snapshot (its `bridge_*` fields).
    pub(crate) fn add_to(&self, s: &mut Stats) {
        s.bridge_connected += self.connected.load(Relaxed);
        s.bridge_published += self.published.load(Relaxed);
        s.bridge_received += self.received.load(Relaxed);
        s.bridge_dropped += self.dropped.load(Relaxed);
        s.bridge_reconnects += self.reconnects.load(Relaxed);
    }
}

/// The server as a bridge's threads see it: a [`ServerHandle`] narrowed to what a bridge needs.
///
/// It delivers messages from other nodes to this node's subscribers (in batches: one command
/// and one wake-up per worker, where [`ServerHandle::publish_local`] sends one command per
/// message), tells which topics have subscribers here, and keeps the bridge's counters in
/// [`Stats`] (`bridge_*`). The server makes one and passes it to [`Bridge::start`].
#[derive(Clone)]
pub struct BridgeNode {
    server: ServerHandle,
}

impl fmt::Debug for BridgeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeNode")
            .field("local_addr", &self.server.local_addr())
            .finish()
    }
}

impl BridgeNode {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        BridgeNode {
            server: ServerHandle::from_shared(shared),
        }
    }

    fn stats(&self) -> &BridgeStats {
        &self.server.shared().bridge_stats
    }

    /// Deliver messages from other nodes to this node's subscribers, in order: each message is
    /// encoded once, and every worker gets the whole batch with one command and one wake-up.
    /// Counted in `Stats::bridge_received`.
    pub fn deliver(&self, batch: impl IntoIterator<Item = (Arc<str>, Message)>) {
        let deliveries: Vec<Delivery> = batch
            .into_iter()
            .map(|(topic, msg)| Delivery::Publish {
                topic,
                frame: SharedFrame::encode(&msg, Compress::Auto),
                skip: None,
            })
            .collect();
        if deliveries.is_empty() {
            return;
        }
        self.stats()
            .received
            .fetch_add(deliveries.len() as u64, Relaxed);
        deliver_batch_everywhere(self.server.shared(), deliveries);
    }

    /// Whether `topic` has at least one subscriber on this node now.
    pub fn is_active(&self, topic: &str) -> bool {
        self.server.subscriber_count(topic) > 0
    }

    /// Every topic with at least one subscriber on this node now (what to subscribe to after
    /// reconnecting).
    pub fn active_topics(&self) -> Vec<Arc<str>> {
        let topics = &self.server.shared().topics;
        let g = topics.lock().unwrap_or_else(|e| e.into_inner());
        g.keys().cloned().collect()
    }

    /// Set `Stats::bridge_connected`: whether the bridge reaches its broker now.
    pub fn set_connected(&self, connected: bool) {
        self.stats().connected.store(connected as u64, Relaxed);
    }

    /// Count messages sent to the other nodes (`Stats::bridge_published`).
    pub fn count_published(&self, n: u64) {
        self.stats().published.fetch_add(n, Relaxed);
    }

    /// Count outgoing messages the bridge's threads gave up on (`Stats::bridge_dropped`, which
    /// also counts those [`Bridge::publish`] refused).
    pub fn count_dropped(&self, n: u64) {
        self.stats().count_dropped(n);
    }

    /// Count a connection to the broker made again after it was lost
    /// (`Stats::bridge_reconnects`).
    pub fn count_reconnect(&self) {
        self.stats().reconnects.fetch_add(1, Relaxed);
    }
}

/// Hand every worker the whole batch as one [`Command::Batch`] (one wake-up each); the last
/// worker gets the batch itself, the others clones (which share the frames).
fn deliver_batch_everywhere(shared: &Shared, deliveries: Vec<Delivery>) {
    let last = shared.remotes.len().saturating_sub(1);
    let mut deliveries = Some(deliveries);
    for (i, r) in shared.remotes.iter().enumerate() {
        let batch = if i == last {
            deliveries.take().unwrap_or_default()
        } else {
            deliveries.clone().unwrap_or_default()
        };
        r.send(Command::Batch(
            batch.into_iter().map(Command::Deliver).collect(),
        ));
    }
}
