//! A minimal safe wrapper over classic zlib's raw deflate (libz-sys, built statically from the
//! zlib sources it bundles): the one engine whose memory follows `windowBits` and `memLevel`
//! (`4 × 2^windowBits + 2^(memLevel + 9)` bytes plus ~5.9 KiB of state), which is what makes
//! per-connection compressors small. zlib-rs, like zlib-ng, keeps a fixed 128 KiB hash table
//! per compressor whatever `memLevel` asks for.
//!
//! Only what permessage-deflate needs: init with level/window/memLevel, a sync-flushed
//! compress, reset, and the dictionary in and out (to release an idle context and restore it).
//! zlib allocates through [`zalloc`]/[`zfree`] below, so its memory goes through Rust's global
//! allocator (counted by the tests' counting allocator like everything else).

use std::alloc::{self, Layout};
use std::ffi::{c_int, c_uint, c_void};
use std::ptr;

use libz_sys as z;

extern "C" {
    // In zlib since 1.2.9; libz-sys does not declare it. We link the bundled zlib (the
    // `static` feature), which has it: the build fails to link otherwise, it cannot misbehave.
    fn deflateGetDictionary(strm: z::z_streamp, dictionary: *mut u8, len: *mut c_uint) -> c_int;
}

/// Alignment and size of the header in front of each zlib allocation (it stores the size, which
/// `zfree` needs to rebuild the layout).
const HEADER: usize = 16;

/// zlib's allocation callback: `items × size` bytes from Rust's allocator, or null.
///
/// # Safety
/// Called by zlib only, with any `opaque`; it reads and writes nothing but its own allocation.
unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let Some(total) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|n| n.checked_add(HEADER))
    else {
        return ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(total, HEADER) else {
        return ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size (at least HEADER bytes).
    let base = unsafe { alloc::alloc(layout) };
    if base.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `base` is valid for `total >= HEADER` bytes and aligned to 16, so the usize at its
    // start and the pointer HEADER bytes on are in bounds and aligned.
    unsafe {
        base.cast::<usize>().write(total);
        base.add(HEADER).cast()
    }
}

/// zlib's free callback, for pointers [`zalloc`] returned.
///
/// # Safety
/// `address` is null or came from [`zalloc`] and was not freed yet (zlib's contract).
unsafe extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: `address` is HEADER bytes past the start of a block from `zalloc`, which stored the
    // block's total size there with the same alignment, so the layout is the one allocated.
    unsafe {
        let base = address.cast::<u8>().sub(HEADER);
        let total = base.cast::<usize>().read();
        alloc::dealloc(base, Layout::from_size_align_unchecked(total, HEADER));
    }
}

/// A raw-deflate compressor (no zlib header) on classic zlib.
pub(super) struct ZDeflate {
    /// Boxed: zlib's state points back at its stream and checks that it did not move.
    strm: Box<z::z_stream>,
}

// SAFETY: the stream and the state it owns are only reached through `&mut self`; zlib keeps no
// thread-local or global mutable state, so moving the owner to another thread is sound.
unsafe impl Send for ZDeflate {}

