//! What handlers send and receive: [`Message`] and [`Utf8Bytes`] (RFC 6455 §5.6).

use std::fmt;

use bytes::Bytes;

use crate::protocol::frame::OpCode;

/// A complete WebSocket data message (RFC 6455 §5.6).
///
/// Payloads are reference-counted [`Bytes`]: an inbound message handed to a handler is a view into
/// the buffer the frame was read into (no copy), and an outbound message can be sent to many
/// connections without copying.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; its payload is always valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message from anything that converts into [`Utf8Bytes`] (`&str`, `String`, ...).
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Message::Text(text.into())
    }

    /// A binary message from anything that converts into [`Bytes`].
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Message::Binary(data.into())
    }

    /// The payload bytes, whatever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The payload as `&str` for a text message, `None` for a binary one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The opcode of the frame that carries this message (§5.6): text or binary.
    pub fn opcode(&self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// The payload as [`Bytes`] (a cheap reference-count increment, no copy).
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(t) => t.into_bytes(),
            Message::Binary(b) => b,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(t) => f.debug_tuple("Text").field(&t.as_str()).finish(),
            Message::Binary(b) => f.debug_tuple("Binary").field(&b.len()).finish(),
        }
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::text(s)
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Message::Binary(v.into())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

/// A piece of a streamed message, as `Handler::on_chunk` receives
/// it: the message's kind, its next bytes, and whether they are the first and the last.
///
/// A text message's chunks are each valid UTF-8 on their own (split on code point boundaries,
/// validated as they arrive); a compressed message's chunks are already inflated. The chunks of
/// one message arrive in order, with no other data message between them (control frames may
/// come between, as RFC 6455 §5.4 allows). If the message turns out to be invalid later (bad
/// UTF-8, over the size limit), the connection is closed with its code and the handler sees
/// `on_error` instead of a last chunk: whatever it did with the
/// earlier chunks (a file on disk) it should then undo.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    data: Message,
    first: bool,
    last: bool,
}

impl Chunk {
    /// A chunk of a message: `data`'s kind is the message's kind.
    pub fn new(data: Message, first: bool, last: bool) -> Self {
        Chunk { data, first, last }
    }
    /// This chunk's bytes, as a [`Message`] of the streamed message's kind.
    pub fn data(&self) -> &Message {
        &self.data
    }
    /// This chunk's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_bytes()
    }
    /// This chunk's text, for a text message.
    pub fn as_text(&self) -> Option<&str> {
        self.data.as_text()
    }
    /// Whether the streamed message is text.
    pub fn is_text(&self) -> bool {
        self.data.is_text()
    }
    /// Whether this is the message's first chunk.
    pub fn is_first(&self) -> bool {
        self.first
    }
    /// Whether this is the message's last chunk (it may be empty).
    pub fn is_last(&self) -> bool {
        self.last
    }
    /// Length of this chunk in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Whether this chunk has no bytes (a last chunk can be empty).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The chunk's bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.data.into_bytes()
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("text", &self.is_text())
            .field("len", &self.len())
            .field("first", &self.first)
            .field("last", &self.last)
            .finish()
    }
}

/// Reference-counted bytes that are known to be valid UTF-8.
///
/// The only ways to build one validate the contents (or start from a `str`), so
/// [`Utf8Bytes::as_str`] never needs to check again.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Utf8Bytes(Bytes::new())
    }

    /// A `'static` string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// Wrap bytes after checking they are valid UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// Wrap bytes that the caller has already validated as UTF-8 (the frame reader's incremental
    /// validator). Checked again in debug builds only; `as_str` stays safe regardless.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Every constructor validated (or started from `str`), so this cannot fail. Checking here
        // (SIMD-fast in std) keeps the type free of `unsafe`; "" is the panic-free fallback.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying [`Bytes`] (no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;
    fn try_from(b: Bytes) -> Result<Self, Self::Error> {
        Utf8Bytes::try_from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8bytes_rejects_invalid() {
        assert!(Utf8Bytes::try_from_bytes(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(Utf8Bytes::from("héllo").as_str(), "héllo");
    }

    #[test]
    fn message_accessors() {
        let m = Message::text("hi");
        assert_eq!(m.as_text(), Some("hi"));
        assert_eq!(m.len(), 2);
        let b = Message::binary(vec![1u8, 2, 3]);
        assert!(b.as_text().is_none());
        assert_eq!(b.into_bytes().as_ref(), &[1, 2, 3]);
    }
}
