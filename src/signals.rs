//! Graceful shutdown on SIGINT and SIGTERM (Unix): [`ServerHandle::shutdown_on_signals`] and
//! [`Server::run_until_signal`]. A thread blocks on signal-hook's self-pipe (no polling): the
//! first signal starts [`ServerHandle::shutdown_with`], a second one exits the process at once
//! (for an operator who does not want to wait for the grace period).

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{backend::Handle, Signals};

use crate::error::Error;
use crate::protocol::close::CloseCode;
use crate::runtime::handle::ServerHandle;
use crate::server::Server;

/// Shuts the server down when SIGINT or SIGTERM arrives, while it lives; dropping it stops
/// listening for the signals (their default action is back once no other handler is left).
#[derive(Debug)]
pub struct SignalGuard {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl ServerHandle {
    /// On SIGINT or SIGTERM, [`shutdown_with`](Self::shutdown_with)`(code, reason, grace)`; a
    /// second signal exits the process with status 130. The handlers are installed before this
    /// returns. Keep the guard while the server runs.
    pub fn shutdown_on_signals(
        &self,
        code: CloseCode,
        reason: &str,
        grace: Duration,
    ) -> io::Result<SignalGuard> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let server = self.clone();
        let reason = reason.to_owned();
        let thread = std::thread::Builder::new()
            .name("volley-signals".into())
            .spawn(move || {
                let mut seen = 0;
                for sig in signals.forever() {
                    seen += 1;
                    if seen == 1 {
                        log::info!(
                            "signal {sig}: shutting down gracefully (close {code} {reason:?}, up \
                             to {grace:?}); signal again to exit now"
                        );
                        server.shutdown_with(code, &reason, grace);
                    } else {
                        log::warn!("signal {sig} again: exiting now");
                        std::process::exit(130);
                    }
                }
            })?;
        Ok(SignalGuard {
            handle,
            thread: Some(thread),
        })
    }
}

impl Server {
    /// [`run`](Server::run) until SIGINT (Ctrl-C) or SIGTERM, then shut down gracefully: close
    /// 1001 "server shutdown" to every connection after what is queued for it, at most
    /// `Config::close_timeout` of grace (see [`ServerHandle::shutdown_on_signals`] for another
    /// code, such as 1012 for a restart).
    pub fn run_until_signal(self) -> Result<(), Error> {
        let grace = self.config_close_timeout();
        let _guard =
            self.handle()
                .shutdown_on_signals(CloseCode::GOING_AWAY, "server shutdown", grace)?;
        self.run()
    }
}
