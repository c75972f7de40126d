//! The front door: [`ServerBuilder`] and [`Server`] (binding, starting the worker threads,
//! waiting for them). Thin on purpose: what a running server does lives in `runtime/`, and the
//! handles that reach it from other threads in `runtime/handle.rs`.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::config::{AcceptMode, Config};
use crate::error::Error;
use crate::handler::Factory;
use crate::runtime::accept;
use crate::runtime::handle::ServerHandle;
use crate::runtime::stats::WorkerStats;
use crate::runtime::worker::{Worker, WAKER};
use crate::runtime::{Remote, Shared};

/// Builds a [`Server`]: configuration, address, then [`ServerBuilder::start`] with a factory.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: Config,
    addr: String,
    #[cfg(feature = "metrics")]
    metrics_path: Option<String>,
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

    /// Answer plain HTTP `GET`s of `path` (e.g. `"/metrics"`) with the server's metrics in the
    /// Prometheus text format, before the factory sees them (see
    /// [`ServerHandle::metrics`](crate::ServerHandle::metrics) to serve them elsewhere). Off by
    /// default; needs the `metrics` feature.
    #[cfg(feature = "metrics")]
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = Some(path.into());
        self
    }

    /// Bind, start the worker threads, and return the running server.
    pub fn start<F: Factory>(self, factory: F) -> Result<Server, Error> {
        #[cfg(feature = "metrics")]
        let extras = Extras {
            metrics_path: self.metrics_path,
        };
        #[cfg(not(feature = "metrics"))]
        let extras = Extras {};
        Server::start(self.config, &self.addr, extras, factory)
    }
}

/// Builder settings beyond `Config` that the runtime's shared state takes.
struct Extras {
    #[cfg(feature = "metrics")]
    metrics_path: Option<String>,
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
            #[cfg(feature = "metrics")]
            metrics_path: None,
        }
    }

    fn start<F: Factory>(
        config: Config,
        addr: &str,
        extras: Extras,
        factory: F,
    ) -> Result<Server, Error> {
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
        let ip_limits = crate::runtime::limits::IpLimits::new(&config);
        let shared = Arc::new(Shared {
            ip_limits,
            config,
            remotes,
            stats: (0..n).map(|_| WorkerStats::default()).collect(),
            conn_count: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            stop_accepting: AtomicBool::new(false),
            topics: Mutex::new(HashMap::new()),
            local_addr,
            acceptor_waker: acceptor.as_ref().map(|(_, w)| w.clone()),
            #[cfg(feature = "metrics")]
            histograms: (0..n).map(|_| Default::default()).collect(),
            #[cfg(feature = "metrics")]
            metrics_path: extras.metrics_path,
        });
        #[cfg(not(feature = "metrics"))]
        let Extras {} = extras;
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
            handle: ServerHandle::from_shared(shared),
            threads,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
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
