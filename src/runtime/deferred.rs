//! Deferred upgrades: a [`Factory`](crate::Factory) that must ask a database or another service
//! before accepting returns [`Upgrade::Defer`] and hands the [`PendingUpgrade`] to another
//! thread. The worker parks the connection (it keeps serving everyone else) until the handle
//! decides, the client goes away, or the handshake timeout passes.
//!
//! The decision travels in a cell shared by the handle and the parked connection; the handle
//! then wakes the connection's worker with a [`Command::Decided`], so commands stay
//! non-generic.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::runtime::connection::Parked;
use crate::runtime::handle::ConnId;
use crate::runtime::handler::{Response, Upgrade};
use crate::runtime::{Command, Shared};

/// Where a deferred decision is.
enum State<H> {
    /// Nobody has decided yet.
    Waiting,
    /// Decided; the worker has not taken it yet.
    Decided(Upgrade<H>),
    /// The worker took the decision.
    Taken,
    /// The client went away, the handshake timed out, or the server stopped first.
    Gone,
}

/// The decision shared by a [`PendingUpgrade`] and its parked connection.
pub(crate) struct Cell<H> {
    state: Mutex<State<H>>,
}

impl<H> Cell<H> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<H>> {
        // A panic while holding this lock cannot leave the state half-written (every update is
        // one assignment), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker takes the decision (once).
    pub fn take(&self) -> Option<Upgrade<H>> {
        let mut g = self.lock();
        match std::mem::replace(&mut *g, State::Taken) {
            State::Decided(up) => Some(up),
            other => {
                *g = other;
                None
            }
        }
    }

    /// The connection is gone: a later decision is refused, and [`PendingUpgrade::is_gone`]
    /// says so. The handler of a decision not yet taken is dropped here.
    pub fn abandon(&self) {
        let old = std::mem::replace(&mut *self.lock(), State::Gone);
        drop(old);
    }
}

/// What the worker keeps for a parked connection: the cell and whatever the handshake already
/// worked out (`P`, the upgrade's prepared response parts).
pub(crate) struct ParkedUpgrade<H, P> {
    pub cell: Arc<Cell<H>>,
    pub prepared: P,
}

impl<H: 'static, P: 'static> Parked for ParkedUpgrade<H, P> {
    fn abandon(&self) {
        self.cell.abandon();
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// The [`Upgrade::Defer`] side of a deferred decision: return it from
/// [`Factory::upgrade`](crate::Factory::upgrade). Made by [`Request::defer`](crate::Request::defer).
pub struct Deferred<H> {
    pub(crate) cell: Arc<Cell<H>>,
}

impl<H> fmt::Debug for Deferred<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deferred")
    }
}

/// A `Send` handle that decides a deferred upgrade from any thread: [`accept`](Self::accept)
/// with the connection's handler, or [`reject`](Self::reject) with an HTTP response.
///
/// The worker goes on serving its other connections meanwhile. The handshake timeout
/// (`Config::handshake_timeout`) still applies: a decision not made by then is answered `503`.
/// If the client goes away first, [`is_gone`](Self::is_gone) turns true and a decision returns
/// [`Error::Closed`]. Dropping the handle without deciding answers `500` at once. Deciding never
/// waits (a mutex held for one assignment, a command to the worker): decide from an async task
/// as from a thread.
pub struct PendingUpgrade<H> {
    cell: Arc<Cell<H>>,
    id: ConnId,
    shared: Arc<Shared>,
    decided: bool,
}

impl<H> fmt::Debug for PendingUpgrade<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PendingUpgrade").field(&self.id).finish()
    }
}

/// A new deferred decision for the connection `id`: the [`Upgrade`] to return and its handle.
pub(crate) fn defer<H>(id: ConnId, shared: Arc<Shared>) -> (Upgrade<H>, PendingUpgrade<H>) {
    let cell = Arc::new(Cell {
        state: Mutex::new(State::Waiting),
    });
    let pending = PendingUpgrade {
        cell: cell.clone(),
        id,
        shared,
        decided: false,
    };
    (Upgrade::Defer(Deferred { cell }), pending)
}

impl<H> PendingUpgrade<H> {
    /// The connection this decision is for (its id once open).
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// True once the connection can no longer be upgraded: the client went away, the handshake
    /// timeout passed, or the server shut down. Worth checking before expensive work.
    pub fn is_gone(&self) -> bool {
        matches!(*self.cell.lock(), State::Gone)
    }

    /// Accept with `handler` (no subprotocol, no extra headers).
    pub fn accept(self, handler: H) -> Result<(), Error> {
        self.decide(Upgrade::accept(handler))
    }

    /// Refuse with this HTTP response, then close.
    pub fn reject(self, response: Response) -> Result<(), Error> {
        self.decide(Upgrade::Reject(response))
    }

    /// Decide with a full [`Upgrade`] (a subprotocol, extra headers). `Upgrade::Defer` is not a
    /// decision: it is answered `500`.
    ///
    /// `Err(Error::Closed)` if the connection is already gone (the handler is dropped);
    /// `Err(Error::ServerStopped)` if its worker has exited.
    pub fn decide(mut self, decision: Upgrade<H>) -> Result<(), Error> {
        self.decided = true;
        let decision = match decision {
            Upgrade::Defer(_) => {
                log::error!(
                    "conn {}: a deferred upgrade was decided with Upgrade::Defer; answering 500",
                    self.id
                );
                Upgrade::Reject(Response::new(500).body("internal server error\n"))
            }
            d => d,
        };
        self.send(decision)
    }

    fn send(&self, decision: Upgrade<H>) -> Result<(), Error> {
        {
            let mut g = self.cell.lock();
            if !matches!(*g, State::Waiting) {
                return Err(Error::Closed);
            }
            *g = State::Decided(decision);
        }
        let remote = &self.shared.remotes[usize::from(self.id.worker())];
        if remote.send(Command::Decided(self.id)) {
            Ok(())
        } else {
            self.cell.abandon();
            Err(Error::ServerStopped)
        }
    }
}

impl<H> Drop for PendingUpgrade<H> {
    fn drop(&mut self) {
        if self.decided {
            return;
        }
        if !self.is_gone() {
            log::warn!(
                "conn {}: a PendingUpgrade was dropped undecided; answering 500",
                self.id
            );
        }
        let resp = Response::new(500).body("internal server error\n");
        let _ = self.send(Upgrade::Reject(resp));
    }
}
