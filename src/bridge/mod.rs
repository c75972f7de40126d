//! Topic bridges: publishes shared with other nodes (other volley processes) through a broker.
//!
//! A [`Bridge`] is handed to [`ServerBuilder::bridge`](crate::ServerBuilder::bridge). The server
//! calls it, never blocking, from the worker that made the change: [`Bridge::publish`] for every
//! publish that should leave the node ([`Context::publish`](crate::Context::publish) and
//! [`ServerHandle::publish`](crate::ServerHandle::publish), not the `publish_local` variants),
//! and [`Bridge::topic_changed`] when a topic gains its first or loses its last subscriber on
//! this node. The bridge runs its own threads; what arrives from other nodes it hands to
//! [`BridgeNode::deliver`], which encodes each message once and reaches every worker with one
//! command. The Redis bridge ([`RedisBridge`], feature `redis`) is the engine shipped; another
//! (NATS, Redis Cluster's sharded pub/sub) implements the same four methods.

#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::fmt;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::config::Compress;
use crate::protocol::message::Message;
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::{Command, Delivery, Shared};

#[cfg(feature = "redis")]
pub use self::redis::RedisBridge;

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

/// What a bridge's threads see of the node: delivery to local subscribers, the topics that
/// have subscribers here, and the bridge's counters in [`Stats`](crate::Stats).
#[derive(Clone)]
pub struct BridgeNode {
    shared: Arc<Shared>,
}

impl fmt::Debug for BridgeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeNode")
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

impl BridgeNode {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        BridgeNode { shared }
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
        self.shared
            .bridge_stats
            .bridge_received
            .fetch_add(deliveries.len() as u64, Relaxed);
        let last = self.shared.remotes.len().saturating_sub(1);
        let mut deliveries = Some(deliveries);
        for (i, r) in self.shared.remotes.iter().enumerate() {
            let batch = if i == last {
                deliveries.take().unwrap_or_default()
            } else {
                deliveries.clone().unwrap_or_default()
            };
            let cmds = batch.into_iter().map(Command::Deliver).collect();
            r.send(Command::Batch(cmds));
        }
    }

    /// Whether `topic` has at least one subscriber on this node now.
    pub fn is_active(&self, topic: &str) -> bool {
        self.shared.subscriber_count(topic) > 0
    }

    /// Every topic with at least one subscriber on this node now (what to subscribe to after
    /// reconnecting).
    pub fn active_topics(&self) -> Vec<Arc<str>> {
        let g = self.shared.topics.lock().unwrap_or_else(|e| e.into_inner());
        g.keys().cloned().collect()
    }

    /// Set `Stats::bridge_connected`: whether the bridge reaches its broker now.
    pub fn set_connected(&self, connected: bool) {
        self.shared
            .bridge_stats
            .bridge_connected
            .store(connected as u64, Relaxed);
    }

    /// Count messages sent to the other nodes (`Stats::bridge_published`).
    pub fn count_published(&self, n: u64) {
        self.shared
            .bridge_stats
            .bridge_published
            .fetch_add(n, Relaxed);
    }

    /// Count outgoing messages the bridge's threads gave up on (`Stats::bridge_dropped`, which
    /// also counts those [`Bridge::publish`] refused).
    pub fn count_dropped(&self, n: u64) {
        self.shared
            .bridge_stats
            .bridge_dropped
            .fetch_add(n, Relaxed);
    }

    /// Count a connection to the broker made again after it was lost
    /// (`Stats::bridge_reconnects`).
    pub fn count_reconnect(&self) {
        self.shared
            .bridge_stats
            .bridge_reconnects
            .fetch_add(1, Relaxed);
    }
}
