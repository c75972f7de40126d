//! A worker's two reusable blocks: [`ReadBlock`], the memory every socket read of the worker
//! lands in, and [`FrameArena`], the memory small outgoing frames and frame headers are encoded
//! into. Both hand out views (`BytesMut` / `Bytes`) that share the block, and both take the
//! block back, without allocating or zero-filling, once every view of it is gone; only while a
//! view is still held (a handler keeping a `Message`, a queue a slow peer has not read) does the
//! worker move on to a fresh block. In steady state reading and encoding allocate nothing.

use bytes::{Bytes, BytesMut};

use crate::protocol::frame::{Frame, FrameHeader, MAX_HEADER_LEN};

/// The worker's read buffer: reads land in it, frames are split off it and handed to handlers
/// as views (no copy), and it is reused in place once they are all dropped.
#[derive(Debug)]
pub(crate) struct ReadBlock {
    /// Initialised bytes the next read may use (`len` is the usable space).
    buf: BytesMut,
    /// The block size (`Config::read_buffer_size`).
    size: usize,
}

impl ReadBlock {
    /// An empty block; the first read allocates it.
    pub fn new(size: usize) -> Self {
        ReadBlock {
            buf: BytesMut::new(),
            size: size.max(4096),
        }
    }

    /// The space the next read lands in: at least a quarter of the block. Reclaims the block
    /// when no view of it is left, else starts a fresh one.
    pub fn space(&mut self) -> &mut [u8] {
        if self.buf.len() < self.size / 4 {
            self.refill();
        }
        &mut self.buf[..]
    }

    /// The first `n` bytes of the space (just read), split off as their own view.
    pub fn take(&mut self, n: usize) -> BytesMut {
        self.buf.split_to(n.min(self.buf.len()))
    }

    fn refill(&mut self) {
        self.buf.clear();
        if self.buf.try_reclaim(self.size) {
            let cap = self.buf.capacity();
            // SAFETY: `set_len(cap)` needs `cap` initialised bytes at `self.buf`'s pointer.
            // `self.buf` only ever views allocations made by `BytesMut::zeroed(self.size)` below
            // (a `Vec` whose whole capacity, `self.size` bytes, is zero-initialised) or, before
            // the first refill, an empty `BytesMut::new()` (for which `try_reclaim` is false, as
            // it would have to allocate). `try_reclaim` never allocates: returning true, it
            // leaves `self.buf` viewing `[ptr, ptr + cap)` inside that same allocation (from its
            // start, or from the current offset if enough room is left there), and bytes of it
            // that were initialised stay initialised (reads and the unmasking only overwrite
            // them). So all `cap` bytes are initialised. No other handle can see them: reclaiming
            // succeeds only when `self.buf` is the allocation's sole remaining view.
            unsafe { self.buf.set_len(cap) };
        } else {
            self.buf = BytesMut::zeroed(self.size);
        }
    }
}

/// Bytes of the arena for outgoing frames.
const ARENA_SIZE: usize = 64 << 10;
/// Frames larger than this get an allocation of their own rather than arena space.
const ARENA_MAX_FRAME: usize = 2 << 10;

/// Where small outgoing frames (whole frames up to 2 KiB, and the headers of larger ones) are
/// encoded: one block, views of it queued as `Bytes`, reused once they are all written.
#[derive(Debug, Default)]
pub(crate) struct FrameArena {
    buf: BytesMut,
}

impl FrameArena {
    /// `frame` encoded into one `Bytes`: a view of the arena when it is small, its own
    /// allocation otherwise.
    pub fn frame(&mut self, frame: &Frame<'_>) -> Bytes {
        let len = frame.encoded_len();
        if len > ARENA_MAX_FRAME {
            return frame.encode();
        }
        self.make_room(len);
        frame.encode_to(&mut self.buf);
        self.buf.split().freeze()
    }

    /// The encoded `header` alone (for a payload queued by reference after it).
    pub fn header(&mut self, header: &FrameHeader) -> Bytes {
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut h);
        self.make_room(n);
        self.buf.extend_from_slice(&h[..n]);
        self.buf.split().freeze()
    }

    fn make_room(&mut self, len: usize) {
        if self.buf.capacity() - self.buf.len() >= len {
            return;
        }
        // Everything encoded so far has been split off; take the block back if no view of it
        // is left (all written), else start a new one. No zero-filling: encoding appends.
        self.buf.clear();
        if !self.buf.try_reclaim(ARENA_SIZE) {
            self.buf = BytesMut::with_capacity(ARENA_SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_block_is_reused_once_its_views_are_gone() {
        let mut block = ReadBlock::new(4096);
        let first = block.space().as_ptr();
        assert_eq!(block.space().len(), 4096);
        block.space()[..4].copy_from_slice(b"abcd");
        let view = block.take(3500);
        drop(view);
        // Under a quarter left: the next read reuses the same memory from its start.
        assert!(block.space().len() >= 4096 / 4);
        assert_eq!(block.space().as_ptr(), first);
        assert_eq!(block.space().len(), 4096);
    }

    #[test]
    fn a_kept_view_is_never_overwritten() {
        let mut block = ReadBlock::new(4096);
        block.space()[..3500].fill(7);
        let kept = block.take(3500).freeze();
        // The next reads go elsewhere: the kept bytes stay as they were.
        for round in 0..10u8 {
            let space = block.space();
            space.fill(round);
            let n = space.len().min(3500);
            drop(block.take(n));
        }
        assert!(kept.iter().all(|&b| b == 7));
    }

    #[test]
    fn the_arena_encodes_small_frames_in_place_and_is_reused() {
        let mut arena = FrameArena::default();
        let a = arena.frame(&Frame::text(b"hello"));
        assert_eq!(&a[..], &Frame::text(b"hello").encode()[..]);
        let h = arena.header(&FrameHeader::new(
            crate::protocol::frame::OpCode::Binary,
            70_000,
        ));
        assert_eq!(h.len(), 10);
        let big = vec![1u8; 4096];
        assert_eq!(
            &arena.frame(&Frame::binary(&big))[..],
            &Frame::binary(&big).encode()[..]
        );
        // A view still queued keeps its bytes while the arena moves on.
        let held = a.clone();
        for _ in 0..(ARENA_SIZE / 100 + 2) {
            drop(arena.frame(&Frame::binary(&[9u8; 98])));
        }
        assert_eq!(&held[..], &Frame::text(b"hello").encode()[..]);
        drop((a, h, held));
        // With every view dropped as soon as it is made (written at once), the arena comes back
        // to the same memory instead of allocating.
        let p0 = arena.frame(&Frame::binary(&[1u8; 98])).as_ptr();
        let reused = (0..ARENA_SIZE / 100 + 2)
            .map(|_| arena.frame(&Frame::binary(&[1u8; 98])).as_ptr())
            .any(|p| p == p0);
        assert!(reused, "the arena was not reused");
    }
}
