//! Getting accepted sockets to workers: one `SO_REUSEPORT` listener per worker (the kernel
//! spreads connections), or one acceptor thread handing sockets out round-robin; and the
//! connection limit (`max_connections`) every accepted socket passes first.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use std::io::Write;

use crate::protocol::handshake::write_response;
use crate::runtime::{Command, Shared};

/// Bind a non-blocking listener; with `reuse_port`, several may share the address.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    )))]
    let _ = reuse_port;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Whether this platform can spread one port over several listeners.
pub(crate) const HAS_REUSE_PORT: bool = cfg!(all(
    unix,
    not(any(
        target_os = "solaris",
        target_os = "illumos",
        target_os = "cygwin"
    ))
));

/// Most addresses one server listens on.
pub(crate) const MAX_LISTENERS: usize = 32;

const WAKE: Token = Token(MAX_LISTENERS);

/// A poll and waker for the acceptor thread, created before the thread starts.
pub(crate) fn acceptor_poll() -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    Ok((poll, waker))
}

/// The acceptor thread's loop: accept on every listener (listener `l` is `Token(l)`), hand out
/// round-robin, stop when the server stops.
pub(crate) fn run_acceptor(mut poll: Poll, mut listeners: Vec<TcpListener>, shared: Arc<Shared>) {
    for (l, listener) in listeners.iter_mut().enumerate() {
        if let Err(e) = poll
            .registry()
            .register(listener, Token(l), Interest::READABLE)
        {
            log::error!("acceptor: register failed: {e}");
            return;
        }
    }
    let mut events = Events::with_capacity(64);
    let mut next = 0usize;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("acceptor: poll failed: {e}");
            return;
        }
        if shared.stopping.load(Ordering::Relaxed) || shared.stop_accepting.load(Ordering::Relaxed)
        {
            // Take what is already waiting, so no client whose TCP handshake completed is
            // reset, then close the listener. (In a shutdown, the workers close those
            // connections with the shutdown's code once upgraded.)
            for (l, listener) in listeners.iter_mut().enumerate() {
                accept_waiting(listener, l, &shared, &mut next);
            }
            return;
        }
        for event in events.iter() {
            let l = event.token().0;
            if let Some(listener) = listeners.get_mut(l) {
                accept_waiting(listener, l, &shared, &mut next);
            }
        }
    }
}

/// Accept every waiting connection and hand them out round-robin (acceptor mode).
fn accept_waiting(listener: &mut TcpListener, l: usize, shared: &Shared, next: &mut usize) {
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                if !reserve_slot(shared) {
                    log::warn!("{peer}: over max_connections, answering 503");
                    write_unavailable(&mut stream);
                    continue;
                }
                // The worker counts the socket itself when it admits it.
                shared.conn_count.fetch_sub(1, Ordering::Relaxed);
                let w = *next % shared.remotes.len();
                *next = next.wrapping_add(1);
                shared.remotes[w].send(Command::Accepted(stream, peer, l));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("acceptor: accept failed: {e}");
                break;
            }
        }
    }
}

/// Count a new socket against `max_connections`; false if the server is full.
pub(crate) fn reserve_slot(shared: &Shared) -> bool {
    let max = shared.config.max_connections;
    shared
        .conn_count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// Best-effort `503` on a socket we will not keep.
pub(crate) fn write_unavailable(stream: &mut mio::net::TcpStream) {
    let mut bytes = Vec::with_capacity(128);
    write_response(&mut bytes, 503, &[], b"server at connection limit\n", true);
    let _ = stream.write(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
