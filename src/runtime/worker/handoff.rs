//! Hand-offs on the worker (`runtime/handoff.rs` is the other side): a head another HTTP
//! server read is decided like one read here, in a connection slot whose socket is a
//! placeholder; the accepted handler waits there for [`Command::Adopt`] with the real socket,
//! within the handshake timeout. A dropped ticket or a shutdown frees the slot.
//!
//! [`Command::Adopt`]: crate::runtime::Command::Adopt

use bytes::{Bytes, BytesMut};
use mio::{Interest, Token};

use crate::error::Error;
use crate::protocol::close::CloseCode;
use crate::protocol::handshake;
use crate::runtime::accept;
use crate::runtime::connection::flags;
use crate::runtime::handle::ConnId;
use crate::runtime::handler::{Factory, Response};
use crate::runtime::handoff::{read_back, HandOff, HandOffRequest, Responder, Ticket};
use crate::runtime::stats::bump;
use crate::runtime::upgrade::{self, Upgraded};

use super::{Conn, Worker};

/// A handed-off connection until its socket arrives (`Extra::hand_off`).
struct Waiting<H> {
    /// Answers the `HandOffDecision`, until the decision is made.
    reply: Option<Responder>,
    /// The accepted upgrade (its handler), until the socket is adopted.
    upgraded: Option<Upgraded<H>>,
}

/// A socket that stands in for the one still owned by the other server: registered nowhere,
/// never read or written; replaced on adoption.
fn placeholder() -> std::io::Result<mio::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

impl<F: Factory> Worker<F> {
    /// `Command::HandOff`: decide on the head as if it were read here (`upgrade::decide`).
    pub(super) fn hand_off(&mut self, req: HandOffRequest) {
        let HandOffRequest { head, reply } = req;
        if self.shutdown_plan.is_some() {
            return reply.answer(Err(Error::ServerStopped));
        }
        let request = head.as_request_head();
        if !handshake::wants_websocket(&request) {
            return reply.answer(Err(Error::NotUpgrade));
        }
        if !accept::reserve_slot(&self.state.shared) {
            log::warn!("{}: over max_connections, answering 503", head.peer());
            bump(&self.state.stats().handshakes_rejected, 1);
            bump(&self.state.stats().rejected_over_capacity, 1);
            let resp = Response::new(503).body("server at connection limit\n");
            return reply.answer(Ok(HandOff::Reject(resp)));
        }
        let stream = match placeholder() {
            Ok(s) => s,
            Err(e) => {
                let shared = &self.state.shared;
                shared
                    .conn_count
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                return reply.answer(Err(e.into()));
            }
        };
        let slot = self.conns.vacant_key();
        let mut core = self.new_core(stream, head.peer(), slot);
        let waiting = Waiting::<F::Handler> {
            reply: Some(reply),
            upgraded: None,
        };
        core.extra().hand_off = Some(Box::new(waiting));
        let label = self.state.label(&core, slot);
        self.conns.insert(Conn {
            core,
            handler: None,
        });
        let outcome = upgrade::decide(&*self.factory, &self.server, label, None, &request, 0);
        self.apply(slot, &mut BytesMut::new(), outcome);
    }

    /// Whether the connection in `slot` came by hand-off and has no socket yet.
    pub(super) fn is_handed_off(&self, slot: usize) -> bool {
        self.conns
            .get(slot)
            .and_then(|c| c.core.extra.as_ref())
            .is_some_and(|x| x.hand_off.is_some())
    }

    fn waiting(&mut self, slot: usize) -> Option<&mut Waiting<F::Handler>> {
        let x = self.conns.get_mut(slot)?.core.extra.as_mut()?;
        x.hand_off.as_mut()?.downcast_mut()
    }

    /// The upgrade was accepted (now or by a deferred decision): keep the handler, answer
    /// with the headers of the `101` volley would have written, and a ticket.
    pub(super) fn hand_off_accepted(
        &mut self,
        slot: usize,
        bytes: &[u8],
        up: Upgraded<F::Handler>,
    ) {
        let core = &mut self.conns[slot].core;
        // Recorded now, as `open` would, so that a slot freed before adoption releases them.
        if up.ip_counted {
            core.set(flags::IP_COUNTED);
        }
        if let Some(client) = up.client {
            core.extra().client_addr = Some(client);
        }
        let id = ConnId::new(self.state.id, slot as u32, core.generation);
        let ticket = Ticket::new(id, self.state.shared.clone());
        let Some(w) = self.waiting(slot) else { return };
        w.upgraded = Some(up);
        if let Some(reply) = w.reply.take() {
            let (_, headers, _) = read_back(bytes);
            reply.answer(Ok(HandOff::Accept { headers, ticket }));
        }
    }

    /// The upgrade was refused (`bytes`, the response volley would have written): answer with
    /// it and free the slot.
    pub(super) fn hand_off_refused(&mut self, slot: usize, bytes: &[u8]) -> bool {
        if let Some(reply) = self.waiting(slot).and_then(|w| w.reply.take()) {
            let (status, headers, body) = read_back(bytes);
            let mut resp = Response::new(status).body(body);
            resp.headers = headers;
            reply.answer(Ok(HandOff::Reject(resp)));
        }
        self.remove(slot, CloseCode::ABNORMAL, "hand-off refused");
        false
    }

    /// `Command::Adopt`: the socket of an accepted hand-off, after its `101`. Open the
    /// connection and read `read` (the bytes past the head) as frames.
    pub(super) fn adopt(&mut self, slot: usize, mut stream: mio::net::TcpStream, read: Bytes) {
        let Some(up) = self.waiting(slot).and_then(|w| w.upgraded.take()) else {
            return; // not an accepted hand-off: the socket is closed
        };
        let conn = &mut self.conns[slot];
        conn.core.extra().hand_off = None;
        let registry = self.poll.registry();
        if let Err(e) = registry.register(&mut stream, Token(slot), Interest::READABLE) {
            log::warn!("{}: register failed: {e}", conn.core.peer);
            return self.remove(slot, CloseCode::ABNORMAL, "register failed");
        }
        if self.state.shared.config.tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        conn.core.stream = stream;
        self.open(slot, Vec::new(), up);
        if !read.is_empty() {
            self.process(slot, BytesMut::from(&read[..]), false);
        }
    }

    /// `Command::HandOffDropped`: the ticket of an accepted hand-off was dropped.
    pub(super) fn drop_hand_off(&mut self, slot: usize) {
        if self.waiting(slot).is_some_and(|w| w.upgraded.is_some()) {
            self.remove(slot, CloseCode::ABNORMAL, "hand-off ticket dropped");
        }
    }

    /// In a shutdown: hand-offs not yet adopted end (their decisions answer `ServerStopped`,
    /// their tickets' adoption fails).
    pub(super) fn end_hand_offs(&mut self) {
        let slots: Vec<usize> = (self.conns.iter())
            .filter(|(_, c)| c.core.extra.as_ref().is_some_and(|x| x.hand_off.is_some()))
            .map(|(k, _)| k)
            .collect();
        for slot in slots {
            if let Some(reply) = self.waiting(slot).and_then(|w| w.reply.take()) {
                reply.answer(Err(Error::ServerStopped));
            }
            self.remove(slot, CloseCode::GOING_AWAY, "shutdown");
        }
    }
}
