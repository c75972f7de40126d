//! A connection's outbound queue: frames as shared `Bytes`, written with vectored writes
//! (`writev`), many small sends in one system call.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

/// Most buffers handed to one `writev` (Linux's IOV_MAX). A busy broadcast subscriber can get
/// hundreds of frames in one loop turn; one system call takes them all.
const MAX_IOVECS: usize = 1024;
/// The common case, with a smaller array to fill.
const SMALL_IOVECS: usize = 64;

/// A connection's outbound queue: frames as shared `Bytes`, written with vectored writes. The
/// front buffer may be partly written (advanced in place). An empty queue holds no allocation.
#[derive(Debug, Default)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
}

impl OutQueue {
    /// Append a buffer (empty ones are skipped).
    #[inline]
    pub fn push(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        self.bytes += b.len();
        self.bufs.push_back(b);
    }

    /// Bytes queued and not yet written.
    #[inline]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The queued buffers, front first.
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.bufs.iter()
    }

    /// Hand the front buffers to `take` (which returns how much it took) until `max` bytes went
    /// or it takes nothing more: the TLS path, where rustls encrypts them into records.
    #[cfg(feature = "tls")]
    pub(crate) fn drain_into(
        &mut self,
        max: usize,
        mut take: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut total = 0;
        while total < max {
            let Some(front) = self.bufs.front_mut() else {
                break;
            };
            let n = take(front)?;
            if n == 0 {
                break;
            }
            total += n;
            self.bytes -= n;
            if n >= front.len() {
                self.bufs.pop_front();
            } else {
                front.advance(n);
            }
        }
        if self.bufs.is_empty() && self.bufs.capacity() > 256 {
            self.bufs.shrink_to_fit();
        }
        Ok(total)
    }

    /// One `writev` of up to `N` buffers; `Ok(0)` if it would block.
    fn writev<const N: usize, W: Write>(&self, w: &mut W) -> io::Result<usize> {
        let mut iov = [IoSlice::new(&[]); N];
        let mut k = 0;
        for b in self.bufs.iter().take(N) {
            iov[k] = IoSlice::new(b);
            k += 1;
        }
        attempt(|| w.write_vectored(&iov[..k]))
    }

    /// Write as much as `w` takes, up to 1024 buffers per `writev`. Returns the bytes written;
    /// `Ok` with the queue non-empty means `w` would block.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.bufs.is_empty() {
            let n = if self.bufs.len() == 1 {
                // One buffer (the common case of a single reply): a plain write is cheaper in the
                // kernel than a one-element writev.
                attempt(|| w.write(&self.bufs[0]))?
            } else if self.bufs.len() <= SMALL_IOVECS {
                self.writev::<SMALL_IOVECS, W>(w)?
            } else {
                self.writev::<MAX_IOVECS, W>(w)?
            };
            if n == 0 {
                return Ok(total); // would block
            }
            total += n;
            self.bytes -= n;
            let mut left = n;
            while left > 0 {
                let Some(front) = self.bufs.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.bufs.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        // Keep a ring that busy turns have grown (re-growing it every turn would cost several
        // reallocations per connection), but not a burst's huge one.
        if self.bufs.is_empty() && self.bufs.capacity() > 256 {
            self.bufs.shrink_to_fit();
        }
        Ok(total)
    }
}

/// Run one write system call: retried on EINTR, `Ok(0)` if it would block, an error if the
/// socket accepted nothing.
fn attempt(mut write: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        return match write() {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks after `budget` bytes.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.cap).min(self.budget);
            self.got.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_counts() {
        let mut q = OutQueue::default();
        let mut want = Vec::new();
        for i in 0..200u32 {
            let b: Vec<u8> = (0..(i % 37) as u8).map(|x| x ^ i as u8).collect();
            want.extend_from_slice(&b);
            q.push(Bytes::from(b));
        }
        q.push(Bytes::new());
        let total = want.len();
        assert_eq!(q.bytes(), total);
        let mut w = Trickle {
            got: Vec::new(),
            cap: 7,
            budget: 1000,
        };
        assert_eq!(q.write_to(&mut w).unwrap(), 1000);
        assert_eq!(q.bytes(), total - 1000);
        w.budget = usize::MAX;
        assert_eq!(q.write_to(&mut w).unwrap(), total - 1000);
        assert!(q.is_empty());
        assert_eq!(w.got, want);
    }

    #[test]
    fn shared_bytes_are_queued_not_copied() {
        let frame = Bytes::from(vec![1u8; 100]);
        let mut a = OutQueue::default();
        let mut b = OutQueue::default();
        a.push(frame.clone());
        b.push(frame.clone());
        let pa = a.iter().next().unwrap().as_ptr();
        let pb = b.iter().next().unwrap().as_ptr();
        assert_eq!(pa, pb);
        assert_eq!(pa, frame.as_ptr());
    }
}
