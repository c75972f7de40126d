//! The handles that reach a running server from any thread: [`ConnId`] (which connection),
//! [`ConnHandle`] (send to or close one connection) and [`ServerHandle`] (publish, broadcast,
//! statistics, shutdown). They only send [`Command`]s to workers and read [`Shared`] state.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::Compress;
use crate::error::Error;
use crate::protocol::close::CloseCode;
use crate::protocol::message::Message;
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::stats::Stats;
use crate::runtime::streams::StreamPosition;
use crate::runtime::users;
use crate::runtime::{deliver_everywhere, Command, Delivery, Shared, ShutdownPlan};

/// Identifies one connection for the server's lifetime: (worker, slot, generation). A slot
/// reused by a later connection gets a new generation, so a stale id or handle never reaches it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    worker: u16,
    slot: u32,
    generation: u32,
}

impl ConnId {
    pub(crate) fn new(worker: u16, slot: u32, generation: u32) -> Self {
        ConnId {
            worker,
            slot,
            generation,
        }
    }
    pub(crate) fn worker(self) -> u16 {
        self.worker
    }
    pub(crate) fn slot(self) -> u32 {
        self.slot
    }
    pub(crate) fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConnId({}.{}.{})",
            self.worker, self.slot, self.generation
        )
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.worker, self.slot, self.generation)
    }
}

/// How log lines name a connection: its id and the client's address, e.g.
/// `conn 0.12.1 127.0.0.1:53214`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLabel {
    pub id: ConnId,
    pub addr: SocketAddr,
}

impl fmt::Display for ConnLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {} {}", self.id, self.addr)
    }
}

/// A `Send + Clone` handle to one connection, usable from any thread: send to it or close it.
/// Operations on a connection that has since closed are ignored. Nothing here waits (a command
/// on an unbounded channel and one wake-up of the worker), so async tasks call it directly.
#[derive(Clone)]
pub struct ConnHandle {
    id: ConnId,
    shared: Arc<Shared>,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnHandle").field(&self.id).finish()
    }
}

impl ConnHandle {
    pub(crate) fn new(id: ConnId, shared: Arc<Shared>) -> Self {
        ConnHandle { id, shared }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queue a message for the connection (delivered by its worker on its next loop turn).
    /// Fails only if the server has stopped.
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.send_with(msg, Compress::Auto)
    }

    /// [`ConnHandle::send`], compressed or not as `how` says (if the connection negotiated
    /// permessage-deflate).
    pub fn send_with(&self, msg: impl Into<Message>, how: Compress) -> Result<(), Error> {
        self.command(Command::Send(self.id, msg.into(), how))
    }

    /// Start the closing handshake with `code` and `reason`.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.command(Command::Close(self.id, code, reason.to_string()))
    }

    fn command(&self, cmd: Command) -> Result<(), Error> {
        let remote = &self.shared.remotes[self.id.worker as usize];
        if remote.send(cmd) {
            Ok(())
        } else {
            Err(Error::ServerStopped)
        }
    }
}

/// A `Send + Clone` handle to a running server: publish and broadcast from any thread, read
/// statistics, shut down, hand connections over from another HTTP server. Nothing here waits
/// (commands to the workers; `topics` and `subscriber_count` hold a mutex for a lookup), so
/// async tasks call it directly; [`stopped`](Self::stopped) is the awaitable end.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