impl ZDeflate {
    /// A compressor at `level` (0–9), `window_bits` (9–15) and `mem_level` (1–9), all already in
    /// range; `None` if zlib refused (out of memory).
    pub fn new(level: u8, window_bits: u8, mem_level: u8) -> Option<Self> {
        let mut strm = Box::new(z::z_stream {
            next_in: ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: ptr::null_mut(),
            state: ptr::null_mut(),
            zalloc,
            zfree,
            opaque: ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        // SAFETY: `strm` is a fully initialised stream with our allocator and no state; zlib
        // checks the version and struct size we pass against its own.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                c_int::from(level.min(9)),
                z::Z_DEFLATED,
                -c_int::from(window_bits.clamp(9, 15)),
                c_int::from(mem_level.clamp(1, 9)),
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        (rc == z::Z_OK).then_some(ZDeflate { strm })
    }

    /// Compress `input` with `Z_SYNC_FLUSH`, appending to `out`. `false` if zlib reported an
    /// error (then `out` holds a partial result the caller discards).
    pub fn compress_sync(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let mut rest = input;
        let mut room = input.len() + input.len() / 64 + 64;
        let ok = loop {
            out.reserve(room);
            room = room.saturating_mul(2);
            let spare = out.spare_capacity_mut();
            let take = rest.len().min(c_uint::MAX as usize);
            let space = spare.len().min(c_uint::MAX as usize);
            self.strm.next_in = rest.as_ptr().cast_mut();
            self.strm.avail_in = take as c_uint;
            self.strm.next_out = spare.as_mut_ptr().cast();
            self.strm.avail_out = space as c_uint;
            // SAFETY: `next_in` points at `take` readable bytes of `rest` (zlib only reads
            // through it), `next_out` at `space` writable bytes of `out`'s spare capacity; both
            // outlive the call, and the stream was initialised by `deflateInit2_`.
            let rc = unsafe { z::deflate(&mut *self.strm, z::Z_SYNC_FLUSH) };
            let consumed = take - self.strm.avail_in as usize;
            let produced = space - self.strm.avail_out as usize;
            // SAFETY: zlib wrote `produced` bytes at the start of the spare capacity.
            unsafe { out.set_len(out.len() + produced) };
            rest = &rest[consumed..];
            if rc != z::Z_OK && rc != z::Z_BUF_ERROR {
                break false;
            }
            // Done when all input is in and zlib had output space left (the flush is complete).
            if rest.is_empty() && self.strm.avail_out > 0 {
                break true;
            }
            if consumed == 0 && produced == 0 && self.strm.avail_out > 0 {
                break false; // no progress with room on both sides: should not happen
            }
        };
        self.strm.next_in = ptr::null_mut();
        self.strm.next_out = ptr::null_mut();
        self.strm.avail_in = 0;
        self.strm.avail_out = 0;
        ok
    }

    /// Forget every earlier message (keeps the memory).
    pub fn reset(&mut self) {
        // SAFETY: an initialised stream; deflateReset only touches its own state.
        unsafe { z::deflateReset(&mut *self.strm) };
    }

    /// Start from `dictionary` as if it had just been compressed (its last 2^windowBits bytes
    /// count). Only right after creation or [`ZDeflate::reset`]. `false` if zlib refused.
    pub fn set_dictionary(&mut self, dictionary: &[u8]) -> bool {
        let Ok(len) = c_uint::try_from(dictionary.len()) else {
            return false;
        };
        // SAFETY: `dictionary` is `len` readable bytes for the duration of the call (zlib copies
        // it into its window); the stream is initialised.
        let rc = unsafe { z::deflateSetDictionary(&mut *self.strm, dictionary.as_ptr(), len) };
        rc == z::Z_OK
    }

    /// The compressor's current window (at most 2^windowBits bytes of the latest input), what a
    /// new compressor needs through [`ZDeflate::set_dictionary`] to continue the stream.
    pub fn dictionary(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        // The window is at most 32 KiB (windowBits 15).
        out.reserve_exact(1 << 15);
        let mut len: c_uint = 0;
        // SAFETY: zlib writes at most its window size (≤ 32 KiB, reserved above) into `out`'s
        // spare capacity and stores the length in `len`; the stream is initialised.
        let rc = unsafe {
            deflateGetDictionary(
                &mut *self.strm,
                out.spare_capacity_mut().as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != z::Z_OK || len as usize > out.capacity() {
            return false;
        }
        // SAFETY: zlib initialised the first `len` bytes, within the capacity (checked).
        unsafe { out.set_len(len as usize) };
        out.shrink_to_fit();
        true
    }
}

impl Drop for ZDeflate {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised and is ended once; deflateEnd frees through zfree.
        unsafe { z::deflateEnd(&mut *self.strm) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut d = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(data, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn compresses_with_a_sync_flush_readable_by_another_inflater() {
        let mut c = ZDeflate::new(1, 9, 1).unwrap();
        let msg = br#"{"type":"chat","text":"hello hello hello hello"}"#;
        let mut out = Vec::new();
        assert!(c.compress_sync(msg, &mut out));
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        assert_eq!(inflate(&out), msg);
        // Incompressible input larger than the first guess of output room.
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut c = ZDeflate::new(6, 15, 9).unwrap();
        let mut out = Vec::new();
        assert!(c.compress_sync(&noise, &mut out));
        assert_eq!(inflate(&out), noise);
    }

    #[test]
    fn a_dictionary_taken_out_continues_the_stream_in_a_new_compressor() {
        let first = br#"{"type":"chat","room":"general","user":"alice","text":"good morning"}"#;
        let second = br#"{"type":"chat","room":"general","user":"alice","text":"good evening"}"#;
        let mut a = ZDeflate::new(1, 10, 2).unwrap();
        let mut stream = Vec::new();
        assert!(a.compress_sync(first, &mut stream));
        let mut dict = Vec::new();
        assert!(a.dictionary(&mut dict));
        assert_eq!(dict, first);
        drop(a);
        let mut b = ZDeflate::new(1, 10, 2).unwrap();
        assert!(b.set_dictionary(&dict));
        let before = stream.len();
        assert!(b.compress_sync(second, &mut stream));
        // The second message refers to the first: much smaller than it alone.
        assert!(stream.len() - before < second.len() / 2, "{stream:?}");
        let mut expected = first.to_vec();
        expected.extend_from_slice(second);
        assert_eq!(inflate(&stream), expected);
    }

    #[test]
    fn reset_forgets_and_the_window_caps_the_dictionary() {
        let mut c = ZDeflate::new(1, 9, 1).unwrap();
        let big = vec![b'x'; 5000];
        let mut out = Vec::new();
        assert!(c.compress_sync(&big, &mut out));
        let mut dict = Vec::new();
        assert!(c.dictionary(&mut dict));
        assert!(dict.len() <= 512, "{}", dict.len());
        c.reset();
        assert!(c.dictionary(&mut dict));
        assert!(dict.is_empty());
    }
}
