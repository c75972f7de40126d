//! A publish is encoded once: every recipient's queue holds the same allocation. Checked with an
//! allocation counter: publishing a 256 KiB message to 50 subscribers must allocate one frame of
//! that size, not fifty.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use util::*;
use volley::{Context, Handler, Message, Request, Upgrade};

struct Counting;
static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
const BIG: usize = 250 << 10;

// SAFETY: defers every call to `System` unchanged; it only counts large allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() >= BIG {
            BIG_ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` was allocated by `System` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n >= BIG {
            BIG_ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Sub;
impl Handler for Sub {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("big");
    }
}

#[test]
fn publish_shares_one_allocation_across_recipients() {
    let s = TestServer::start(config().workers(2), |_r: &Request<'_>| Upgrade::accept(Sub));
    let mut clients: Vec<Client> = (0..50).map(|_| Client::connect(s.addr)).collect();
    wait_until(5, "subscribed", || s.handle.subscriber_count("big") == 50);
    let payload = vec![b'z'; 256 << 10];
    let before_out = s.handle.stats().messages_out;
    let before = BIG_ALLOCS.load(Ordering::SeqCst);
    s.handle.publish("big", Message::binary(payload.clone()));
    // Wait until every recipient's copy is queued (and mostly written) before any client reads.
    wait_until(10, "queued", || {
        s.handle.stats().messages_out == before_out + 50
    });
    std::thread::sleep(Duration::from_millis(50));
    let during = BIG_ALLOCS.load(Ordering::SeqCst) - before;
    // One for the caller's payload copy into the frame; nothing per recipient.
    assert!(
        during <= 2,
        "{during} allocations of >= 250 KiB for one publish to 50 subscribers"
    );
    for c in &mut clients {
        assert_eq!(c.recv().as_bytes(), &payload[..]);
    }
}
