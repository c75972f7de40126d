//! The handshake phase of a worker's connections: an upgrade request's outcome (101, plain
//! HTTP answer, rejection) applied to the connection, deferred upgrades parked and decided, and
//! answering then closing.

use bytes::{Bytes, BytesMut};

use crate::runtime::compress::ConnDeflate;
use crate::runtime::connection::{flags, Phase};
use crate::runtime::deferred::ParkedUpgrade;
use crate::runtime::handler::{Factory, Handler};
use crate::runtime::stats::bump;
use crate::runtime::upgrade::{self, Outcome, Prepared, Rejection, Upgraded};

use super::Worker;

impl<F: Factory> Worker<F> {
    /// Returns true if the connection was upgraded and `buf` may hold frames to process.
    pub(super) fn handshake(&mut self, slot: usize, buf: &mut BytesMut) -> bool {
        let conn = &mut self.conns[slot];
        let label = self.state.label(&conn.core, slot);
        let proxied = conn.core.extra.as_ref().and_then(|x| x.client_addr);
        let outcome = upgrade::handle(&*self.factory, &self.server, label, proxied, buf);
        self.apply(slot, buf, outcome)
    }

    /// A deferred upgrade was decided (`Command::Decided`): answer it, and on acceptance run
    /// whatever the client sent meanwhile.
    pub(super) fn decided(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.core.is_deciding() {
            return;
        }
        let Some(parked) = conn.core.extra.as_mut().and_then(|x| x.parked.take()) else {
            return;
        };
        let Ok(parked) = parked
            .into_any()
            .downcast::<ParkedUpgrade<F::Handler, Prepared>>()
        else {
            return; // cannot happen: only this worker's factory type parks here
        };
        let Some(decision) = parked.cell.take() else {
            // Not decided after all (a stale wake-up): keep waiting.
            conn.core.extra().parked = Some(parked);
            return;
        };
        let label = self.state.label(&conn.core, slot);
        // The per-IP count and the client address were recorded when the connection parked.
        let outcome = upgrade::finish(label, parked.prepared, decision, false, None, 0);
        let mut rest = conn.core.rbuf.take().map(|b| *b).unwrap_or_default();
        conn.core.enter(Phase::Handshake);
        if self.apply(slot, &mut rest, outcome) && !rest.is_empty() {
            self.process(slot, rest, true);
        }
    }

    /// Act on an upgrade decision. Returns true if the connection is now open.
    pub(super) fn apply(
        &mut self,
        slot: usize,
        buf: &mut BytesMut,
        outcome: Outcome<F::Handler>,
    ) -> bool {
        match outcome {
            Outcome::Partial => false,
            Outcome::Http { bytes } => self.answer_and_close(slot, buf, bytes, None),
            Outcome::Rejected { bytes, reason } => {
                self.answer_and_close(slot, buf, bytes, Some(reason))
            }
            Outcome::Deferred {
                cell,
                prepared,
                ip_counted,
                client,
                consumed,
            } => {
                bytes::Buf::advance(buf, consumed);
                let core = &mut self.conns[slot].core;
                core.enter(Phase::Deciding);
                if ip_counted {
                    core.set(flags::IP_COUNTED);
                }
                let x = core.extra();
                if let Some(client) = client {
                    x.client_addr = Some(client);
                }
                x.parked = Some(Box::new(ParkedUpgrade { cell, prepared }));
                bump(&self.state.stats().upgrades_deferred, 1);
                false
            }
            Outcome::Upgraded { bytes, upgraded } if self.is_handed_off(slot) => {
                self.hand_off_accepted(slot, &bytes, upgraded);
                false
            }
            Outcome::Upgraded { bytes, upgraded } => {
                bytes::Buf::advance(buf, upgraded.consumed);
                self.open(slot, bytes, upgraded);
                true
            }
        }
    }

    /// The upgrade is accepted: send the 101 in `bytes` (none for an adopted hand-off: the
    /// other server sent it), set the connection up as `up` says, and give it its handler
    /// (`on_open`).
    pub(super) fn open(&mut self, slot: usize, bytes: Vec<u8>, up: Upgraded<F::Handler>) {
        let conn = &mut self.conns[slot];
        if !bytes.is_empty() {
            self.state.send_101(&mut conn.core, bytes);
        }
        conn.core.enter(Phase::Open);
        if up.ip_counted {
            conn.core.set(flags::IP_COUNTED);
        }
        if let Some(client) = up.client {
            conn.core.extra().client_addr = Some(client);
        }
        if let Some(p) = up.protocol {
            conn.core.extra().protocol = Some(p.into_boxed_str());
        }
        if let Some(neg) = up.deflate {
            conn.core.set(flags::DEFLATE);
            conn.core.reader.set_compression(true);
            conn.core.extra().deflate = Some(Box::new(ConnDeflate::new(neg)));
        }
        if let Some(streaming) = self.state.shared.config.streaming {
            conn.core.extra().streaming = Some(streaming);
        }
        conn.handler = Some(up.handler);
        conn.core.last_msg_ms = self.state.now_ms;
        self.state.mark_dirty(&mut conn.core);
        self.state.arm_liveness(&mut conn.core);
        let st = self.state.stats();
        bump(&st.connections_open, 1);
        bump(&st.connections_total, 1);
        self.call(slot, |h, ctx| h.on_open(ctx));
        if let Some(plan) = &self.shutdown_plan {
            // Upgraded while the server shuts down: open, then closed like the rest.
            if let Some(c) = self.conns.get_mut(slot) {
                self.state.start_close(&mut c.core, plan.code, &plan.reason);
            }
        }
    }

    /// Answer a plain HTTP request or a refused upgrade with `bytes`, then close (after the
    /// bytes are written, bounded by `close_timeout`). A hand-off's answer goes back to the
    /// server that handed it over.
    pub(super) fn answer_and_close(
        &mut self,
        slot: usize,
        buf: &mut BytesMut,
        bytes: Vec<u8>,
        rejected: Option<Rejection>,
    ) -> bool {
        let st = self.state.stats();
        match rejected {
            None => bump(&st.http_requests, 1),
            Some(reason) => {
                bump(&st.handshakes_rejected, 1);
                bump(
                    match reason {
                        Rejection::Malformed => &st.rejected_malformed,
                        Rejection::Method => &st.rejected_method,
                        Rejection::Version => &st.rejected_version,
                        Rejection::TooLarge => &st.rejected_too_large,
                        Rejection::Application => &st.rejected_by_application,
                        Rejection::FactoryPanic => &st.rejected_factory_panic,
                        Rejection::PerIp => &st.rejected_per_ip,
                        Rejection::Undecided => &st.rejected_undecided,
                    },
                    1,
                );
            }
        }
        buf.clear();
        if self.is_handed_off(slot) {
            return self.hand_off_refused(slot, &bytes);
        }
        let conn = &mut self.conns[slot];
        self.state.enqueue(&mut conn.core, Bytes::from(bytes));
        conn.core.enter(Phase::Draining);
        self.state.mark_dirty(&mut conn.core);
        let deadline = self.state.now + self.state.shared.config.close_timeout;
        self.state.arm(&mut conn.core, deadline);
        false
    }
}
