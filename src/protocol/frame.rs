//! Frame headers (RFC 6455 §5.2): decoding from a read buffer without copying, and encoding with
//! the shortest length form.
//!
//! Every frame header volley writes comes from one encoder, [`FrameHeader::encode`]. Around it
//! are four shapes, each for a reason:
//!
//! - [`Frame`]: a header and a borrowed payload, encoded whole into one buffer
//!   ([`Frame::encode`], [`Frame::encode_into`], [`Frame::encode_to`]). The common case: small
//!   sends, publishes (encoded once and shared), control frames (close, pong, a ping with a
//!   payload), the tests.
//! - A header alone ([`FrameHeader::encode`], e.g. of [`Frame::header`]), queued in front of a
//!   payload that is queued by reference: large sends and fragments, whose payload is already a
//!   `Bytes` that should not be copied.
//! - [`FrameHeader::write_frame`]: the header, then a payload that a closure writes straight into
//!   the buffer, masked in place: for a client that generates payloads (the loadtest) without
//!   building each one elsewhere first. [`Frame`] encodes through it too.
//! - [`empty_control_frame`]: an empty control frame as a compile-time constant, so the
//!   heartbeat's ping is a `static`: no frame is encoded or allocated per ping.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use std::ops::DerefMut;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::error::ProtocolError;
use crate::protocol::mask::apply_mask;
use crate::protocol::message::Message;

/// Longest possible frame header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode (§5.2). Reserved opcodes are rejected while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

