//! Awaitable completions without an async runtime: a one-shot [`Reply`] (a value set once by a
//! worker, awaited by one future) and a [`Signal`] (a flag set once, awaited by any number of
//! futures). Each is a mutex held for a few instructions and the `std::task::Waker`s of those
//! waiting, so they work under tokio, any other executor, or [`block_on`] on a plain thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one assignment or push: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A value that arrives once, from another thread.
pub(crate) struct Reply<T> {
    /// The value until taken, the waiter's waker, and whether a value was ever set.
    state: Mutex<(Option<T>, Option<Waker>, bool)>,
}

impl<T> Reply<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Reply {
            state: Mutex::new((None, None, false)),
        })
    }

    /// Set the value (the first one wins) and wake whoever waits for it.
    pub fn resolve(&self, value: T) {
        let waker = {
            let mut g = lock(&self.state);
            if g.2 {
                return;
            }
            g.0 = Some(value);
            g.2 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Take the value if it arrived, else remember `cx`'s waker.
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut g = lock(&self.state);
        match g.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                if !g.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    g.1 = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// A flag set once (the server stopped), awaited by any number of futures.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<(bool, Vec<Waker>)>,
}

impl Signal {
    /// Set the flag and wake every waiter.
    pub fn set(&self) {
        let wakers = {
            let mut g = lock(&self.state);
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub fn is_set(&self) -> bool {
        lock(&self.state).0
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = lock(&self.state);
        if g.0 {
            return Poll::Ready(());
        }
        if !g.1.iter().any(|w| w.will_wake(cx.waker())) {
            g.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The future of [`ServerHandle::stopped`](crate::ServerHandle::stopped): ready once every
/// worker thread of the server has exited.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Stopped {
    pub(crate) shared: Arc<crate::runtime::Shared>,
}

impl Future for Stopped {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.stopped.poll(cx)
    }
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Run `fut` to completion on this thread, parking it between polls: for code without an async
/// runtime (a thread that waits for [`ServerHandle::stopped`](crate::ServerHandle::stopped) or
/// a [`HandOffDecision`](crate::HandOffDecision)). Never call it from an async task: it blocks
/// the thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_set_from_another_thread_reaches_block_on() {
        let reply = Reply::<u32>::new();
        let r = reply.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            r.resolve(7);
            r.resolve(8); // the first value wins
        });
        let v = block_on(std::future::poll_fn(|cx| reply.poll_take(cx)));
        assert_eq!(v, 7);
        t.join().unwrap();
    }

    #[test]
    fn a_signal_wakes_every_waiter() {
        let s = Arc::new(Signal::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || block_on(std::future::poll_fn(|cx| s.poll(cx))))
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.set();
        for w in waiters {
            w.join().unwrap();
        }
        assert!(s.is_set());
    }
}
