//! Inflating a streamed compressed message piece by piece (RFC 7692 §7.2.2 over a stream):
//! [`InflateStream`] turns the compressed chunks of one message into inflated chunks of at most
//! [`PIECE`] bytes each, with the message's size limit checked as it inflates.

use bytes::BytesMut;
use zlib_rs::{InflateFlush, Status};

use super::codec::{Decompressor, InflateState, TAIL};
use crate::protocol::error::ProtocolError;
use crate::protocol::message::{Chunk, Message, Utf8Bytes};
use crate::protocol::utf8::Utf8Validator;

/// The most inflated bytes one chunk carries: what a streamed message costs in memory at a
/// time, whatever its size.
pub const PIECE: usize = 64 << 10;

/// Where the decompressor came from, and where its context goes when the message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The connection's own (32 KiB window with context takeover): handed back.
    Own,
    /// Started from the connection's window, which follows every piece.
    Window,
    /// The peer resets its context after every message: nothing carries over.
    Fresh,
}

/// One compressed message being inflated as it streams in. It holds a decompressor of its own
/// (46 KiB) while the message lasts, since other connections' messages use the worker's shared
/// one between this message's chunks.
#[derive(Debug)]
pub struct InflateStream {
    d: Box<Decompressor>,
    origin: Origin,
    text: bool,
    utf8: Utf8Validator,
    /// Inflated bytes so far, and the most allowed.
    total: u64,
    max: u64,
    /// How much of [`TAIL`] has been fed, after the last compressed byte.
    tail_at: usize,
    /// The last call filled its output: zlib may hold more before needing input.
    more: bool,
    /// A final block (BFINAL) ended the DEFLATE stream: anything after it carries nothing.
    ended: bool,
    first: bool,
}

impl InflateStream {
    /// Start inflating a message of the connection whose receiving side is `state`: `text`
    /// for a text message (validated as it inflates), at most `max` inflated bytes.
    pub fn start(state: &mut InflateState, text: bool, max: u64) -> Result<Self, ProtocolError> {
        let (d, origin) = if state.peer_window_bits == 15 && !state.peer_no_context_takeover {
            let d = state
                .own
                .take()
                .unwrap_or_else(|| Box::new(Decompressor::new(15, false)));
            (d, Origin::Own)
        } else if state.peer_no_context_takeover {
            (Box::new(Decompressor::new(15, true)), Origin::Fresh)
        } else {
            let mut d = Box::new(Decompressor::new(15, false));
            if !state.window.is_empty() && d.inner.set_dictionary(&state.window).is_err() {
                return Err(ProtocolError::Compression);
            }
            (d, Origin::Window)
        };
        Ok(InflateStream {
            d,
            origin,
            text,
            utf8: Utf8Validator::new(),
            total: 0,
            max,
            tail_at: 0,
            more: false,
            ended: false,
            first: true,
        })
    }

    /// Inflate from the front of `input` (compressed bytes of the message, in order; `last`:
    /// its final ones) into the next chunk of at most [`PIECE`] bytes. Returns the chunk, if
    /// one is ready, and how many bytes of `input` were used; call again with the rest until it
    /// returns no chunk (then all of `input` is used) or the last chunk. After the last chunk
    /// (or an error) hand the stream to [`InflateStream::finish`].
    ///
    /// Errors: [`ProtocolError::MessageTooLarge`] past `max`, [`ProtocolError::Compression`]
    /// for data that is not DEFLATE, [`ProtocolError::InvalidUtf8`] for text that is not UTF-8.
    pub fn next(
        &mut self,
        state: &mut InflateState,
        input: &[u8],
        last: bool,
    ) -> Result<(Option<Chunk>, usize), ProtocolError> {
        let room = input.len().saturating_mul(4).clamp(1024, PIECE);
        let mut out = BytesMut::zeroed(room);
        let (written, mut used) = self.inflate(input, last, &mut out)?;
        if self.ended {
            used = input.len(); // bytes after the final block (§7.2.3.4's padding) carry nothing
        }
        out.truncate(written);
        self.total = self.total.saturating_add(written as u64);
        if self.total > self.max {
            return Err(ProtocolError::MessageTooLarge {
                size: self.total,
                max: usize::try_from(self.max).unwrap_or(usize::MAX),
            });
        }
        if self.origin == Origin::Window {
            state.slide(&out);
        }
        let done =
            last && used == input.len() && !self.more && (self.ended || self.tail_at == TAIL.len());
        Ok((self.chunk(out, done)?, used))
    }

