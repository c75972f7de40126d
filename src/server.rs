//! [`Server`], its builder, and the handles that reach it from any thread.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::config::{AcceptMode, Config};
use crate::error::Error;
use crate::handler::Factory;
use crate::protocol::close::CloseCode;
use crate::protocol::message::Message;
use crate::runtime::accept;
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::stats::WorkerStats;
use crate::runtime::worker::{Worker, WAKER};
use crate::runtime::{deliver_everywhere, Command, Delivery, Remote, Shared};

pub use crate::runtime::stats::Stats;

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

/// A `Send + Clone` handle to one connection, usable from any thread: send to it or close it.
/// Operations on a connection that has since closed are ignored.
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
        self.command(Command::Send(self.id, msg.into()))
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
/// statistics, shut down.
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

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Send `msg` to every subscriber of `topic` on every worker. Encoded once; one command per
    /// worker.
    pub fn publish(&self, topic: &str, msg: impl Into<Message>) {
        let (topic, frame) = (Arc::from(topic), SharedFrame::encode(&msg.into()));
        deliver_everywhere(
            &self.shared,
            Delivery::Publish {
                topic,
                frame,
                skip: None,
            },
        );
    }

    /// Send `msg` to every open connection.
    pub fn broadcast(&self, msg: impl Into<Message>) {
        let frame = SharedFrame::encode(&msg.into());
        deliver_everywhere(&self.shared, Delivery::Broadcast { frame, skip: None });
    }

    /// A handle to the connection `id` (which may have closed since).
    pub fn connection(&self, id: ConnId) -> ConnHandle {
        ConnHandle::new(id, self.shared.clone())
    }

    /// Subscribers of `topic` across the server.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        subscriber_count(&self.shared, topic)
    }

    /// Every topic with at least one subscriber, with its subscriber count.
    pub fn topics(&self) -> Vec<(String, usize)> {
        let g = self.shared.topics.lock().unwrap_or_else(|e| e.into_inner());
        g.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// A snapshot of the server's counters, summed over workers (no locks).
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for w in self.shared.stats.iter() {
            s.add(w);
        }
        s
    }

    /// Begin a graceful shutdown: stop accepting, send close 1001 to every connection, wait up to
    /// `Config::close_timeout` for the answers; [`Server::run`] then returns.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(w) = &self.shared.acceptor_waker {
            let _ = w.wake();
        }
        for r in &self.shared.remotes {
            r.send(Command::Shutdown);
        }
    }
}

pub(crate) fn subscriber_count(shared: &Shared, topic: &str) -> usize {
    let g = shared.topics.lock().unwrap_or_else(|e| e.into_inner());
    g.get(topic).copied().unwrap_or(0)
}

/// Builds a [`Server`]: configuration, address, then [`ServerBuilder::start`] with a factory.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: Config,
    addr: String,
}

impl ServerBuilder {
    /// Use this configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Listen on `addr` (default `127.0.0.1:8080`; port 0 picks a free port).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Bind, start the worker threads, and return the running server.
    pub fn start<F: Factory>(self, factory: F) -> Result<Server, Error> {
        Server::start(self.config, &self.addr, factory)
    }
}

/// A running WebSocket server: worker threads started, listening.
///
/// ```no_run
/// use volley::{Context, Handler, Message, Request, Server, Upgrade};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
///         let _ = ctx.send(msg);
///     }
/// }
///
/// let server = Server::builder()
///     .bind("127.0.0.1:9001")
///     .start(|_req: &Request<'_>| Upgrade::accept(Echo))
///     .expect("bind");
/// println!("listening on {}", server.local_addr());
/// server.run().expect("server");
/// ```
#[derive(Debug)]
pub struct Server {
    handle: ServerHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// A builder with the default [`Config`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: Config::default(),
            addr: "127.0.0.1:8080".to_string(),
        }
    }

    fn start<F: Factory>(config: Config, addr: &str, factory: F) -> Result<Server, Error> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
        let n = config.workers.clamp(1, u16::MAX as usize);
        let reuse = config.accept_mode == AcceptMode::ReusePort && accept::HAS_REUSE_PORT;

        // Listeners first, so bind errors surface here; later ones reuse the chosen port.
        let first = accept::bind(addr, reuse)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![Some(first)];
        if reuse {
            for _ in 1..n {
                listeners.push(Some(accept::bind(local_addr, true)?));
            }
        }

        let mut polls = Vec::with_capacity(n);
        let mut remotes = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = crossbeam_channel::unbounded();
            polls.push(poll);
            remotes.push(Remote { tx, waker });
            receivers.push(rx);
        }
        let acceptor = if reuse {
            None
        } else {
            Some(accept::acceptor_poll()?)
        };
        let shared = Arc::new(Shared {
            config,
            remotes,
            stats: (0..n).map(|_| WorkerStats::default()).collect(),
            conn_count: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            topics: Mutex::new(HashMap::new()),
            local_addr,
            acceptor_waker: acceptor.as_ref().map(|(_, w)| w.clone()),
        });
        let factory = Arc::new(factory);
        let mut threads = Vec::with_capacity(n + 1);
        for (i, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let listener = if reuse { listeners[i].take() } else { None };
            let (factory, sh) = (factory.clone(), shared.clone());
            // The worker is built on its own thread: handlers never cross threads, so they need
            // not be `Send`.
            let t = std::thread::Builder::new()
                .name(format!("volley-worker-{i}"))
                .spawn(
                    move || match Worker::new(i as u16, poll, listener, rx, factory, sh) {
                        Ok(w) => w.run(),
                        Err(e) => log::error!("worker {i} failed to start: {e}"),
                    },
                )?;
            threads.push(t);
        }
        if let Some((poll, _)) = acceptor {
            let listener = listeners[0]
                .take()
                .expect("the first listener is bound above");
            let sh = shared.clone();
            let t = std::thread::Builder::new()
                .name("volley-acceptor".into())
                .spawn(move || accept::run_acceptor(poll, listener, sh))?;
            threads.push(t);
        }
        log::info!("volley listening on {local_addr} with {n} worker(s)");
        Ok(Server {
            handle: ServerHandle { shared },
            threads,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Block until the server has shut down (see [`ServerHandle::shutdown`]).
    pub fn run(self) -> Result<(), Error> {
        for t in self.threads {
            if t.join().is_err() {
                return Err(Error::Io(std::io::Error::other("a worker thread panicked")));
            }
        }
        Ok(())
    }

    /// Shut down gracefully and wait for it to finish.
    pub fn shutdown(self) -> Result<(), Error> {
        self.handle.shutdown();
        self.run()
    }
}
