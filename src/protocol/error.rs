//! Violations of the protocol, each mapped to its answer in one place:
//! [`ProtocolError::close_code`] for frames, [`HandshakeError::status`] for the upgrade request.

use std::fmt;

use crate::protocol::close::CloseCode;

/// A violation of RFC 6455 (or RFC 7692) by the peer, detected while reading frames.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A client frame without a mask (§5.1).
    UnmaskedFrame,
    /// A server frame with a mask (§5.1; seen only by clients such as the loadtest).
    MaskedFrame,
    /// RSV1/2/3 set without a negotiated extension that defines it (§5.2), or RSV1 on a control
    /// frame or a continuation frame (RFC 7692 §6).
    ReservedBits,
    /// An opcode reserved for future use (§5.2).
    ReservedOpcode(u8),
    /// A 64-bit payload length with its most significant bit set (§5.2).
    InvalidLength,
    /// A control frame longer than 125 bytes (§5.5).
    ControlFrameTooLong(u64),
    /// A control frame without FIN (§5.5).
    FragmentedControlFrame,
    /// A continuation frame with no fragmented message to continue (§5.4).
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is still open (§5.4).
    ExpectedContinuation,
    /// A text message, or a close reason, that is not valid UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame with a 1-byte payload (§5.5.1).
    InvalidClosePayload,
    /// A close frame carrying a code that may not be sent (§7.4).
    InvalidCloseCode(u16),
    /// A frame longer than `Config::max_frame_size`.
    FrameTooLarge {
        /// Declared payload length.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message (all fragments, or inflated size) longer than `Config::max_message_size`.
    MessageTooLarge {
        /// Size reached when the limit was hit.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The compressed payload could not be inflated (RFC 7692).
    Compression,
}

impl ProtocolError {
    /// The close code this violation is answered with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::TOO_BIG
            }
            _ => CloseCode::PROTOCOL,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame is masked"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::InvalidLength => f.write_str("payload length has its high bit set"),
            ProtocolError::ControlFrameTooLong(n) => {
                write!(f, "control frame of {n} bytes (max 125)")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with nothing to continue")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidClosePayload => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the limit of {max}")
            }
            ProtocolError::MessageTooLarge { size, max } => {
                write!(f, "message of {size}+ bytes exceeds the limit of {max}")
            }
            ProtocolError::Compression => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why an HTTP upgrade request was refused (RFC 6455 §4.2.1), mapped to a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request is not valid HTTP/1.1 (400).
    Malformed(&'static str),
    /// The request head exceeds `Config::max_handshake_bytes` or has too many headers (431).
    HeadersTooLarge,
    /// An upgrade request with a method other than GET (405).
    MethodNotAllowed,
    /// An upgrade request over HTTP/1.0 (400).
    UnsupportedHttpVersion,
    /// `Upgrade`/`Connection` headers do not ask for a WebSocket upgrade (400).
    NotWebSocket,
    /// `Sec-WebSocket-Version` missing or not 13 (426 with `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing or not 16 base64-encoded bytes (400).
    InvalidKey,
    /// A client-side check: the server's answer was not a valid 101 (status given).
    BadResponse(u16),
    /// A client-side check: `Sec-WebSocket-Accept` did not match the key.
    BadAccept,
}

impl HandshakeError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadersTooLarge => 431,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed(what) => write!(f, "malformed request: {what}"),
            HandshakeError::HeadersTooLarge => f.write_str("request headers too large"),
            HandshakeError::MethodNotAllowed => f.write_str("upgrade requires GET"),
            HandshakeError::UnsupportedHttpVersion => f.write_str("upgrade requires HTTP/1.1"),
            HandshakeError::NotWebSocket => f.write_str("not a websocket upgrade"),
            HandshakeError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version must be 13"),
            HandshakeError::InvalidKey => f.write_str("invalid Sec-WebSocket-Key"),
            HandshakeError::BadResponse(s) => write!(f, "server answered {s}, not 101"),
            HandshakeError::BadAccept => f.write_str("Sec-WebSocket-Accept mismatch"),
        }
    }
}

impl std::error::Error for HandshakeError {}
