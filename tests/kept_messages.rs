//! The worker reuses its read block and frame buffers once no view of them is left; a handler
//! that keeps the messages it received (a history, a cache) must still see their bytes as they
//! arrived, however many reads and reuses follow.

mod util;

use util::*;
use volley::{Context, Handler, Message, Request, Upgrade};

/// Keeps every message; on "check", verifies each still holds what its first bytes say it
/// should (message `i` is `i` as text, then `i % 251` repeated) and answers with the count.
struct Keeper(Vec<Message>);
impl Handler for Keeper {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if msg.as_text() == Some("check") {
            let bad = self
                .0
                .iter()
                .enumerate()
                .filter(|(i, m)| m.as_bytes() != expected(*i, m.len()).as_slice())
                .count();
            let _ = ctx.send_text(&format!("kept {} bad {bad}", self.0.len()));
            return;
        }
        self.0.push(msg);
    }
}

fn expected(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{i}:").into_bytes();
    v.resize(len, (i % 251) as u8);
    v
}

#[test]
fn kept_messages_stay_unchanged_while_buffers_are_reused() {
    let s = TestServer::start(config().workers(1), |_r: &Request<'_>| {
        Upgrade::accept(Keeper(Vec::new()))
    });
    let mut c = Client::connect(s.addr);
    // Small, block-sized and multi-read messages, many times the 64 KiB read block in all.
    let sizes = [20usize, 700, 5_000, 40_000, 100_000, 300_000];
    let n = 120;
    for i in 0..n {
        c.send_binary(&expected(i, sizes[i % sizes.len()]));
    }
    c.send_text("check");
    assert_eq!(c.recv_text(), format!("kept {n} bad 0"));
}

/// Runs of large messages of one size (which a connection reads ahead for, straight into a
/// buffer of the last one's size), then other sizes, larger and smaller, one at a time and
/// pipelined: every message arrives whole and unchanged.
#[test]
fn large_message_runs_and_their_ends_arrive_intact() {
    let s = TestServer::start(config().workers(1), |_r: &Request<'_>| {
        Upgrade::accept(Keeper(Vec::new()))
    });
    let sizes = [
        300_000, 300_000, 300_000, 200_000, 300_000, 1_500_000, 70_000, 70_000, 20, 70_000, 65_536,
        900_000, 3, 300_000,
    ];
    let mut c = Client::connect(s.addr);
    // One at a time: each message sent after the previous one was kept.
    for (i, &len) in sizes.iter().enumerate() {
        c.send_binary(&expected(i, len));
        c.send_text("check");
        assert_eq!(c.recv_text(), format!("kept {} bad 0", i + 1));
    }
    // Pipelined.
    let n = sizes.len();
    for (i, &len) in sizes.iter().enumerate() {
        c.send_binary(&expected(n + i, len));
    }
    c.send_text("check");
    assert_eq!(c.recv_text(), format!("kept {} bad 0", 2 * n));
}
