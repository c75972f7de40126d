//! Where a connection's next read lands: a pure choice over the connection's state, so the
//! read loop (`inbound.rs`) only carries it out.
//!
//! - **Block**: the worker's shared read block, the common case. One read may bring several
//!   small frames; the frames split off it are handed out without a copy.
//! - **Direct**: the rest of a large frame that has begun goes straight into the buffer that
//!   was reserved for the whole frame when its header came: no copy from the block, and one
//!   read for as much of it as the socket has.
//! - **Bulk**: a connection whose last frame was large (64 KiB to 1 MiB) reads the next one
//!   into a fresh frame buffer of that size: a message like the last arrives whole in one
//!   read, with no copy (and if it is something else, the buffer serves like the block).
//!
//! Direct and bulk reads bypass TLS (there the records are decrypted into the block).

use bytes::BytesMut;

use crate::protocol::reader::Reader;
use crate::runtime::buffers::FRAME_POOL_MAX;
use crate::runtime::connection::ConnCore;

/// A frame's rest smaller than this is read through the worker's block as usual (one read
/// there may bring several small frames at once).
pub(super) const DIRECT_MIN: usize = 4096;

/// Room kept after a frame in its buffer, so a read straight into it can ask for more than the
/// frame's rest: a short read then tells the socket is drained (no extra read to see
/// `WouldBlock`), and the start of a next frame can come along.
pub(super) const FRAME_SLACK: usize = 4096;

/// How the next read of a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadPlan {
    /// Into the worker's shared read block.
    Block,
    /// Up to this many bytes straight into the connection's partial frame (`ConnCore::rbuf`).
    Direct(usize),
    /// Into a frame buffer of this many bytes from the pool.
    Bulk(usize),
}

/// What the plan depends on: a few facts about one connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadState<'a> {
    /// The connection reads frames (open, or waiting for the peer's close frame).
    pub reads_frames: bool,
    /// The connection is open.
    pub open: bool,
    /// The connection speaks TLS.
    pub tls: bool,
    /// The partial frame or request kept from the last read, if any.
    pub partial: Option<&'a BytesMut>,
    /// The read-ahead hint: the length of the last frame if it was large, else 0.
    pub bulk: u32,
}

impl<'a> ReadState<'a> {
    /// The facts of `core`.
    pub fn of(core: &'a ConnCore) -> Self {
        ReadState {
            reads_frames: core.reads_frames(),
            open: core.is_open(),
            tls: core.is_tls(),
            partial: core.rbuf.as_deref(),
            bulk: core.bulk,
        }
    }
}

impl ReadPlan {
    /// Choose the next read for a connection in state `s`.
    pub fn choose(s: ReadState<'_>) -> ReadPlan {
        if s.tls {
            return ReadPlan::Block;
        }
        match s.partial {
            Some(tail) if s.reads_frames => match direct_want(tail) {
                0 => ReadPlan::Block,
                want => ReadPlan::Direct(want),
            },
            Some(_) => ReadPlan::Block,
            None if s.open && s.bulk > 0 => ReadPlan::Bulk(s.bulk as usize + FRAME_SLACK),
            None => ReadPlan::Block,
        }
    }
}

/// The read-ahead for a connection that just received a frame of `len` bytes: that length
/// for large frames that the frame pool can hold, else 0.
pub(super) fn bulk_hint(len: usize) -> u32 {
    if (64 << 10..=FRAME_POOL_MAX).contains(&len) {
        len as u32
    } else {
        0
    }
}

