//! Streaming receive (`Reader::read_streaming`): which messages stream, and how a streamed
//! message's frames turn into chunks as their bytes arrive, none of its payload held between
//! reads. Part of [`Reader`]; the frame rules and limits stay in the parent module.

use bytes::{Bytes, BytesMut};

use super::{to_u64, Event, Held, Open, Reader};
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::{FrameHeader, OpCode};
use crate::protocol::mask::apply_mask;
use crate::protocol::message::{Chunk, Message, Utf8Bytes};

/// Which messages a connection receives in pieces, as they arrive, instead of whole
/// (`Handler::on_chunk` instead of `on_message`): set for every connection with
/// `Config::streaming` or for one with `Context::set_streaming`.
///
/// A message is streamed once it is known to be larger than [`over`](Streaming::over) bytes on
/// the wire: from its first frame's header, or when a fragment takes it over (the fragments held
/// until then are its first chunk). Smaller messages still arrive whole. A streamed message is
/// bounded by [`max_size`](Streaming::max_size) instead of `max_message_size` and
/// `max_frame_size`: its frames are never held whole, so memory is bounded by the read buffer
/// whatever the message's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Streaming {
    /// Messages larger than this many bytes are streamed (0: every message).
    pub over: usize,
    /// The most bytes one streamed message may carry (inflated, when compressed); more fails
    /// the connection with 1009 Message Too Big. Default: unlimited (`u64::MAX`).
    pub max_size: u64,
}

impl Streaming {
    /// Stream messages larger than `bytes`, of any total size.
    pub fn over(bytes: usize) -> Self {
        Streaming {
            over: bytes,
            max_size: u64::MAX,
        }
    }

    /// Limit a streamed message to `bytes` in all (inflated, when compressed).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }
}

/// The state of a message being streamed.
#[derive(Debug)]
pub(super) struct Streamed {
    /// Payload bytes of the current frame still to come.
    pub(super) rest: u64,
    /// The current frame's masking key.
    mask: Option<[u8; 4]>,
    /// The position in the key of the next payload byte.
    mask_at: usize,
    /// Whether the current frame is the message's last.
    fin: bool,
    /// Whether the message is text.
    text: bool,
    /// Whether the message is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Payload bytes of the message announced so far (wire size).
    pub(super) total: u64,
    /// Whether no chunk has been produced yet.
    first: bool,
}

/// What the front of the buffer holds for a streamed message.
pub(super) enum Next {
    /// No streamed payload is due: a frame header comes next.
    Header,
    /// The rest of a streamed frame's payload has not arrived.
    Wait,
    /// Payload bytes were taken, making no chunk yet (a split code point): look again.
    Again,
    /// The next chunk.
    Emit(Event),
}

impl Reader {
    /// The next bytes of a streamed frame's payload, if one is under way: unmasked where they
    /// lie and split off `buf` as a chunk.
    pub(super) fn stream_payload(&mut self, buf: &mut BytesMut) -> Result<Next, ProtocolError> {
        let Held::Stream(s) = &mut self.held else {
            return Ok(Next::Header);
        };
        if s.rest == 0 {
            return Ok(Next::Header);
        }
        let n = buf.len().min(usize::try_from(s.rest).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(Next::Wait);
        }
        let mut fresh = buf.split_to(n);
        if let Some(key) = s.mask {
            apply_mask(&mut fresh, key, s.mask_at);
        }
        s.mask_at = (s.mask_at + n) & 3;
        s.rest -= n as u64;
        let last = s.rest == 0 && s.fin;
        Ok(match self.stream_chunk(fresh, last)? {
            Some(event) => Next::Emit(event),
            None => Next::Again,
        })
    }

    /// Whether this frame's payload is streamed: it belongs to a message already streaming, or
    /// it is a data frame that takes its message over `streaming.over`.
    pub(super) fn streams(&self, header: &FrameHeader, streaming: Option<Streaming>) -> bool {
        if header.opcode.is_control() {
            return false;
        }
        if matches!(self.held, Held::Stream(_)) {
            return true;
        }
        streaming.is_some_and(|s| {
            self.message_so_far().saturating_add(header.payload_len) > to_u64(s.over)
        })
    }