    /// Inflate from `input` (then, when `last`, the sync tail) into `out` until it is full, the
    /// input is used up or the stream ends. Returns (bytes written, bytes of `input` used).
    fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut [u8],
    ) -> Result<(usize, usize), ProtocolError> {
        let (mut written, mut used) = (0, 0);
        while written < out.len() && !self.ended {
            let in_tail = last && used == input.len();
            let src: &[u8] = if in_tail {
                &TAIL[self.tail_at..]
            } else {
                &input[used..]
            };
            if src.is_empty() && !self.more {
                break;
            }
            let (in_before, out_before) = (self.d.inner.total_in(), self.d.inner.total_out());
            let status = self
                .d
                .inner
                .decompress(src, &mut out[written..], InflateFlush::SyncFlush);
            let consumed = (self.d.inner.total_in() - in_before) as usize;
            let produced = (self.d.inner.total_out() - out_before) as usize;
            if in_tail {
                self.tail_at += consumed;
            } else {
                used += consumed;
            }
            written += produced;
            self.more = written == out.len();
            match status {
                Err(_) => return Err(ProtocolError::Compression),
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(_) => {}
            }
            if consumed == 0 && produced == 0 && !self.ended {
                if src.is_empty() {
                    self.more = false;
                    break;
                }
                return Err(ProtocolError::Compression);
            }
        }
        Ok((written, used))
    }

    /// The chunk of the inflated bytes `out` (text checked as UTF-8 up to its last whole code
    /// point; `done`: the message's last chunk), or none if there is nothing to hand out yet.
    fn chunk(&mut self, out: BytesMut, done: bool) -> Result<Option<Chunk>, ProtocolError> {
        let data = if self.text {
            let data = self
                .utf8
                .complete_text(out)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            if done {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            data
        } else {
            out
        };
        if data.is_empty() && !done {
            return Ok(None);
        }
        let data = data.freeze();
        let msg = if self.text {
            Message::Text(Utf8Bytes::from_validated(data))
        } else {
            Message::Binary(data)
        };
        let first = std::mem::replace(&mut self.first, false);
        Ok(Some(Chunk::new(msg, first, done)))
    }

    /// The message ended (or failed): give the connection back what carries its compression
    /// context to the next message.
    pub fn finish(self, state: &mut InflateState) {
        match self.origin {
            Origin::Own => {
                let mut d = self.d;
                if self.ended {
                    d.reset();
                }
                state.own = Some(d);
            }
            // After a final block the next message starts a new stream, with an empty window.
            Origin::Window if self.ended => state.window.clear(),
            Origin::Window | Origin::Fresh => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::deflate::{Compressor, CompressorConfig, Inflater};
    use crate::protocol::test_rng::Rng;

    fn compress(c: &mut Compressor, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.compress(input, &mut out);
        out
    }

    /// Inflate `payload` through a stream, fed in pieces of the sizes `rng` picks (up to
    /// `step`): the chunks joined, and how many there were.
    fn stream(
        state: &mut InflateState,
        payload: &[u8],
        text: bool,
        max: u64,
        rng: &mut Rng,
        step: usize,
    ) -> Result<(Vec<u8>, usize), ProtocolError> {
        let mut s = InflateStream::start(state, text, max)?;
        let (mut joined, mut chunks) = (Vec::new(), 0);
        let mut rest = payload;
        loop {
            let n = rest.len().min(rng.below(step) + 1);
            let (mut input, after) = rest.split_at(n);
            rest = after;
            let last = rest.is_empty();
            loop {
                let result = s.next(state, input, last);
                let (chunk, used) = match result {
                    Ok(r) => r,
                    Err(e) => {
                        s.finish(state);
                        return Err(e);
                    }
                };
                input = &input[used..];
                let Some(chunk) = chunk else {
                    assert!(input.is_empty(), "no chunk, yet input left");
                    break;
                };
                assert_eq!(chunk.is_first(), chunks == 0);
                assert!(chunk.len() <= PIECE);
                assert!(!chunk.is_empty() || chunk.is_last());
                assert_eq!(chunk.is_text(), text);
                chunks += 1;
                joined.extend_from_slice(chunk.as_bytes());
                if chunk.is_last() {
                    s.finish(state);
                    return Ok((joined, chunks));
                }
            }
            assert!(!last, "the input ended without a last chunk");
        }
    }

    fn text_of(len: usize, rng: &mut Rng) -> Vec<u8> {
        let words = ["hello ", "wörld ", "€uro ", "𝄞 ", "{\"id\":42} "];
        let mut t = Vec::new();
        while t.len() < len {
            t.extend_from_slice(words[rng.below(words.len())].as_bytes());
        }
        t
    }

    #[test]
    fn streamed_messages_inflate_like_whole_ones_with_every_context() {
        let mut rng = Rng(0x1234_5678);
        // (peer window bits, peer resets its context)
        for (bits, reset) in [(15, false), (12, false), (9, false), (15, true), (10, true)] {
            let mut c = Compressor::new(CompressorConfig {
                window_bits: bits,
                no_context_takeover: reset,
                ..CompressorConfig::default()
            });
            let mut streamed = InflateState::new(reset, bits);
            let mut whole = InflateState::new(reset, bits);
            let mut inflater = Inflater::new();
            for round in 0..6 {
                let msg = text_of([10, 300_000, 5_000, 1, 200_000, 70_000][round], &mut rng);
                let payload = compress(&mut c, &msg);
                // Streamed and whole messages alternate on one connection: both see one stream.
                if round % 2 == 0 {
                    let step = [1, 7, 4096, 100_000][rng.below(4)];
                    let (got, chunks) =
                        stream(&mut streamed, &payload, true, u64::MAX, &mut rng, step).unwrap();
                    assert_eq!(got, msg, "bits {bits} reset {reset} round {round}");
                    assert!(
                        chunks >= msg.len() / PIECE,
                        "pieces of at most {PIECE} bytes"
                    );
                    inflater
                        .message(&mut whole, true, &payload, usize::MAX)
                        .unwrap();
                } else {
                    let m = inflater
                        .message(&mut streamed, true, &payload, usize::MAX)
                        .unwrap();
                    assert_eq!(m.as_bytes(), &msg[..]);
                    let (got, _) =
                        stream(&mut whole, &payload, true, u64::MAX, &mut rng, 999).unwrap();
                    assert_eq!(got, msg);
                }
            }
        }
    }

    #[test]
    fn a_streamed_bomb_stops_at_the_limit() {
        let mut c = Compressor::new(CompressorConfig::default());
        let bomb = compress(&mut c, &vec![0u8; 50 << 20]);
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let mut state = InflateState::new(false, 15);
        let mut rng = Rng(7);
        let err = stream(&mut state, &bomb, false, 10 << 20, &mut rng, 1000).unwrap_err();
        assert!(
            matches!(err, ProtocolError::MessageTooLarge { size, .. } if size <= (10 << 20) + PIECE as u64),
            "{err:?}"
        );
        // Exactly at the limit is fine.
        let mut state = InflateState::new(false, 15);
        let (got, _) = stream(&mut state, &bomb, false, 50 << 20, &mut rng, 1 << 20).unwrap();
        assert_eq!(got.len(), 50 << 20);
    }

    #[test]
    fn bad_text_and_bad_data_fail() {
        let mut rng = Rng(9);
        let mut c = Compressor::new(CompressorConfig::default());
        let mut msg = text_of(200_000, &mut rng);
        let at = msg.len() - 10;
        msg[at] = 0xc0;
        let payload = compress(&mut c, &msg);
        let mut state = InflateState::new(false, 15);
        let err = stream(&mut state, &payload, true, u64::MAX, &mut rng, 5000).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
        let mut state = InflateState::new(true, 15);
        let err = stream(&mut state, &[0xff; 64], false, u64::MAX, &mut rng, 10).unwrap_err();
        assert_eq!(err, ProtocolError::Compression);
    }
}
