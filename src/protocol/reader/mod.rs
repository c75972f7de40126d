//! Reading messages out of frames: RFC 6455 §5 validation, fragment reassembly, incremental UTF-8.
//!
//! [`Reader::read`] works on the connection's read buffer in place: a payload is unmasked where it
//! lies and split off as [`Bytes`] that share the buffer's allocation, so a single-frame message
//! reaches the handler without a copy. Only fragmented messages are copied, into a buffer the
//! reader holds just until the last fragment arrives. Every limit is checked from the frame header,
//! before any payload is buffered, and text is validated as it arrives (RFC 6455 §8.1 "fail fast").

use bytes::{Buf, Bytes, BytesMut};

use crate::protocol::close;
use crate::protocol::close::CloseFrame;
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::{FrameHeader, OpCode};
use crate::protocol::mask::apply_mask;
use crate::protocol::message::{Chunk, Message, Utf8Bytes};
use crate::protocol::utf8::Utf8Validator;

mod stream;

pub use stream::Streaming;
use stream::{Next, Streamed};

/// Which side of the connection we are: servers require masked frames, clients refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We are the server: every received frame must be masked.
    Server,
    /// We are the client: no received frame may be masked.
    Client,
}

/// Limits and negotiated options for reading, shared by all connections of a worker.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Our role.
    pub role: Role,
    /// Largest accepted frame payload (else `FrameTooLarge`, close 1009).
    pub max_frame_size: usize,
    /// Largest accepted message, all fragments together (else `MessageTooLarge`, close 1009).
    pub max_message_size: usize,
}

/// What the reader produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete data message (text already validated as UTF-8).
    Message(Message),
    /// A complete message whose first frame had RSV1 (permessage-deflate): `payload` is the raw
    /// compressed data of all fragments, not yet inflated; the caller inflates and validates text.
    Compressed {
        /// Whether the message is text.
        text: bool,
        /// The compressed bytes.
        payload: Bytes,
    },
    /// The next piece of a streamed, uncompressed message (see [`Streaming`]); text chunks are
    /// validated and end on code point boundaries.
    Chunk(Chunk),
    /// The next piece of a streamed compressed message: raw compressed bytes, in order; the
    /// caller inflates (the sync tail is not included) and validates text.
    CompressedChunk {
        /// Whether the message is text.
        text: bool,
        /// Whether this is the message's first piece.
        first: bool,
        /// Whether this is the message's last piece.
        last: bool,
        /// The compressed bytes.
        payload: Bytes,
    },
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A valid close frame: `None` when it carried no code.
    Close(Option<CloseFrame>),
}

/// The fragmented data message being reassembled, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Open {
    /// Between messages.
    #[default]
    None,
    /// A text message (validated fragment by fragment).
    Text,
    /// A binary message.
    Binary,
    /// A permessage-deflate message (RSV1 on its first frame): raw bytes, validated after inflating.
    Compressed {
        /// Whether the message is text.
        text: bool,
    },
}

/// What the reader holds of the data message in progress.
#[derive(Debug)]
enum Held {
    /// Payload received so far of the fragmented message being reassembled; empty and
    /// unallocated otherwise.
    Fragments(Vec<u8>),
    /// Where a streamed message is (it holds none of its payload).
    Stream(Box<Streamed>),
}

impl Default for Held {
    fn default() -> Self {
        Held::Fragments(Vec::new())
    }
}

/// Per-connection reading state: kept small, since every connection holds one.
///
/// 40 bytes on 64-bit targets, and no heap memory between messages: the reassembly buffer is
/// allocated when a fragmented message starts and handed over (as the message's [`Bytes`]) when it
/// ends; a streamed message holds a few words while it lasts.
#[derive(Debug, Default)]
pub struct Reader {
    /// The fragments of the message being reassembled, or the state of a streamed one.
    held: Held,
    /// Payload bytes of the frame at the front of the read buffer that are already unmasked and
    /// fed to `utf8` while the rest of the frame is still to come (text frames only; 0 otherwise).
    checked: usize,
    /// UTF-8 state of the text message being read (across fragments and partial frames).
    utf8: Utf8Validator,
    /// The fragmented message being reassembled.
    open: Open,
    /// Whether permessage-deflate was negotiated (RSV1 allowed on a message's first frame).
    compression: bool,
}

impl Reader {
    /// A reader at the start of a connection.
    pub fn new() -> Self {
        Reader::default()
    }

    /// Whether RSV1 (permessage-deflate) is accepted on data frames.
    pub fn set_compression(&mut self, on: bool) {
        self.compression = on;
    }

    /// Whether no fragmented message is open (the reader then holds no heap memory).
    pub fn is_idle(&self) -> bool {
        self.open == Open::None
    }