    /// A streamed frame's header has been consumed: start (or go on with) the stream. Returns
    /// a chunk when there is one to hand out at once: the fragments held before the message
    /// went over the threshold, or the empty last chunk of an empty final frame.
    pub(super) fn start_stream_frame(
        &mut self,
        header: &FrameHeader,
        payload_len: usize,
    ) -> Option<Event> {
        let held = match &mut self.held {
            Held::Stream(s) => {
                s.rest = to_u64(payload_len);
                s.mask = header.mask;
                s.mask_at = 0;
                s.fin = header.fin;
                s.total = s.total.saturating_add(to_u64(payload_len));
                Vec::new()
            }
            Held::Fragments(fragments) => {
                let held = std::mem::take(fragments);
                let (text, compressed) = match (header.opcode, self.open) {
                    (OpCode::Continuation, Open::Compressed { text }) => (text, true),
                    (OpCode::Continuation, open) => (open == Open::Text, false),
                    (opcode, _) => (opcode == OpCode::Text, header.rsv1),
                };
                self.open = match (compressed, text) {
                    (true, text) => Open::Compressed { text },
                    (false, true) => Open::Text,
                    (false, false) => Open::Binary,
                };
                self.held = Held::Stream(Box::new(Streamed {
                    rest: to_u64(payload_len),
                    mask: header.mask,
                    mask_at: 0,
                    fin: header.fin,
                    text,
                    compressed,
                    total: to_u64(held.len()).saturating_add(to_u64(payload_len)),
                    first: true,
                }));
                held
            }
        };
        let last = payload_len == 0 && header.fin;
        if held.is_empty() && !last {
            return None;
        }
        // The fragments held so far: text among them was validated as it came, and an
        // incomplete code point at their end stays in the validator for the next chunk.
        let mut held = BytesMut::from(Bytes::from(held));
        let complete = held.len() - self.held_back_text();
        held.truncate(complete);
        // Cannot fail: held text was validated, and `last` chunks are checked in `stream_chunk`.
        self.stream_chunk_validated(held, last).ok().flatten()
    }

    /// Bytes of an incomplete code point the validator holds for an uncompressed text stream.
    fn held_back_text(&self) -> usize {
        match self.open {
            Open::Text => self.utf8.held_back(),
            _ => 0,
        }
    }

    /// Fresh (unmasked) payload bytes of a streamed message: the event they make, if any.
    fn stream_chunk(
        &mut self,
        fresh: BytesMut,
        last: bool,
    ) -> Result<Option<Event>, ProtocolError> {
        let data = if self.open == Open::Text {
            self.utf8
                .complete_text(fresh)
                .map_err(|_| ProtocolError::InvalidUtf8)?
        } else {
            fresh
        };
        self.stream_chunk_validated(data, last)
    }

    /// Bytes ready to leave as the stream's next chunk (text already validated and cut on a
    /// code point boundary); an empty chunk leaves only as the last one.
    fn stream_chunk_validated(
        &mut self,
        data: BytesMut,
        last: bool,
    ) -> Result<Option<Event>, ProtocolError> {
        let Held::Stream(s) = &mut self.held else {
            return Ok(None);
        };
        if data.is_empty() && !last {
            return Ok(None);
        }
        let first = std::mem::replace(&mut s.first, false);
        let (text, compressed) = (s.text, s.compressed);
        if last {
            self.held = Held::default();
            self.open = Open::None;
        }
        let data = data.freeze();
        let event = if compressed {
            Event::CompressedChunk {
                text,
                first,
                last,
                payload: data,
            }
        } else if text {
            if last {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Event::Chunk(Chunk::new(
                Message::Text(Utf8Bytes::from_validated(data)),
                first,
                last,
            ))
        } else {
            Event::Chunk(Chunk::new(Message::Binary(data), first, last))
        };
        Ok(Some(event))
    }
}