impl ServerHandle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        ServerHandle { shared }
    }

    /// The state every worker and handle shares.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The shared state itself, for handles that outlive a borrow.
    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Every address the server listens on, in the order they were bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.local_addrs.clone()
    }

    /// Present `tls`'s certificates on every TLS listener from now on: new handshakes use them,
    /// established connections keep working with theirs. The examples call it on SIGHUP after
    /// reading the PEM files again. Returns how many listeners took it.
    #[cfg(feature = "tls")]
    pub fn reload_tls(&self, tls: crate::runtime::tls::TlsConfig) -> usize {
        let mut n = 0;
        for l in self.shared.tls.iter().flatten() {
            l.reload(tls.clone());
            n += 1;
        }
        log::info!("TLS certificates reloaded on {n} listener(s)");
        n
    }

    /// Send `msg` to every subscriber of `topic` on every worker. Encoded once; one command per
    /// worker. With a [bridge](crate::ServerBuilder::bridge) it also goes to the topic's
    /// subscribers on the other nodes ([`publish_local`](Self::publish_local) keeps it here).
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) {
        self.publish_with(topic, msg, Compress::Auto);
    }

    /// [`ServerHandle::publish`], compressed or not for deflate subscribers as `how` says.
    pub fn publish_with(&self, topic: &str, msg: impl Into<Message>, how: Compress) {
        let (topic, msg): (Arc<str>, Message) = (Arc::from(topic), msg.into());
        self.shared.bridge_publish(&topic, &msg);
        self.deliver_here(topic, &msg, how);
    }

    /// [`ServerHandle::publish`] to this node's subscribers only, never through the bridge.
    pub fn publish_local(&self, topic: &str, msg: impl Into<Message>) {
        self.deliver_here(Arc::from(topic), &msg.into(), Compress::Auto);
    }

    fn deliver_here(&self, topic: Arc<str>, msg: &Message, how: Compress) {
        let frame = SharedFrame::encode(msg, how);
        deliver_everywhere(
            &self.shared,
            Delivery::Publish {
                topic,
                frame,
                skip: None,
            },
        );
    }

    /// [`Context::publish_stream`](crate::Context::publish_stream) from any thread: the
    /// position of the publication, or `None` if `topic` keeps no history.
    pub fn publish_stream(
        &self,
        topic: &str,
        build: impl FnOnce(&StreamPosition) -> Message,
    ) -> Option<StreamPosition> {
        let shared = &self.shared;
        shared
            .streams
            .publish(&shared.remotes, topic, build, Compress::Auto)
    }

    /// Send `msg` to every connection tied to `user` ([`Context::set_user`]) on every node
    /// (through the bridge, if any), encoded once.
    ///
    /// [`Context::set_user`]: crate::Context::set_user
    pub fn send_to_user(&self, user: &str, msg: impl Into<Message>) {
        self.publish(&users::messages_topic(user), msg);
    }

    /// Close every connection tied to `user` on every node, with `code` and `reason`.
    pub fn disconnect_user(&self, user: &str, code: CloseCode, reason: &str) {
        let payload = users::encode_disconnect(code, reason);
        self.publish(&users::disconnects_topic(user), Message::Binary(payload));
    }

    /// This node's connections tied to `user`.
    pub fn user_connections(&self, user: &str) -> usize {
        self.subscriber_count(&users::messages_topic(user))
    }

    /// Send `msg` to every open connection.
    pub fn broadcast(&self, msg: impl Into<Message>) {
        let frame = SharedFrame::encode(&msg.into(), Compress::Auto);
        deliver_everywhere(&self.shared, Delivery::Broadcast { frame, skip: None });
    }

    /// A handle to the connection `id` (which may have closed since).
    pub fn connection(&self, id: ConnId) -> ConnHandle {
        ConnHandle::new(id, self.shared.clone())
    }

    /// Subscribers of `topic` across the server.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.shared.subscriber_count(topic)
    }

    /// Every topic with at least one subscriber, with its subscriber count.
    pub fn topics(&self) -> Vec<(String, usize)> {
        let g = self.shared.topics.lock().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .filter(|(k, _)| !users::is_internal(k))
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// The server's statistics and latency histograms in the Prometheus text exposition format
    /// (version 0.0.4): what [`ServerBuilder::metrics_path`](crate::ServerBuilder::metrics_path)
    /// serves, for applications that serve it elsewhere. Needs the `metrics` feature.
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> String {
        let mut out = String::with_capacity(8 << 10);
        // Writing to a String cannot fail.
        let _ = self.write_metrics(&mut out);
        out
    }

    /// Write [`metrics`](Self::metrics) to `out` (a `String`, a `fmt` adapter over a socket...).
    #[cfg(feature = "metrics")]
    pub fn write_metrics(&self, out: &mut impl fmt::Write) -> fmt::Result {
        crate::runtime::metrics::write(&self.shared, out)
    }

    /// The content type to serve [`metrics`](Self::metrics) with.
    #[cfg(feature = "metrics")]
    pub const METRICS_CONTENT_TYPE: &'static str = crate::runtime::metrics::CONTENT_TYPE;

    /// A snapshot of the server's counters, summed over workers (no locks).
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for w in self.shared.stats.iter() {
            s.add(w);
        }
        self.shared.bridge_stats.add_to(&mut s);
        s
    }

    /// Client addresses the per-IP table tracks now (0 without per-IP limits): bounded by
    /// `Config::max_tracked_ips` plus the addresses with open connections.
    pub fn tracked_ips(&self) -> usize {
        self.shared.ip_limits.as_ref().map_or(0, |l| l.tracked())
    }

    /// Stop accepting new connections and keep serving the established ones: the listeners
    /// are closed (connections already waiting in them are taken first). With `SO_REUSEPORT`
    /// another process bound to the same port goes on accepting: the first step of a restart
    /// without dropped connections (see docs/ARCHITECTURE.md, "Restarts").
    pub fn stop_accepting(&self) {
        if self.shared.stop_accepting.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(w) = &self.shared.acceptor_waker {
            let _ = w.wake();
        }
        for r in &self.shared.remotes {
            r.send(Command::StopAccepting);
        }
    }

    /// A future that is ready once the server has stopped (every worker thread exited, after
    /// a shutdown): await it from an async task instead of blocking a thread in
    /// [`Server::run`](crate::Server::run). It needs no async runtime; any executor polls it.
    pub fn stopped(&self) -> crate::runtime::waiter::Stopped {
        crate::runtime::waiter::Stopped {
            shared: self.shared.clone(),
        }
    }

    /// Whether the server has stopped (see [`stopped`](Self::stopped)).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.is_set()
    }

    /// Begin a graceful shutdown with close 1001 ("going away") and `Config::close_timeout`
    /// of grace: [`shutdown_with`](Self::shutdown_with).
    pub fn shutdown(&self) {
        let grace = self.shared.config.close_timeout;
        self.shutdown_with(CloseCode::GOING_AWAY, "server shutdown", grace);
    }

    /// Begin a graceful shutdown: stop accepting, then close every connection with `code` and
    /// `reason` (e.g. 1012 "service restart", which tells clients to reconnect at once), after
    /// everything already queued for it; wait up to `grace` for the queues to drain and the
    /// peers to answer, then drop what is left; `Server::run` then returns. Messages published
    /// or sent before this call reach every healthy peer before its close frame. Later calls
    /// do nothing.
    pub fn shutdown_with(&self, code: CloseCode, reason: &str, grace: std::time::Duration) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(w) = &self.shared.acceptor_waker {
            let _ = w.wake();
        }
        let plan = ShutdownPlan {
            code,
            reason: reason.to_owned(),
            grace,
        };
        for r in &self.shared.remotes {
            r.send(Command::Shutdown(plan.clone()));
        }
    }
}