    /// Consume frames from the front of `buf` until one event is complete, unmasking payloads in
    /// place and splitting them off without copying. `Ok(None)`: `buf` holds no further complete
    /// event (any partial frame stays in `buf`).
    ///
    /// Semantics, in detail:
    ///
    /// - Call it in a loop after appending newly received bytes to `buf`, until it returns
    ///   `Ok(None)` or an error. Each `Ok(Some(_))` consumed exactly the frames that made the event.
    /// - `Ok(None)` leaves at most one partial frame at the front of `buf`, plus, for a fragmented
    ///   message, its earlier fragments copied inside the reader. Keep the partial bytes *as they
    ///   are* and append to them: the prefix of a partial text frame may already be unmasked and
    ///   validated (so invalid text fails before the frame is complete), and the reader remembers
    ///   how far it got. Moving the bytes to another buffer is fine; changing them is not.
    /// - Limits (`max_frame_size`, `max_message_size`) and all header rules are checked as soon as
    ///   a frame's header is in `buf`, before its payload is waited for.
    /// - On `Err`, the connection must be failed (close with [`ProtocolError::close_code`]); the
    ///   reader has released its memory, and further calls give unspecified (but panic-free)
    ///   results.
    pub fn read(
        &mut self,
        buf: &mut BytesMut,
        cfg: &ReaderConfig,
    ) -> Result<Option<Event>, ProtocolError> {
        self.read_streaming(buf, cfg, None)
    }

    /// [`Reader::read`], streaming the messages that `streaming` selects: they come out as
    /// [`Event::Chunk`]s (or [`Event::CompressedChunk`]s) as their bytes arrive, each frame's
    /// payload split off the front of `buf` as it comes, so `buf` never holds more than one
    /// read's worth of them. A message that began streaming goes on streaming to its end even
    /// if `streaming` changes.
    pub fn read_streaming(
        &mut self,
        buf: &mut BytesMut,
        cfg: &ReaderConfig,
        streaming: Option<Streaming>,
    ) -> Result<Option<Event>, ProtocolError> {
        let result = self.read_frames(buf, cfg, streaming);
        if result.is_err() {
            *self = Reader {
                compression: self.compression,
                ..Reader::default()
            };
        }
        result
    }

    /// The whole length (header and payload) of the frame that `buf` begins with, once its
    /// header has arrived: how much room to reserve for the rest of a frame that is still
    /// arriving, so it is assembled with one copy and no reallocation. `None` while the header
    /// is incomplete or invalid (reading reports the error).
    pub fn pending_frame_len(buf: &[u8]) -> Option<usize> {
        let (header, header_len) = FrameHeader::decode(buf).ok()??;
        usize::try_from(header.payload_len)
            .ok()?
            .checked_add(header_len)
    }

