//! Reading messages out of frames: RFC 6455 §5 validation, fragment reassembly, incremental UTF-8.
//! HELPER-A: implement.

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::message::{CloseFrame, Message};

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
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A valid close frame: `None` when it carried no code.
    Close(Option<CloseFrame>),
}

/// Per-connection reading state: kept small, since every connection holds one.
#[derive(Debug, Default)]
pub struct Reader {}

impl Reader {
    /// A reader at the start of a connection.
    pub fn new() -> Self {
        todo!()
    }

    /// Whether RSV1 (permessage-deflate) is accepted on data frames.
    pub fn set_compression(&mut self, on: bool) {
        let _ = on;
        todo!()
    }

    /// Consume frames from the front of `buf` until one event is complete, unmasking payloads in
    /// place and splitting them off without copying. `Ok(None)`: `buf` holds no further complete
    /// event (any partial frame stays in `buf`).
    pub fn read(&mut self, buf: &mut BytesMut, cfg: &ReaderConfig) -> Result<Option<Event>, ProtocolError> {
        let _ = (buf, cfg);
        todo!()
    }
}
