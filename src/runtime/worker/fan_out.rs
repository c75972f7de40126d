//! Fan-out: one shared frame queued for many of a worker's connections (a publish, a
//! broadcast), with the work that is the same for every recipient done once (issue 28).

use crate::runtime::connection::{flags, ConnCore};
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::stats::bump;

use super::state::{mark_dirty, WorkerState};

/// One shared frame being queued for many of this worker's connections (a publish or a
/// broadcast): the work that is the same for every recipient (reading the outbound limit,
/// counting the statistics) is done once, not per recipient, which keeps a delivery to a
/// few instructions (docs/BENCHMARKS.md, "Broadcast regression (issue 28)").
#[derive(Debug)]
pub(crate) struct FanOut<'f> {
    frame: &'f SharedFrame,
    /// `Config::max_outbound_bytes`.
    max: usize,
    /// Connections given the plain frame on the short path, not yet counted.
    plain: u64,
}

impl FanOut<'_> {
    /// The short path of one delivery: a connection that is open, without deflate or TLS, not
    /// in the middle of a fragmented message and with room in its queue gets a clone of the
    /// plain frame, counted at [`WorkerState::fan_out_end`]; exactly what
    /// [`WorkerState::send_shared`] would do for it. `false` (nothing done): this connection
    /// needs `send_shared`.
    #[inline(always)]
    pub fn plain_to(&mut self, core: &mut ConnCore, dirty: &mut Vec<u32>) -> bool {
        debug_assert_eq!(
            core.has(flags::FRAGMENTING),
            core.extra.as_ref().is_some_and(|x| x.fragmenting.is_some())
        );
        let queued = core.out.bytes();
        let plain = core.is_open()
            && !core.has(flags::DEFLATE | flags::FRAGMENTING)
            && !core.is_tls()
            && (queued == 0 || queued + self.frame.plain.len() <= self.max);
        if plain {
            core.push(self.frame.plain.clone());
            self.plain += 1;
            mark_dirty(dirty, core);
        }
        plain
    }
}

impl WorkerState {
    /// Start queueing `frame` for many connections (a publish or broadcast): see [`FanOut`].
    pub fn fan_out<'f>(&self, frame: &'f SharedFrame) -> FanOut<'f> {
        FanOut {
            frame,
            max: self.shared.config.max_outbound_bytes,
            plain: 0,
        }
    }

    /// Queue the fan-out's frame for `core`: the short path ([`FanOut::plain_to`]), or else
    /// [`send_shared`](Self::send_shared).
    #[inline(always)]
    pub fn fan_out_to(&mut self, fan: &mut FanOut<'_>, core: &mut ConnCore) {
        if !fan.plain_to(core, &mut self.dirty) {
            self.fan_out_long(core, fan.frame);
        }
    }

    /// The long path of a fan-out's delivery, kept out of line so that the short one stays a
    /// few instructions inlined in the fan-out loop.
    #[inline(never)]
    pub(super) fn fan_out_long(&mut self, core: &mut ConnCore, frame: &SharedFrame) {
        let _ = self.send_shared(core, frame);
    }

    /// Count what the fan-out queued on its short path, as `send_shared` counts each message.
    pub fn fan_out_end(&self, fan: FanOut<'_>) {
        if fan.plain == 0 {
            return;
        }
        let st = self.stats();
        bump(&st.bytes_queued, fan.plain * fan.frame.plain.len() as u64);
        bump(&st.messages_out, fan.plain);
        if fan.frame.msg.is_text() {
            bump(&st.text_messages_out, fan.plain);
        }
    }
}