    fn read_frames(
        &mut self,
        buf: &mut BytesMut,
        cfg: &ReaderConfig,
        streaming: Option<Streaming>,
    ) -> Result<Option<Event>, ProtocolError> {
        loop {
            match self.stream_payload(buf)? {
                Next::Header => {}
                Next::Wait => return Ok(None),
                Next::Again => continue,
                Next::Emit(event) => return Ok(Some(event)),
            }
            let Some((header, header_len)) = FrameHeader::decode(buf)? else {
                return Ok(None);
            };
            let streamed = self.streams(&header, streaming);
            let max = streamed.then(|| streaming.map_or(u64::MAX, |s| s.max_size));
            let payload_len = self.check_header(&header, cfg, max)?;
            if streamed {
                buf.advance(header_len);
                if let Some(event) = self.start_stream_frame(&header, payload_len) {
                    return Ok(Some(event));
                }
                continue;
            }
            let frame_len = header_len
                .checked_add(payload_len)
                .ok_or_else(|| too_large(header.payload_len, cfg))?;
            let complete = buf.len() >= frame_len;
            let is_text = self.is_text_frame(&header);
            if !complete && !is_text {
                return Ok(None);
            }
            // A single-frame text message that arrived whole is validated in one pass at the end
            // (by `complete_frame`); any other text goes through the incremental validator.
            let whole_text =
                complete && self.checked == 0 && header.fin && header.opcode == OpCode::Text;
            let feed_utf8 = is_text && !whole_text;

            // Unmask (and, for text, validate) the payload bytes not processed yet: the whole
            // payload, or what has arrived of a text frame. `min`s keep this in bounds even if the
            // caller changed `buf` against the contract.
            let end = buf.len().min(frame_len);
            let start = header_len.saturating_add(self.checked).min(end);
            let fresh = &mut buf[start..end];
            if let Some(key) = header.mask {
                apply_mask(fresh, key, (start - header_len) & 3);
            }
            if feed_utf8 {
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            if !complete {
                self.checked = end - header_len;
                return Ok(None);
            }
            self.checked = 0;

            buf.advance(header_len);
            let payload = buf.split_to(payload_len);
            if let Some(event) = self.complete_frame(&header, payload, feed_utf8, cfg.role)? {
                return Ok(Some(event));
            }
        }
    }

    /// All checks that need only the header (and the reader's state); returns the payload length.
    /// A streamed frame (`streamed_max`: the stream's size limit) is bounded by that limit
    /// alone, not by `max_frame_size` and `max_message_size`.
    fn check_header(
        &self,
        header: &FrameHeader,
        cfg: &ReaderConfig,
        streamed_max: Option<u64>,
    ) -> Result<usize, ProtocolError> {
        match (cfg.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let control = header.opcode.is_control();
        if header.rsv2
            || header.rsv3
            || (header.rsv1
                && (!self.compression || control || header.opcode == OpCode::Continuation))
        {
            return Err(ProtocolError::ReservedBits);
        }
        if control {
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
        } else {
            match (header.opcode, self.open) {
                (OpCode::Continuation, Open::None) => {
                    return Err(ProtocolError::UnexpectedContinuation)
                }
                (OpCode::Text | OpCode::Binary, open) if open != Open::None => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
        }
        if let Some(max) = streamed_max {
            let size = self.message_so_far().saturating_add(header.payload_len);
            if size > max {
                return Err(ProtocolError::MessageTooLarge {
                    size,
                    max: usize::try_from(max).unwrap_or(usize::MAX),
                });
            }
            return usize::try_from(header.payload_len)
                .map_err(|_| too_large(header.payload_len, cfg));
        }
        if header.payload_len > to_u64(cfg.max_frame_size) {
            return Err(too_large(header.payload_len, cfg));
        }
        if !control {
            let size = self.message_so_far().saturating_add(header.payload_len);
            if size > to_u64(cfg.max_message_size) {
                return Err(ProtocolError::MessageTooLarge {
                    size,
                    max: cfg.max_message_size,
                });
            }
        }
        usize::try_from(header.payload_len).map_err(|_| too_large(header.payload_len, cfg))
    }

    /// Payload bytes of the data message in progress so far (0 between messages).
    fn message_so_far(&self) -> u64 {
        match &self.held {
            Held::Fragments(v) => to_u64(v.len()),
            Held::Stream(s) => s.total,
        }
    }

    /// Whether the frame's payload is (uncompressed) text, validated as it arrives.
    fn is_text_frame(&self, header: &FrameHeader) -> bool {
        match header.opcode {
            OpCode::Text => !header.rsv1,
            OpCode::Continuation => self.open == Open::Text,
            _ => false,
        }
    }

    /// A whole frame, unmasked (and its text fed to the validator if `fed_utf8`): the event it
    /// completes, if any.
    fn complete_frame(
        &mut self,
        header: &FrameHeader,
        payload: BytesMut,
        fed_utf8: bool,
        role: Role,
    ) -> Result<Option<Event>, ProtocolError> {
        let text = header.opcode == OpCode::Text;
        let event = match header.opcode {
            OpCode::Ping => Event::Ping(payload.freeze()),
            OpCode::Pong => Event::Pong(payload.freeze()),
            OpCode::Close => Event::Close(close::parse_payload(&payload, role == Role::Client)?),
            OpCode::Text | OpCode::Binary if header.fin => {
                // A single-frame message: the payload leaves without a copy.
                let payload = payload.freeze();
                if header.rsv1 {
                    Event::Compressed { text, payload }
                } else if text && fed_utf8 {
                    self.finish_text(payload)?
                } else if text {
                    let text = Utf8Bytes::try_from_bytes(payload)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                    Event::Message(Message::Text(text))
                } else {
                    Event::Message(Message::Binary(payload))
                }
            }
            OpCode::Text | OpCode::Binary => {
                self.open = match (header.rsv1, text) {
                    (true, text) => Open::Compressed { text },
                    (false, true) => Open::Text,
                    (false, false) => Open::Binary,
                };
                self.held = Held::Fragments(payload.to_vec());
                return Ok(None);
            }
            OpCode::Continuation => {
                // (A streamed message never gets here: `read_frames` consumes its frames.)
                let Held::Fragments(fragments) = &mut self.held else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                fragments.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                // Hand the buffer over: the reader is left with no heap memory.
                let payload = match std::mem::take(&mut self.held) {
                    Held::Fragments(fragments) => Bytes::from(fragments),
                    Held::Stream(_) => return Err(ProtocolError::UnexpectedContinuation),
                };
                match std::mem::take(&mut self.open) {
                    Open::Text => self.finish_text(payload)?,
                    Open::Binary => Event::Message(Message::Binary(payload)),
                    Open::Compressed { text } => Event::Compressed { text, payload },
                    // `check_header` rejected a continuation with nothing open.
                    Open::None => return Err(ProtocolError::UnexpectedContinuation),
                }
            }
        };
        Ok(Some(event))
    }

    /// The last frame of a text message arrived and all of it went through the validator.
    fn finish_text(&mut self, payload: Bytes) -> Result<Event, ProtocolError> {
        self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(Event::Message(Message::Text(Utf8Bytes::from_validated(
            payload,
        ))))
    }
}

/// `n` as `u64` (lossless on every target Rust supports; saturating for form's sake).
fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn too_large(size: u64, cfg: &ReaderConfig) -> ProtocolError {
    ProtocolError::FrameTooLarge {
        size,
        max: cfg.max_frame_size,
    }
}

#[cfg(test)]
mod tests;
