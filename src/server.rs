//! The front door: [`ServerBuilder`] and [`Server`] (binding, starting the worker threads,
//! waiting for them). It only assembles: what a running server does lives in `runtime/`, and
//! the handles that reach it from other threads in `runtime/handle.rs`.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::config::{AcceptMode, Config};
use crate::error::Error;
use crate::runtime::accept;
use crate::runtime::bridge::{Bridge, BridgeNode, BridgeStats};
use crate::runtime::handle::ServerHandle;
use crate::runtime::handler::Factory;
use crate::runtime::stats::WorkerStats;
use crate::runtime::streams::{HistoryOptions, Streams};
use crate::runtime::worker::{Worker, WAKER};
use crate::runtime::{Remote, Shared};

/// Builds a [`Server`]: configuration, addresses, then [`ServerBuilder::start`] with a factory.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: Config,
    listeners: Vec<ListenSpec>,
    /// Start with no listener at all (connections arrive by hand-off only).
    no_listener: bool,
    #[cfg(feature = "metrics")]
    metrics_path: Option<String>,
    bridge: Option<Arc<dyn Bridge>>,
    /// (topic prefix, options) of the topics that keep a history.
    history: Vec<(String, HistoryOptions)>,
}

/// One address to listen on, plain or TLS.
#[derive(Debug, Clone)]
struct ListenSpec {
    addr: String,
    #[cfg(feature = "tls")]
    tls: Option<crate::runtime::tls::TlsConfig>,
}

impl ServerBuilder {
    /// Use this configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Listen on `addr` (port 0 picks a free port). May be called again for more addresses,
    /// and mixed with `ServerBuilder::bind_tls` (feature `tls`); with neither, the server
    /// listens on `127.0.0.1:8080`.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.listeners.push(ListenSpec {
            addr: addr.into(),
            #[cfg(feature = "tls")]
            tls: None,
        });
        self
    }

    /// Listen on `addr` for `wss://`: TLS with `tls`'s certificates, then WebSocket as on any
    /// other listener (needs the `tls` feature). A server may have plain and TLS listeners
    /// side by side (e.g. `bind("0.0.0.0:8080").bind_tls("0.0.0.0:8443", tls)`);
    /// [`ServerHandle::reload_tls`](crate::ServerHandle::reload_tls) swaps the certificates
    /// while it runs.
    #[cfg(feature = "tls")]
    pub fn bind_tls(
        mut self,
        addr: impl Into<String>,
        tls: crate::runtime::tls::TlsConfig,
    ) -> Self {
        self.listeners.push(ListenSpec {
            addr: addr.into(),
            tls: Some(tls),
        });
        self
    }

    /// Listen nowhere: every connection comes from another HTTP server through
    /// [`ServerHandle::hand_off`] (an axum app that serves `/ws` with volley on its own port).
    /// Addresses given with `bind` or `bind_tls` are ignored. [`Server::local_addr`] is then `0.0.0.0:0` and
    /// [`Server::local_addrs`] empty.
    pub fn without_listener(mut self) -> Self {
        self.no_listener = true;
        self
    }

    /// Answer plain HTTP `GET`s of `path` (e.g. `"/metrics"`) with the server's metrics in the
    /// Prometheus text format, before the factory sees them (see
    /// [`ServerHandle::metrics`](crate::ServerHandle::metrics) to serve them elsewhere). Off by
    /// default; needs the `metrics` feature.
    #[cfg(feature = "metrics")]
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = Some(path.into());
        self
    }

    /// Share topics with other nodes through `bridge` (e.g.
    /// `RedisBridge::new("redis://127.0.0.1:6379")?`, feature `redis`): a publish reaches the
    /// topic's subscribers on every node, and this node subscribes upstream to the topics its
    /// connections subscribe to. `publish_local` (on [`Context`](crate::Context) and
    /// [`ServerHandle`]) stays on this node; broadcasts always do.
    pub fn bridge(mut self, bridge: impl Bridge) -> Self {
        self.bridge = Some(Arc::new(bridge));
        self
    }

    /// Keep a bounded history for the topics whose name starts with `prefix` (`""`: every
    /// topic; the longest matching prefix decides): their publications
    /// ([`Context::publish_stream`](crate::Context::publish_stream),
    /// [`ServerHandle::publish_stream`]) get offsets, and a subscriber can recover what it
    /// missed ([`Context::subscribe_stream`](crate::Context::subscribe_stream)). The history
    /// lives in this process's memory (a restart starts new epochs) and streams stay on this
    /// node: the bridge does not carry them.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use volley::{HistoryOptions, Server};
    /// let builder = Server::builder()
    ///     .bind("127.0.0.1:9001")
    ///     .history("room.", HistoryOptions::new(1000, Duration::from_secs(300)));
    /// ```
    pub fn history(mut self, prefix: impl Into<String>, options: HistoryOptions) -> Self {
        self.history.push((prefix.into(), options));
        self
    }

    /// Bind, start the worker threads, and return the running server.
    pub fn start<F: Factory>(self, factory: F) -> Result<Server, Error> {
        let extras = Extras {
            #[cfg(feature = "metrics")]
            metrics_path: self.metrics_path,
            bridge: self.bridge,
            streams: Streams::new(self.history),
        };
        let mut listeners = if self.no_listener {
            Vec::new()
        } else {
            self.listeners
        };
        if listeners.is_empty() && !self.no_listener {
            listeners.push(ListenSpec {
                addr: "127.0.0.1:8080".into(),
                #[cfg(feature = "tls")]
                tls: None,
            });
        }
        Server::start(self.config, listeners, extras, factory)
    }
}

