//! Steady-state allocations of the read and echo path, counted over real sockets: echoing 10,000
//! messages of 20 B and of 16 KiB costs the worker at most one allocation per message (the
//! figures reached are printed; run with `--nocapture` to see them).
//!
//! Only allocations made on the worker thread count: the handler marks its thread in `on_open`,
//! and the counting allocator checks a thread-local flag (a `const` thread-local `Cell`, which
//! never allocates itself).

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use util::*;
use volley::{Context, Handler, Message, Request, Upgrade};

thread_local! {
    static WORKER: Cell<bool> = const { Cell::new(false) };
}
static WORKER_ALLOCS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn count() {
    if WORKER.with(|w| w.get()) {
        WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; it only counts allocations made on
// threads that marked themselves.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by `System` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Echo;
impl Handler for Echo {
    fn on_open(&mut self, _: &mut Context<'_>) {
        WORKER.with(|w| w.set(true));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

/// Allocations per message on the worker while echoing `n` messages of `size` bytes, one in
/// flight, after a warm-up.
fn allocs_per_message(size: usize, n: usize) -> f64 {
    let s = TestServer::start(config().workers(1), |_r: &Request<'_>| {
        Upgrade::accept(Echo)
    });
    let mut c = Client::connect(s.addr);
    let payload = vec![b'x'; size];
    for _ in 0..1_000 {
        c.send_binary(&payload);
        assert_eq!(c.recv().len(), size);
    }
    let before = WORKER_ALLOCS.load(Ordering::Relaxed);
    for _ in 0..n {
        c.send_binary(&payload);
        assert_eq!(c.recv().len(), size);
    }
    let allocs = WORKER_ALLOCS.load(Ordering::Relaxed) - before;
    let per = allocs as f64 / n as f64;
    println!("{size} B: {allocs} worker allocations for {n} echoed messages ({per:.3} each)");
    per
}

#[test]
fn echo_allocates_at_most_once_per_message() {
    let small = allocs_per_message(20, 10_000);
    let large = allocs_per_message(16 << 10, 10_000);
    assert!(small <= 1.0, "20 B: {small:.3} allocations per message");
    assert!(large <= 1.0, "16 KiB: {large:.3} allocations per message");
}
