//! A worker's two reusable blocks: [`ReadBlock`], the memory every socket read of the worker
//! lands in, and [`FrameArena`], the memory small outgoing frames and frame headers are encoded
//! into. Both hand out views (`BytesMut` / `Bytes`) that share the block, and both take the
//! block back, without allocating or zero-filling, once every view of it is gone; only while a
//! view is still held (a handler keeping a `Message`, a queue a slow peer has not read) does the
//! worker move on to a fresh block. In steady state reading and encoding allocate nothing.

use bytes::{Bytes, BytesMut};

use crate::protocol::frame::{Frame, FrameHeader, MAX_HEADER_LEN};

/// Retired blocks kept for reuse (each `read_buffer_size` bytes).
const RETIRED_MAX: usize = 8;

/// The worker's read buffer: reads land in it, frames are split off it and handed to handlers
/// as views (no copy), and it is reused in place once they are all dropped. A block that is
/// still viewed when it runs low (echoes queued in this loop turn still point into it) is
/// retired into a small pool and reused from there once its views are gone, so a busy worker
/// cycles through a few blocks instead of allocating and zero-filling new ones.
#[derive(Debug)]
pub(crate) struct ReadBlock {
    /// Initialised bytes the next read may use (`len` is the usable space).
    buf: BytesMut,
    /// Empty views of earlier blocks, each waiting for its other views to go.
    retired: Vec<BytesMut>,
    /// The block size (`Config::read_buffer_size`).
    size: usize,
}

impl ReadBlock {
    /// An empty block; the first read allocates it.
    pub fn new(size: usize) -> Self {
        ReadBlock {
            buf: BytesMut::new(),
            retired: Vec::new(),
            size: size.max(4096),
        }
    }

    /// The space the next read lands in: at least a quarter of the block. Goes back to the
    /// block's start whenever no view of it is left (the last reads' messages handled and their
    /// echoes written), so a busy worker's reads keep landing in the same cache-warm memory;
    /// when it runs low while still viewed, reuses a retired block, else starts a fresh one.
    pub fn space(&mut self) -> &mut [u8] {
        if self.buf.len() < self.size
            && !reclaim(&mut self.buf, self.size)
            && self.buf.len() < self.size / 4
        {
            self.refill();
        }
        &mut self.buf[..]
    }

    /// The first `n` bytes of the space (just read), split off as their own view.
    pub fn take(&mut self, n: usize) -> BytesMut {
        self.buf.split_to(n.min(self.buf.len()))
    }

    /// Moves on from the current block, which is still viewed and low on space.
    fn refill(&mut self) {
        let next = match (0..self.retired.len()).find(|&i| reclaim(&mut self.retired[i], self.size))
        {
            Some(i) => self.retired.swap_remove(i),
            None => BytesMut::zeroed(self.size),
        };
        let old = std::mem::replace(&mut self.buf, next);
        if self.retired.len() == RETIRED_MAX {
            // The oldest is probably held by a handler for good: let it go.
            self.retired.remove(0);
        }
        self.retired.push(old);
    }
}

/// Make `buf` view the whole of its block again, if it is the block's only view; true if it
/// now offers `size` initialised bytes. Either way `buf` is left offering all the initialised
/// bytes it views (its whole capacity).
fn reclaim(buf: &mut BytesMut, size: usize) -> bool {
    buf.clear();
    let reclaimed = buf.try_reclaim(size);
    let cap = buf.capacity();
    // SAFETY: `set_len(cap)` needs `cap` initialised bytes at `buf`'s pointer. Every block a
    // `ReadBlock` holds (current or retired) views an allocation made by
    // `BytesMut::zeroed(self.size)` (a `Vec` whose whole capacity, `self.size` bytes, is
    // zero-initialised), or is the empty `BytesMut::new()` of a fresh `ReadBlock` (capacity 0,
    // for which `try_reclaim` is false as it would have to allocate). Neither `clear` nor
    // `try_reclaim` allocates: `clear` keeps the view's pointer and capacity, and
    // `try_reclaim`, returning true, leaves `buf` viewing `[ptr, ptr + cap)` inside that same
    // allocation (from its start, or from its current offset if enough room is left there),
    // and returning false changes nothing. Bytes that were initialised stay initialised (reads
    // and unmasking only overwrite them), so all `cap` bytes are initialised. No other handle
    // can observe them: views split off a `BytesMut` never overlap, and reclaiming succeeds
    // only when `buf` is the allocation's sole remaining view.
    unsafe { buf.set_len(cap) };
    reclaimed
}

/// Frame buffers the pool handles: from 16 KiB to 1 MiB; at most 64 kept, 16 MiB in all.
const FRAME_POOL_MIN: usize = 16 << 10;
pub(crate) const FRAME_POOL_MAX: usize = 1 << 20;
const FRAME_POOL_COUNT: usize = 64;
const FRAME_POOL_BYTES: usize = 16 << 20;

/// Buffers for frames that arrive over several reads (one per such frame, sized from its
/// header): taken back once the message cut from them is dropped, so a stream of large messages
/// does not allocate (and, for big ones, map and fault in fresh pages for) a buffer each. Sized
/// for many connections receiving large frames at once (50 × 256 KiB in the benchmark), and
/// bounded: at most 64 buffers and 16 MiB per worker.
#[derive(Debug, Default)]
pub(crate) struct FramePool {
    /// Empty views of earlier frame buffers, each waiting for its message to be dropped, with
    /// the size of the frame each was made for.
    free: Vec<(BytesMut, usize)>,
    /// The sum of those sizes.
    bytes: usize,
}

impl FramePool {
    /// An empty buffer with room for `need` bytes: a pooled one whose message is gone, or new.
    pub fn get(&mut self, need: usize) -> BytesMut {
        if (FRAME_POOL_MIN..=FRAME_POOL_MAX).contains(&need) {
            let found = (0..self.free.len()).find(|&i| {
                let b = &mut self.free[i].0;
                b.clear();
                b.try_reclaim(need)
            });
            if let Some(i) = found {
                let (buf, size) = self.free.swap_remove(i);
                self.bytes -= size;
                return buf;
            }
        }
        BytesMut::with_capacity(need)
    }

    /// Keep `buf`, what is left of the buffer of a frame of `frame_len` bytes, for reuse.
    pub fn put(&mut self, buf: BytesMut, frame_len: usize) {
        if !(FRAME_POOL_MIN..=FRAME_POOL_MAX).contains(&frame_len) {
            return;
        }
        while !self.free.is_empty()
            && (self.free.len() == FRAME_POOL_COUNT || self.bytes + frame_len > FRAME_POOL_BYTES)
        {
            // The oldest is probably held by a message a handler keeps: let it go.
            let (_, size) = self.free.remove(0);
            self.bytes -= size;
        }
        self.bytes += frame_len;
        self.free.push((buf, frame_len));
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
    fn reads_start_over_at_the_block_start_once_every_view_is_gone() {
        let mut block = ReadBlock::new(4096);
        let first = block.space().as_ptr();
        for _ in 0..10 {
            // Far more than a quarter is left, yet with the view dropped the next read lands
            // where the last one did.
            drop(block.take(1000));
            assert_eq!(block.space().as_ptr(), first);
            assert_eq!(block.space().len(), 4096);
        }
        // While a view is held, the next read goes after it.
        let held = block.take(1000);
        assert_eq!(block.space().as_ptr(), first.wrapping_add(1000));
        assert_eq!(block.space().len(), 3096);
        drop(held);
        assert_eq!(block.space().as_ptr(), first);
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
