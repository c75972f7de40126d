//! [`ReadStreamer`]: a large transfer (a file, any `Read`) sent as one binary message in
//! fragments, paced by the connection's queue: at most `high_water` bytes wait for the socket,
//! the rest is read only when the peer has taken what came before (`on_drain`).

use std::io::{self, Read};

use bytes::BytesMut;

use crate::runtime::context::Context;

/// Sends everything a reader yields as one binary message, in fragments, without buffering
/// more than about `high_water` bytes per connection. Call [`ReadStreamer::pump`] once to
/// start, then from [`Handler::on_drain`](crate::Handler::on_drain) until it returns
/// `Ok(true)`:
///
/// ```no_run
/// use volley::{Context, Handler, Message, ReadStreamer};
///
/// struct Download { file: Option<ReadStreamer<std::fs::File>> }
///
/// impl Handler for Download {
///     fn on_message(&mut self, ctx: &mut Context<'_>, _msg: Message) {
///         let file = std::fs::File::open("big.bin").expect("open");
///         let mut s = ReadStreamer::new(file);
///         if !s.pump(ctx).expect("read") {
///             self.file = Some(s);
///         }
///     }
///     fn on_drain(&mut self, ctx: &mut Context<'_>) {
///         if let Some(s) = self.file.as_mut() {
///             if s.pump(ctx).expect("read") {
///                 self.file = None; // sent, last fragment included
///             }
///         }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct ReadStreamer<R> {
    reader: R,
    chunk: usize,
    high_water: usize,
    done: bool,
}

impl<R: Read> ReadStreamer<R> {
    /// A streamer of `reader` in fragments of 64 KiB, keeping at most 1 MiB queued.
    pub fn new(reader: R) -> Self {
        ReadStreamer {
            reader,
            chunk: 64 << 10,
            high_water: 1 << 20,
            done: false,
        }
    }

    /// Fragment size (at least 1 byte).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = bytes.max(1);
        self
    }

    /// Stop reading while this many bytes wait for the socket (at least one chunk's worth is
    /// always allowed).
    pub fn high_water(mut self, bytes: usize) -> Self {
        self.high_water = bytes;
        self
    }

    /// Send fragments until the queue reaches the high-water mark or the reader ends.
    /// `Ok(true)`: the whole message is queued (its last fragment included); `Ok(false)`: call
    /// again from `on_drain` (it has asked for one). A read error comes back as it is (the
    /// message stays unfinished: close the connection); a send error (the connection closing,
    /// the outbound limit) as `io::ErrorKind::Other` with the [`Error`](crate::Error) inside.
    pub fn pump(&mut self, ctx: &mut Context<'_>) -> io::Result<bool> {
        if self.done {
            return Ok(true);
        }
        while ctx.buffered_amount() < self.high_water {
            let mut buf = BytesMut::zeroed(self.chunk);
            let n = loop {
                match self.reader.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            buf.truncate(n);
            let fin = n == 0;
            ctx.send_binary_fragment(buf.freeze(), fin)
                .map_err(io::Error::other)?;
            if fin {
                self.done = true;
                return Ok(true);
            }
        }
        ctx.notify_drain();
        Ok(false)
    }
}