/// How many bytes to read straight into `tail`, the buffer of a frame that has begun: the rest
/// of that frame plus whatever slack the buffer has, if the rest is large and the buffer has
/// room for all of it (it was reserved from the frame's header); else 0.
fn direct_want(tail: &BytesMut) -> usize {
    let Some(frame_len) = Reader::pending_frame_len(tail) else {
        return 0;
    };
    let rest = frame_len.saturating_sub(tail.len());
    let spare = tail.capacity() - tail.len();
    if rest >= DIRECT_MIN && spare >= rest {
        spare.min(rest + FRAME_SLACK)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{Frame, FrameHeader};

    /// The first `have` bytes of a masked binary frame of `len` payload bytes, in a buffer of
    /// `cap` bytes.
    fn partial(len: usize, have: usize, cap: usize) -> BytesMut {
        let payload = vec![1u8; len];
        let frame = Frame::binary(&payload).masked([1, 2, 3, 4]).encode();
        let mut b = BytesMut::with_capacity(cap);
        b.extend_from_slice(&frame[..have]);
        b
    }

    fn open(partial: Option<&BytesMut>, bulk: u32) -> ReadState<'_> {
        ReadState {
            reads_frames: true,
            open: true,
            tls: false,
            partial,
            bulk,
        }
    }

    #[test]
    fn a_large_rest_is_read_directly_with_slack() {
        let header = FrameHeader::encoded_len(100_000, true);
        let b = partial(100_000, 10_000, header + 100_000 + FRAME_SLACK);
        assert_eq!(direct_want(&b), header + 100_000 - 10_000 + FRAME_SLACK);
        // Without room for all of the rest: through the read block as usual.
        let b = partial(100_000, 10_000, 50_000);
        assert_eq!(direct_want(&b), 0);
    }

    #[test]
    fn small_rests_and_unknown_lengths_go_through_the_block() {
        let b = partial(5_000, 3_000, 16_000);
        assert_eq!(direct_want(&b), 0, "2 KiB missing: not worth its own read");
        let b = partial(100_000, 1, 200_000);
        assert_eq!(direct_want(&b), 0, "header incomplete: length unknown");
    }

    #[test]
    fn a_begun_large_frame_is_read_directly_while_open_or_closing() {
        let header = FrameHeader::encoded_len(100_000, true);
        let b = partial(100_000, 10_000, header + 100_000 + FRAME_SLACK);
        let want = ReadPlan::Direct(header + 100_000 - 10_000 + FRAME_SLACK);
        assert_eq!(ReadPlan::choose(open(Some(&b), 0)), want);
        let closing = ReadState {
            open: false,
            ..open(Some(&b), 0)
        };
        assert_eq!(ReadPlan::choose(closing), want);
        // Before the upgrade the bytes are a request, not a frame.
        let handshake = ReadState {
            reads_frames: false,
            open: false,
            ..open(Some(&b), 0)
        };
        assert_eq!(ReadPlan::choose(handshake), ReadPlan::Block);
        let tls = ReadState {
            tls: true,
            ..open(Some(&b), 0)
        };
        assert_eq!(ReadPlan::choose(tls), ReadPlan::Block);
    }

    #[test]
    fn after_a_large_frame_the_next_read_gets_a_frame_buffer_while_open() {
        let hint = bulk_hint(256 << 10);
        assert_eq!(hint, 256 << 10);
        assert_eq!(
            ReadPlan::choose(open(None, hint)),
            ReadPlan::Bulk((256 << 10) + FRAME_SLACK)
        );
        let closing = ReadState {
            open: false,
            ..open(None, hint)
        };
        assert_eq!(ReadPlan::choose(closing), ReadPlan::Block);
        // A partial frame that is not worth a direct read goes through the block.
        let b = partial(5_000, 3_000, 16_000);
        assert_eq!(ReadPlan::choose(open(Some(&b), hint)), ReadPlan::Block);
        assert_eq!(ReadPlan::choose(open(None, 0)), ReadPlan::Block);
    }

    #[test]
    fn only_large_frames_that_the_pool_holds_hint_a_read_ahead() {
        assert_eq!(bulk_hint((64 << 10) - 1), 0);
        assert_eq!(bulk_hint(64 << 10), 64 << 10);
        assert_eq!(bulk_hint(FRAME_POOL_MAX), FRAME_POOL_MAX as u32);
        assert_eq!(bulk_hint(FRAME_POOL_MAX + 1), 0);
    }
}
