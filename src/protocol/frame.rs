//! Frame headers (RFC 6455 §5.2): decoding from a read buffer without copying, and encoding with
//! the shortest length form. HELPER-A: implement.

use bytes::Bytes;

use crate::error::ProtocolError;

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
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let _ = buf;
        todo!()
    }

    /// Encode into `dst`, shortest length form; returns the header length.
    pub fn encode(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let _ = dst;
        todo!()
    }
}

/// One complete frame (header + payload) in one allocation; the payload is masked with `mask` if
/// given (client role).
pub fn encode_frame(opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let _ = (opcode, fin, rsv1, payload, mask);
    todo!()
}
