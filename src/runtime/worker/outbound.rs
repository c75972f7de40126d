//! Writing: flushing a connection's queue, writable interest while it is blocked, the drain
//! callback, and shutting our side down when draining.

use mio::{Interest, Token};

use crate::protocol::close::CloseCode;
use crate::runtime::connection::flags;
use crate::runtime::handler::{Factory, Handler};
use crate::runtime::stats::bump;

use super::Worker;

impl<F: Factory> Worker<F> {
    // ---- writing ---------------------------------------------------------------------------

    pub(super) fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.core.has_output() {
            match conn.core.write_out() {
                Ok(n) => bump(&self.state.stats().bytes_out, n as u64),
                Err(e) => {
                    self.io_error(slot, e);
                    return;
                }
            }
            #[cfg(feature = "metrics")]
            self.state.record_queue_wait(&mut conn.core);
        }
        if conn.core.has_output() {
            // The socket is full: ask for writable events until the queue drains. Sockets are
            // registered for reading only otherwise, so the ACKs of an ordinary write wake no
            // one (edge-triggered EPOLLOUT would fire on every freed send buffer).
            if !conn.core.has(flags::WANT_DRAIN) {
                conn.core.set(flags::WANT_DRAIN);
                let interest = Interest::READABLE | Interest::WRITABLE;
                let _ =
                    self.poll
                        .registry()
                        .reregister(&mut conn.core.stream, Token(slot), interest);
            }
            return;
        }
        if conn.core.has(flags::WANT_DRAIN) {
            let _ = self.poll.registry().reregister(
                &mut conn.core.stream,
                Token(slot),
                Interest::READABLE,
            );
        }
        if conn.core.is_draining() {
            if conn.core.close_notify() {
                // TLS: the close_notify alert goes out before our side shuts down.
                self.flush(slot);
                return;
            }
            if !conn.core.has(flags::WRITE_SHUT) {
                conn.core.set(flags::WRITE_SHUT);
                if conn
                    .core
                    .stream
                    .shutdown(std::net::Shutdown::Write)
                    .is_err()
                {
                    self.remove(slot, CloseCode::ABNORMAL, "closed");
                }
            }
            return;
        }
        let requested = conn
            .core
            .extra
            .as_mut()
            .is_some_and(|x| std::mem::take(&mut x.drain_requested));
        if requested && !conn.core.has(flags::WANT_DRAIN) {
            // Written without the socket filling up: ask for a writable event, which comes on
            // the next loop turn (the socket is writable), and call on_drain then.
            conn.core.set(flags::WANT_DRAIN);
            let interest = Interest::READABLE | Interest::WRITABLE;
            let _ = self
                .poll
                .registry()
                .reregister(&mut conn.core.stream, Token(slot), interest);
            return;
        }
        if conn.core.has(flags::WANT_DRAIN) {
            conn.core.clear(flags::WANT_DRAIN);
            if conn.core.is_open() {
                self.call(slot, |h, ctx| h.on_drain(ctx));
            }
        }
    }
}