/// Builder settings beyond `Config` that the runtime's shared state takes.
struct Extras {
    #[cfg(feature = "metrics")]
    metrics_path: Option<String>,
    bridge: Option<Arc<dyn Bridge>>,
    streams: Streams,
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
            listeners: Vec::new(),
            no_listener: false,
            #[cfg(feature = "metrics")]
            metrics_path: None,
            bridge: None,
            history: Vec::new(),
        }
    }

    /// Bind, build the shared state, start the bridge, then the workers and the acceptor.
    fn start<F: Factory>(
        config: Config,
        specs: Vec<ListenSpec>,
        extras: Extras,
        factory: F,
    ) -> Result<Server, Error> {
        let n = config.workers.clamp(1, u16::MAX as usize);
        let reuse = config.accept_mode == AcceptMode::ReusePort && accept::HAS_REUSE_PORT;
        if specs.len() > accept::MAX_LISTENERS {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("at most {} addresses per server", accept::MAX_LISTENERS),
            )));
        }
        // Listeners first, so bind errors surface here.
        let mut bound = Bound::bind(specs, n, reuse)?;
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
        let acceptor_waker = acceptor.as_ref().map(|(_, w)| w.clone());
        let shared = Arc::new(Self::shared(
            config,
            remotes,
            &mut bound,
            acceptor_waker,
            extras,
        ));
        if let Some(b) = &shared.bridge {
            b.start(BridgeNode::new(shared.clone()))?;
        }
        let mut threads = spawn_workers(polls, receivers, &mut bound, reuse, factory, &shared)?;
        if let Some((poll, _)) = acceptor.filter(|_| !bound.addrs.is_empty()) {
            let listeners: Vec<_> = bound
                .sockets
                .iter_mut()
                .filter_map(|p| p[0].take())
                .collect();
            let sh = shared.clone();
            let t = std::thread::Builder::new()
                .name("volley-acceptor".into())
                .spawn(move || accept::run_acceptor(poll, listeners, sh))?;
            threads.push(t);
        }
        log_listening(&shared, n);
        Ok(Server {
            handle: ServerHandle::from_shared(shared),
            threads,
        })
    }

    /// The state every thread of the server shares.
    fn shared(
        config: Config,
        remotes: Vec<Remote>,
        bound: &mut Bound,
        acceptor_waker: Option<Arc<Waker>>,
        extras: Extras,
    ) -> Shared {
        let n = remotes.len();
        Shared {
            ip_limits: crate::runtime::limits::IpLimits::new(&config),
            config,
            remotes,
            stats: (0..n).map(|_| WorkerStats::default()).collect(),
            conn_count: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            workers_running: AtomicUsize::new(n),
            stopped: Default::default(),
            stop_accepting: AtomicBool::new(false),
            topics: Mutex::new(HashMap::new()),
            local_addr: (bound.addrs.first().copied())
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            local_addrs: bound.addrs.clone(),
            #[cfg(feature = "tls")]
            tls: std::mem::take(&mut bound.tls),
            acceptor_waker,
            #[cfg(feature = "metrics")]
            histograms: (0..n).map(|_| Default::default()).collect(),
            #[cfg(feature = "metrics")]
            metrics_path: extras.metrics_path,
            bridge: extras.bridge,
            bridge_stats: BridgeStats::default(),
            streams: extras.streams,
        }
    }

    /// The address the server listens on (the first, where it has several).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Every address the server listens on, in the order they were bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.handle.local_addrs()
    }

    /// `Config::close_timeout` of the running server.
    pub(crate) fn config_close_timeout(&self) -> std::time::Duration {
        self.handle.shared().config.close_timeout
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Block until the server has shut down (see [`ServerHandle::shutdown`]).
    pub fn run(self) -> Result<(), Error> {
        let mut panicked = false;
        for t in self.threads {
            panicked |= t.join().is_err();
        }
        // The workers are gone: the bridge sends what they published and stops.
        if let Some(b) = &self.handle.shared().bridge {
            b.stop();
        }
        if panicked {
            return Err(Error::Io(std::io::Error::other("a worker thread panicked")));
        }
        Ok(())
    }

    /// Shut down gracefully and wait for it to finish.
    pub fn shutdown(self) -> Result<(), Error> {
        self.handle.shutdown();
        self.run()
    }
}