impl OpCode {
    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }

    /// The opcode's 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// The opcode for a 4-bit wire value (the high bits of `v` are ignored); reserved values
    /// (3–7, 0xB–0xF) are an error.
    pub fn from_u8(v: u8) -> Result<OpCode, ProtocolError> {
        match v & 0x0F {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            op => Err(ProtocolError::ReservedOpcode(op)),
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// RSV1 (the "compressed" bit of permessage-deflate).
    pub rsv1: bool,
    /// RSV2.
    pub rsv2: bool,
    /// RSV3.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decode a header from the front of `buf`. `Ok(None)`: not enough bytes yet.
    /// `Ok(Some((header, header_len)))`. Errors: reserved opcode, 64-bit length with the high bit.
    ///
    /// Errors are reported as soon as the byte that shows them has arrived (a reserved opcode with
    /// the first byte), even if the rest of the header has not. A length that is not in its
    /// shortest form is accepted (RFC 6455 §5.2 requires senders, not receivers, to minimise it).
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0)?;
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_end) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(None),
            },
            127 => {
                if buf.get(2).is_some_and(|&b| b & 0x80 != 0) {
                    return Err(ProtocolError::InvalidLength);
                }
                match buf.get(2..10) {
                    Some(b) => {
                        let mut be = [0u8; 8];
                        be.copy_from_slice(b);
                        (u64::from_be_bytes(be), 10)
                    }
                    None => return Ok(None),
                }
            }
            n => (u64::from(n), 2),
        };
        let (mask, header_len) = if masked {
            match buf.get(len_end..len_end + 4) {
                Some(&[a, b, c, d]) => (Some([a, b, c, d]), len_end + 4),
                _ => return Ok(None),
            }
        } else {
            (None, len_end)
        };
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }

    /// Encode into `dst`, shortest length form; returns the header length.
    ///
    /// A `payload_len` with its high bit set cannot be represented; it is written with that bit
    /// cleared (no real payload comes near 2^63 bytes).
    pub fn encode(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        dst[0] = u8::from(self.fin) << 7
            | u8::from(self.rsv1) << 6
            | u8::from(self.rsv2) << 5
            | u8::from(self.rsv3) << 4
            | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = match self.payload_len {
            n @ 0..=125 => {
                dst[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                dst[1] = mask_bit | 126;
                dst[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                dst[1] = mask_bit | 127;
                dst[2..10].copy_from_slice(&(n & (u64::MAX >> 1)).to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            dst[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }

    /// Length of the encoded header for a payload of `payload_len` bytes.
    pub fn encoded_len(payload_len: u64, masked: bool) -> usize {
        let len = match payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        if masked {
            len + 4
        } else {
            len
        }
    }
}

impl FrameHeader {
    /// A final, unmasked header with no reserved bits: the common case, adjusted with the
    /// builder methods below (`FrameHeader::new(OpCode::Text, 5).compressed()`).
    pub const fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// This header with FIN cleared: more fragments follow.
    pub const fn not_final(mut self) -> Self {
        self.fin = false;
        self
    }

    /// This header with FIN set as given.
    pub const fn with_fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// This header with RSV1 set: a permessage-deflate compressed message (RFC 7692 §6).
    pub const fn compressed(mut self) -> Self {
        self.rsv1 = true;
        self
    }

    /// This header with a masking key (the client role).
    pub const fn masked(mut self, key: [u8; 4]) -> Self {
        self.mask = Some(key);
        self
    }

    /// Append this header to `out`, then the payload that `fill` appends (exactly
    /// `payload_len` bytes), masked in place if the header has a key: a frame written straight
    /// into a send buffer (a `Vec<u8>`, a `BytesMut`), without building the payload elsewhere.
    pub fn write_frame<B>(&self, out: &mut B, fill: impl FnOnce(&mut B))
    where
        B: BufMut + DerefMut<Target = [u8]>,
    {
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = self.encode(&mut head);
        out.put_slice(&head[..head_len]);
        let start = out.len();
        fill(out);
        debug_assert_eq!(
            (out.len() - start) as u64,
            self.payload_len,
            "payload length differs from the header's"
        );
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }
}

/// An empty final unmasked control frame of `opcode` (2 bytes), computed at compile time:
/// heartbeat pings go out as a `static` without allocating. Equal to
/// `Frame::new(opcode, b"").encode()`.
pub const fn empty_control_frame(opcode: OpCode) -> [u8; 2] {
    [0x80 | opcode.as_u8(), 0]
}

/// One outgoing frame: a header and the payload it describes, built with named constructors
/// (`Frame::text(b"hi")`, `Frame::ping(b"")`, `Frame::binary(p).not_final().masked(key)`) and
/// encoded into one buffer. The usual way to encode a frame; the [module docs](self) list the
/// others and why they exist.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    header: FrameHeader,
    payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// A final, unmasked frame of `opcode` carrying `payload`.
    pub const fn new(opcode: OpCode, payload: &'a [u8]) -> Self {
        Frame {
            header: FrameHeader::new(opcode, payload.len() as u64),
            payload,
        }
    }

    /// A text frame (the payload must be UTF-8 once all fragments are joined).
    pub const fn text(payload: &'a [u8]) -> Self {
        Frame::new(OpCode::Text, payload)
    }

    /// A binary frame.
    pub const fn binary(payload: &'a [u8]) -> Self {
        Frame::new(OpCode::Binary, payload)
    }

    /// A continuation frame (a later fragment of a message).
    pub const fn continuation(payload: &'a [u8]) -> Self {
        Frame::new(OpCode::Continuation, payload)
    }

    /// A ping (payload of at most 125 bytes).
    pub const fn ping(payload: &'a [u8]) -> Self {
        Frame::new(OpCode::Ping, payload)
    }

    /// A pong (payload of at most 125 bytes).
    pub const fn pong(payload: &'a [u8]) -> Self {
        Frame::new(OpCode::Pong, payload)
    }

    /// A close frame carrying an already encoded close payload (see
    /// [`close::encode_payload`](crate::protocol::close::encode_payload)).
    pub const fn close(payload: &'a [u8]) -> Self {
        Frame::new(OpCode::Close, payload)
    }

    /// The single frame carrying a whole message: text or binary as the message is.
    pub fn message(msg: &'a Message) -> Self {
        Frame::new(msg.opcode(), msg.as_bytes())
    }

    /// FIN cleared: more fragments follow.
    pub const fn not_final(mut self) -> Self {
        self.header = self.header.not_final();
        self
    }

    /// FIN set as given (for loops that emit the last fragment differently).
    pub const fn with_fin(mut self, fin: bool) -> Self {
        self.header = self.header.with_fin(fin);
        self
    }

    /// RSV1 set: the payload is a permessage-deflate compressed message.
    pub const fn compressed(mut self) -> Self {
        self.header = self.header.compressed();
        self
    }

    /// Masked with `key` (the client role); the payload is masked while encoding.
    pub const fn masked(mut self, key: [u8; 4]) -> Self {
        self.header = self.header.masked(key);
        self
    }

    /// Length of the encoded frame, header included.
    pub fn encoded_len(&self) -> usize {
        FrameHeader::encoded_len(self.header.payload_len, self.header.mask.is_some())
            + self.payload.len()
    }

    /// The header this frame is sent with.
    pub const fn header(&self) -> FrameHeader {
        self.header
    }

    /// Append the whole frame (header, then the payload, masked if a key is set) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.header
            .write_frame(out, |o| o.extend_from_slice(self.payload));
    }

    /// Append the whole frame to `out` (a worker's frame arena).
    pub fn encode_to(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        self.header
            .write_frame(out, |o| o.extend_from_slice(self.payload));
    }

    /// The whole frame in one allocation.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        // `len == capacity`, so this conversion keeps the allocation.
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mask::apply_mask_bytewise;

    fn header(opcode: OpCode, payload_len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len,
        }
    }

    fn encode_vec(h: &FrameHeader) -> Vec<u8> {
        let mut dst = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut dst);
        dst[..n].to_vec()
    }

    #[test]
    fn round_trips_at_length_boundaries() {
        let cases = [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 32, 10),
            (u64::MAX >> 1, 10),
        ];
        for (len, expected_len) in cases {
            for mask in [None, Some([1, 2, 3, 4])] {
                for opcode in [OpCode::Text, OpCode::Binary, OpCode::Continuation] {
                    let h = FrameHeader {
                        fin: len % 2 == 0,
                        rsv1: true,
                        rsv2: false,
                        rsv3: true,
                        ..header(opcode, len, mask)
                    };
                    let bytes = encode_vec(&h);
                    let hl = expected_len + if mask.is_some() { 4 } else { 0 };
                    assert_eq!(bytes.len(), hl);
                    assert_eq!(FrameHeader::encoded_len(len, mask.is_some()), hl);
                    assert_eq!(FrameHeader::decode(&bytes), Ok(Some((h, hl))));
                    // Trailing payload bytes do not change the result.
                    let mut more = bytes.clone();
                    more.extend_from_slice(&[0xAA; 20]);
                    assert_eq!(FrameHeader::decode(&more), Ok(Some((h, hl))));
                }
            }
        }
    }

    #[test]
    fn every_split_point_is_partial() {
        for len in [0u64, 125, 126, 65535, 65536, 1 << 32] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let bytes = encode_vec(&header(OpCode::Binary, len, mask));
                for k in 0..bytes.len() {
                    assert_eq!(
                        FrameHeader::decode(&bytes[..k]),
                        Ok(None),
                        "len {len} k {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_flag_bits_round_trip() {
        for bits in 0..16u8 {
            let h = FrameHeader {
                fin: bits & 1 != 0,
                rsv1: bits & 2 != 0,
                rsv2: bits & 4 != 0,
                rsv3: bits & 8 != 0,
                ..header(OpCode::Ping, 5, Some([0, 0, 0, 0]))
            };
            let bytes = encode_vec(&h);
            assert_eq!(FrameHeader::decode(&bytes), Ok(Some((h, 6))));
        }
    }

    #[test]
    fn reserved_opcodes_are_rejected_from_the_first_byte() {
        for op in (3..=7).chain(0xB..=0xF) {
            for b0 in [op, 0x80 | op, 0xF0 | op] {
                assert_eq!(
                    FrameHeader::decode(&[b0]),
                    Err(ProtocolError::ReservedOpcode(op))
                );
                assert_eq!(
                    FrameHeader::decode(&[b0, 0x80, 1, 2, 3, 4]),
                    Err(ProtocolError::ReservedOpcode(op))
                );
            }
        }
        for op in [0u8, 1, 2, 8, 9, 10] {
            let opcode = OpCode::from_u8(op).unwrap();
            assert_eq!(opcode.as_u8(), op);
            assert_eq!(opcode.is_control(), op >= 8);
        }
    }

    #[test]
    fn high_bit_length_is_invalid() {
        let mut bytes = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(ProtocolError::InvalidLength)
        );
        // Reported as soon as the first length byte is there.
        assert_eq!(
            FrameHeader::decode(&bytes[..3]),
            Err(ProtocolError::InvalidLength)
        );
        bytes[2] = 0x7F;
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (0x7F00_0000_0000_0000, 14));
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        // 5 in the 16-bit form and in the 64-bit form.
        let h16 = [0x81, 126, 0, 5];
        let (h, n) = FrameHeader::decode(&h16).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
        let h64 = [0x81, 127, 0, 0, 0, 0, 0, 0, 0, 5];
        let (h, n) = FrameHeader::decode(&h64).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 §5.7.
        assert_eq!(
            &Frame::text(b"Hello").encode()[..],
            &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            &Frame::text(b"Hello")
                .masked([0x37, 0xfa, 0x21, 0x3d])
                .encode()[..],
            &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        assert_eq!(
            &Frame::text(b"Hel").not_final().encode()[..],
            &[0x01, 0x03, 0x48, 0x65, 0x6c]
        );
        assert_eq!(
            &Frame::continuation(b"lo").encode()[..],
            &[0x80, 0x02, 0x6c, 0x6f]
        );
        let f = Frame::binary(&[0u8; 256]).encode();
        assert_eq!(&f[..4], &[0x82, 0x7E, 0x01, 0x00]);
        let f = Frame::binary(&[0u8; 65536]).encode();
        assert_eq!(&f[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn empty_control_frames_match_the_encoder() {
        for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
            assert_eq!(
                &empty_control_frame(op)[..],
                &Frame::new(op, b"").encode()[..]
            );
        }
    }

    #[test]
    fn encode_frame_round_trips_with_masking() {
        for len in [0usize, 1, 125, 126, 1000, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let key = [0xA1, 0xB2, 0xC3, 0xD4];
            let frame = Frame::binary(&payload).compressed().masked(key).encode();
            assert_eq!(
                frame.len(),
                FrameHeader::encoded_len(len as u64, true) + len
            );
            let (h, n) = FrameHeader::decode(&frame).unwrap().unwrap();
            assert_eq!(h.mask, Some(key));
            assert!(h.rsv1 && h.fin);
            assert_eq!(h.payload_len, len as u64);
            let mut body = frame[n..].to_vec();
            apply_mask_bytewise(&mut body, key, 0);
            assert_eq!(body, payload);
        }
    }
}
