//! Accepting: taking sockets from this worker's own listeners (reuse-port mode) or from the
//! acceptor thread, admitting them (connection limit, TLS state for TLS listeners, handshake
//! deadline), and closing the listeners without resetting clients already waiting.

use std::io;
use std::sync::atomic::Ordering;

use mio::{Interest, Token};

use crate::runtime::accept;
use crate::runtime::connection::{flags, ConnCore};
use crate::runtime::handler::Factory;
use crate::runtime::stats::bump;

use super::{Conn, Worker};

impl<F: Factory> Worker<F> {
    pub(super) fn accept_all(&mut self, l: usize) {
        loop {
            let Some(Some(listener)) = self.listeners.get(l) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.accept_socket(stream, peer, l),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next readiness event.
                    log::warn!("worker {}: accept failed: {e}", self.state.id);
                    return;
                }
            }
        }
    }

    /// Take a new socket (from our listener or the acceptor thread).
    pub(crate) fn accept_socket(
        &mut self,
        mut stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
        listener: usize,
    ) {
        let shared = &self.state.shared;
        #[cfg(feature = "tls")]
        let tls = match shared.tls.get(listener).and_then(|t| t.as_ref()) {
            None => None,
            Some(t) => match t.accept() {
                Ok(conn) => Some(conn),
                Err(e) => {
                    log::warn!("{peer}: cannot start TLS: {e}");
                    return;
                }
            },
        };
        #[cfg(not(feature = "tls"))]
        let _ = listener;
        if !accept::reserve_slot(shared) {
            log::warn!(
                "{peer}: over max_connections ({}), answering 503",
                shared.config.max_connections
            );
            bump(&self.state.stats().handshakes_rejected, 1);
            bump(&self.state.stats().rejected_over_capacity, 1);
            accept::write_unavailable(&mut stream);
            return;
        }
        if shared.config.tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        let slot = self.conns.vacant_key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(slot), Interest::READABLE)
        {
            log::warn!("{peer}: register failed: {e}");
            shared.conn_count.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let mut core = self.new_core(stream, peer, slot);
        if self.state.shared.config.proxy_protocol {
            core.set(flags::PROXY_PENDING);
        }
        #[cfg(feature = "tls")]
        {
            core.tls = tls;
        }
        self.conns.insert(Conn {
            core,
            handler: None,
        });
    }

    /// A new connection's state for `slot`: a fresh generation, the handshake deadline armed.
    pub(super) fn new_core(
        &mut self,
        stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
        slot: usize,
    ) -> ConnCore {
        self.next_generation = self.next_generation.wrapping_add(1);
        let mut core = ConnCore::new(
            stream,
            peer,
            slot as u32,
            self.next_generation,
            self.state.now_ms,
        );
        if let Some(t) = self.state.shared.config.handshake_timeout {
            let deadline = self.state.now + t;
            self.state.arm(&mut core, deadline);
        }
        core
    }

    /// Close our listener (reuse-port mode), taking the connections already waiting in it
    /// first: a client whose TCP handshake completed is served, not reset. The last accept
    /// runs after the listener left the poll, right before it closes, which leaves the kernel
    /// the narrowest window to queue one more (`net.ipv4.tcp_migrate_req=1` closes it: the
    /// kernel then moves such connections to another listener on the port).
    pub(super) fn close_listener(&mut self) {
        for i in 0..self.listeners.len() {
            let Some(mut l) = self.listeners[i].take() else {
                continue;
            };
            let _ = self.poll.registry().deregister(&mut l);
            self.listeners[i] = Some(l);
            self.accept_all(i);
            self.listeners[i] = None;
        }
    }
}