/// The listening sockets of a server being started.
struct Bound {
    /// `sockets[l][w]`: listener l's socket for worker w (only w = 0 without reuse-port).
    sockets: Vec<Vec<Option<mio::net::TcpListener>>>,
    /// Each listener's address, in the order they were bound.
    addrs: Vec<SocketAddr>,
    /// Each listener's TLS settings, for those that speak TLS.
    #[cfg(feature = "tls")]
    tls: Vec<Option<Arc<crate::runtime::tls::TlsListener>>>,
}

impl Bound {
    /// Bind every listener, `n` sockets each under reuse-port (the later ones on the port the
    /// first chose).
    fn bind(specs: Vec<ListenSpec>, n: usize, reuse: bool) -> std::io::Result<Bound> {
        let mut bound = Bound {
            sockets: Vec::with_capacity(specs.len()),
            addrs: Vec::with_capacity(specs.len()),
            #[cfg(feature = "tls")]
            tls: Vec::with_capacity(specs.len()),
        };
        for spec in specs {
            let addr = spec.addr.to_socket_addrs()?.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address")
            })?;
            let first = accept::bind(addr, reuse)?;
            let local_addr = first.local_addr()?;
            let mut per_worker = vec![Some(first)];
            if reuse {
                for _ in 1..n {
                    per_worker.push(Some(accept::bind(local_addr, true)?));
                }
            }
            bound.sockets.push(per_worker);
            bound.addrs.push(local_addr);
            #[cfg(feature = "tls")]
            bound.tls.push(
                spec.tls
                    .map(|t| Arc::new(crate::runtime::tls::TlsListener::new(t))),
            );
        }
        Ok(bound)
    }
}

/// Start one worker thread per poll, each with its own listeners under reuse-port.
fn spawn_workers<F: Factory>(
    polls: Vec<Poll>,
    receivers: Vec<crossbeam_channel::Receiver<crate::runtime::Command>>,
    bound: &mut Bound,
    reuse: bool,
    factory: F,
    shared: &Arc<Shared>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let factory = Arc::new(factory);
    let mut threads = Vec::with_capacity(polls.len() + 1);
    for (i, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
        let listeners: Vec<_> = if reuse {
            bound.sockets.iter_mut().map(|per| per[i].take()).collect()
        } else {
            Vec::new()
        };
        let (factory, sh) = (factory.clone(), shared.clone());
        // The worker is built on its own thread: handlers never cross threads, so they need
        // not be `Send`.
        let t = std::thread::Builder::new()
            .name(format!("volley-worker-{i}"))
            .spawn(move || {
                match Worker::new(i as u16, poll, listeners, rx, factory, sh.clone()) {
                    Ok(w) => w.run(),
                    Err(e) => log::error!("worker {i} failed to start: {e}"),
                }
                sh.worker_exited();
            })?;
        threads.push(t);
    }
    Ok(threads)
}

/// One line per listener: where the server listens, with how many workers.
fn log_listening(shared: &Shared, n: usize) {
    if shared.local_addrs.is_empty() {
        log::info!("volley started with {n} worker(s) and no listener (hand-off only)");
    }
    for (l, addr) in shared.local_addrs.iter().enumerate() {
        #[cfg(feature = "tls")]
        let scheme = if shared.tls[l].is_some() { "wss" } else { "ws" };
        #[cfg(not(feature = "tls"))]
        let scheme = {
            let _ = l;
            "ws"
        };
        log::info!("volley listening on {scheme}://{addr} with {n} worker(s)");
    }
}
