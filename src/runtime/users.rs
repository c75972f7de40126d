//! Users: a connection tied to a user id ([`Context::set_user`](crate::Context::set_user)) is
//! reached by user, on every node: `ServerHandle::send_to_user` and `disconnect_user`.
//!
//! Built on topics, so it crosses nodes through the bridge like any publish: every connection of
//! a user subscribes to two internal topics, the user's messages and the user's disconnects.
//! A publish to the second closes its subscribers (with the code and reason it carries, as a
//! close frame's payload) instead of sending to them. Internal topic names start with a NUL
//! byte, which no application topic is expected to use; listings of topics leave them out.

use crate::protocol::close::{self, CloseCode, CloseFrame};

/// The first byte of every internal topic name.
pub(crate) const INTERNAL: char = '\0';
/// Messages to a user's connections.
const MESSAGES: &str = "\0user/";
/// Disconnects of a user's connections.
const DISCONNECTS: &str = "\0kick/";

/// The topic of a user's messages.
pub(crate) fn messages_topic(user: &str) -> String {
    format!("{MESSAGES}{user}")
}

/// The topic of a user's disconnects.
pub(crate) fn disconnects_topic(user: &str) -> String {
    format!("{DISCONNECTS}{user}")
}

/// Whether `topic` carries disconnects (its subscribers are closed, not sent to).
#[inline]
pub(crate) fn is_disconnect(topic: &str) -> bool {
    topic.starts_with(DISCONNECTS)
}

/// Whether `topic` is one of volley's own (left out of topic listings).
#[inline]
pub(crate) fn is_internal(topic: &str) -> bool {
    topic.starts_with(INTERNAL)
}

/// A disconnect's payload: a close frame's (code, then reason).
pub(crate) fn encode_disconnect(code: CloseCode, reason: &str) -> bytes::Bytes {
    close::encode_payload(code, reason)
}

/// The close a disconnect asks for; 1008 (policy) if its payload is not a valid close payload
/// (it may come from another node).
pub(crate) fn decode_disconnect(payload: &[u8]) -> CloseFrame {
    match close::parse_payload(payload, true) {
        Ok(Some(f)) => f,
        _ => CloseFrame::new(CloseCode::POLICY, "disconnected"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_are_apart_from_application_topics() {
        assert!(is_disconnect(&disconnects_topic("ann")));
        assert!(!is_disconnect(&messages_topic("ann")));
        assert!(is_internal(&messages_topic("ann")) && is_internal(&disconnects_topic("ann")));
        assert!(!is_internal("room.ann") && !is_disconnect("kick/ann"));
    }

    #[test]
    fn a_disconnect_carries_its_close_code_and_reason() {
        let f = decode_disconnect(&encode_disconnect(CloseCode(4003), "banned"));
        assert_eq!((f.code, f.reason.as_str()), (CloseCode(4003), "banned"));
        let f = decode_disconnect(b"x");
        assert_eq!(f.code, CloseCode::POLICY);
    }
}
