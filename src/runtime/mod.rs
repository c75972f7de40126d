//! Everything that touches sockets and threads: worker event loops, connections, the timer wheel,
//! topics. Nothing here parses protocol bytes itself; it drives [`crate::protocol`].

pub(crate) mod accept;
pub(crate) mod bridge;
pub(crate) mod buffers;
pub(crate) mod compress;
pub(crate) mod connection;
pub(crate) mod context;
pub(crate) mod deferred;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod handoff;
#[cfg(feature = "metrics")]
pub(crate) mod histogram;
pub(crate) mod history;
pub(crate) mod limits;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod outqueue;
pub(crate) mod pubsub;
pub(crate) mod stats;
pub(crate) mod stream;
pub(crate) mod streams;
pub(crate) mod timer;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod upgrade;
pub(crate) mod users;
pub(crate) mod waiter;
pub(crate) mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use mio::Waker;

use crate::config::{Compress, Config};
use crate::protocol::close::CloseCode;
use crate::protocol::message::Message;
use crate::runtime::handle::ConnId;
use bridge::{Bridge, BridgeStats};
use pubsub::SharedFrame;
use stats::WorkerStats;

/// A request from another thread (or another worker) to a worker.
#[derive(Debug)]
pub(crate) enum Command {
    /// A socket accepted by the acceptor thread.
    Accepted(mio::net::TcpStream, SocketAddr, usize),
    /// Send a message to one connection (a stale id is ignored).
    Send(ConnId, Message, Compress),
    /// Close one connection.
    Close(ConnId, CloseCode, String),
    /// Deliver a publish or broadcast to this worker's connections.
    Deliver(Delivery),
    /// Several commands sent with one wake-up.
    Batch(Vec<Command>),
    /// A deferred upgrade of this (parked) connection was decided.
    Decided(ConnId),
    /// A request head handed over by another HTTP server: decide, park the handler.
    HandOff(Box<handoff::HandOffRequest>),
    /// The socket of an accepted hand-off, and the bytes read past its head.
    Adopt(ConnId, mio::net::TcpStream, bytes::Bytes),
    /// An accepted hand-off's ticket was dropped: free the parked handler.
    HandOffDropped(ConnId),
    /// Stop accepting new connections (take those already waiting first); keep serving.
    StopAccepting,
    /// Stop accepting, close every connection with the plan's code, exit when done.
    Shutdown(ShutdownPlan),
}

/// How a graceful shutdown closes connections.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownPlan {
    /// Sent in every close frame (1001 by default; 1012 "service restart" tells clients to
    /// reconnect at once).
    pub code: CloseCode,
    /// The close frames' reason.
    pub reason: String,
    /// How long to wait for queued messages to go out and peers to answer the close.
    pub grace: std::time::Duration,
}

/// A frame encoded once, for the connections of a topic or for every connection; `skip` is the
/// sender of a skip-sender publish. Cloning shares the frame.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    Publish {
        topic: Arc<str>,
        frame: SharedFrame,
        skip: Option<ConnId>,
    },
    Broadcast {
        frame: SharedFrame,
        skip: Option<ConnId>,
    },
    /// A publication of a topic that keeps a history, with its offset (`streams.rs`): every
    /// worker receives a stream's publications in offset order.
    Stream {
        topic: Arc<str>,
        frame: SharedFrame,
        offset: u64,
    },
}

/// How to reach one worker from another thread.
#[derive(Debug)]
pub(crate) struct Remote {
    pub tx: Sender<Command>,
    pub waker: Arc<Waker>,
}

impl Remote {
    /// Queue a command and wake the worker. False if the worker has exited.
    pub fn send(&self, cmd: Command) -> bool {
        if self.tx.send(cmd).is_err() {
            return false;
        }
        let _ = self.waker.wake();
        true
    }
}

/// State shared by every worker and handle of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub remotes: Vec<Remote>,
    pub stats: Box<[WorkerStats]>,
    /// Open sockets (handshaking and open), for `max_connections`.
    pub conn_count: AtomicUsize,
    pub stopping: AtomicBool,
    /// Worker threads still running; the last one to exit sets `stopped`.
    pub workers_running: AtomicUsize,
    /// Set once every worker has exited (`ServerHandle::stopped`).
    pub stopped: waiter::Signal,
    /// The per-IP limits' table, if any per-IP limit is configured.
    pub ip_limits: Option<limits::IpLimits>,
    /// Set by `ServerHandle::stop_accepting` (and shutdown): the acceptor thread exits.
    pub stop_accepting: AtomicBool,
    /// Subscriber count of every non-empty topic, across workers.
    pub topics: Mutex<HashMap<Arc<str>, usize>>,
    /// The first listener's address (unspecified, port 0, without listeners).
    pub local_addr: SocketAddr,
    /// Every listener's address, by listener index.
    pub local_addrs: Vec<SocketAddr>,
    /// Every listener's TLS state (None: plain), by listener index.
    #[cfg(feature = "tls")]
    pub tls: Vec<Option<Arc<tls::TlsListener>>>,
    /// Wakes the acceptor thread on shutdown (acceptor mode only).
    pub acceptor_waker: Option<Arc<Waker>>,
    /// Per-worker latency histograms (each written by its worker only).
    #[cfg(feature = "metrics")]
    pub histograms: Box<[histogram::WorkerHistograms]>,
    /// Where plain HTTP `GET`s get the metrics exposition, if anywhere.
    #[cfg(feature = "metrics")]
    pub metrics_path: Option<String>,
    /// The bridge to other nodes, if any: publishes leave through it, topic changes reach it.
    pub bridge: Option<Arc<dyn Bridge>>,
    /// The bridge's counters (`bridge_*`; written by the bridge's threads and, for drops, by
    /// workers).
    pub bridge_stats: BridgeStats,
    /// The topics that keep a history, and their streams.
    pub streams: streams::Streams,
}

impl Shared {
    /// Hand a publish to the bridge (if any), counting it if the bridge's queue refused it.
    pub fn bridge_publish(&self, topic: &Arc<str>, msg: &Message) {
        if let Some(b) = &self.bridge {
            if !b.publish(topic, msg) {
                self.bridge_stats.count_dropped(1);
            }
        }
    }

    /// Tell the bridge (if any) that `topic` gained its first or lost its last subscriber.
    pub fn bridge_topic_changed(&self, topic: &Arc<str>) {
        if let Some(b) = &self.bridge {
            b.topic_changed(topic);
        }
    }

    /// A worker thread has exited; the last one marks the server stopped.
    pub fn worker_exited(&self) {
        if self
            .workers_running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.stopped.set();
        }
    }

    /// Subscribers of `topic` across the server.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        let g = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        g.get(topic).copied().unwrap_or(0)
    }
}

/// Hand a delivery to every worker (used off-worker: one command per worker).
pub(crate) fn deliver_everywhere(shared: &Shared, delivery: Delivery) {
    for r in &shared.remotes {
        r.send(Command::Deliver(delivery.clone()));
    }
}
