//! Timers: firing the worker's wheel each turn, each connection's own timer (the handshake
//! deadline, the close deadline) and the liveness check (heartbeat ping, pong timeout, idle
//! timeout), and handler timers.

use crate::protocol::close::CloseCode;
use crate::runtime::connection::{flags, Phase};
use crate::runtime::handler::{Factory, Handler};
use crate::runtime::stats::bump;

use super::Worker;

impl<F: Factory> Worker<F> {
    pub(super) fn fire_timers(&mut self) {
        let mut fired = std::mem::take(&mut self.fired);
        self.state.timers.poll(self.state.now, &mut fired);
        for e in fired.drain(..) {
            let slot = e.slot as usize;
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            if conn.core.generation != e.generation {
                continue; // stale entry for a reused slot
            }
            match e.user {
                Some(id) => {
                    if let Some(x) = conn.core.extra.as_mut() {
                        x.user_timers.retain(|t| t.0 != id);
                    }
                    self.call(slot, |h, ctx| h.on_timer(ctx, id));
                }
                None => {
                    conn.core.timer = None;
                    self.conn_timer(slot);
                }
            }
        }
        self.fired = fired;
    }

    pub(super) fn conn_timer(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let st = &self.state.shared.stats[self.state.id as usize];
        match conn.core.phase() {
            Phase::Handshake => {
                log::info!("{}: handshake timeout", self.state.label(&conn.core, slot));
                bump(&st.timeouts, 1);
                self.remove(slot, CloseCode::ABNORMAL, "handshake timeout");
            }
            Phase::Deciding => {
                log::info!(
                    "{}: the application did not decide the deferred upgrade in time; answering 503",
                    self.state.label(&conn.core, slot)
                );
                bump(&st.timeouts, 1);
                if let Some(p) = conn.core.extra.as_mut().and_then(|x| x.parked.take()) {
                    p.abandon();
                }
                conn.core.rbuf = None;
                let mut empty = bytes::BytesMut::new();
                let bytes = crate::runtime::upgrade::undecided_bytes();
                self.answer_and_close(
                    slot,
                    &mut empty,
                    bytes,
                    Some(crate::runtime::upgrade::Rejection::Undecided),
                );
            }
            Phase::Closing => {
                log::info!(
                    "{}: no answer to our close frame in time",
                    self.state.label(&conn.core, slot)
                );
                bump(&st.timeouts, 1);
                self.remove(slot, CloseCode::ABNORMAL, "close timeout");
            }
            Phase::Draining => self.remove(slot, CloseCode::ABNORMAL, "close timeout"),
            Phase::Open => self.liveness(slot),
        }
    }

    /// Heartbeat and idle checks of an open connection.
    pub(super) fn liveness(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let cfg = &self.state.shared.config;
        let now = self.state.now_ms;
        if let Some(idle) = cfg.idle_timeout {
            if now.wrapping_sub(conn.core.last_msg_ms) >= idle.as_millis() as u32 {
                log::info!("{}: idle timeout", self.state.label(&conn.core, slot));
                bump(&self.state.stats().timeouts, 1);
                self.state
                    .start_close(&mut conn.core, CloseCode::NORMAL, "idle timeout");
                return;
            }
        }
        if let Some(after) = cfg.deflate_idle_release {
            let released = conn
                .core
                .extra
                .as_mut()
                .and_then(|x| x.deflate.as_deref_mut())
                .is_some_and(|d| d.release_idle(now, after));
            if released {
                bump(&self.state.stats().deflate_released, 1);
            }
        }
        if let Some(iv) = cfg.ping_interval {
            let silent = now.wrapping_sub(conn.core.last_rx_ms);
            if conn.core.has(flags::PING_OUTSTANDING) {
                if silent >= (iv + cfg.pong_timeout).as_millis() as u32 {
                    log::info!(
                        "{}: no pong or traffic in time; dropping",
                        self.state.label(&conn.core, slot)
                    );
                    bump(&self.state.stats().timeouts, 1);
                    self.remove(slot, CloseCode::ABNORMAL, "timeout");
                    return;
                }
            } else if silent >= iv.as_millis() as u32 {
                let _ = self.state.send_ping(&mut conn.core, b"");
                conn.core.set(flags::PING_OUTSTANDING);
                // The pong deadline counts from now, not from the last traffic.
                conn.core.last_rx_ms = now.wrapping_sub(iv.as_millis() as u32);
            }
        }
        self.state.arm_liveness(&mut conn.core);
    }
}
