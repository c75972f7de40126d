//! The chat's wire protocol: JSON text messages with a `type` field, in both directions, and the
//! rules every client message must pass before it touches shared state.
//!
//! Part of the chat example (`cargo run --release --features metrics --example chat`); see examples/README.md for
//! the whole list of messages with an example of each.

use serde::{Deserialize, Serialize};
use volley::Message;

/// Longest nickname, in characters.
pub const MAX_NICK: usize = 24;
/// Longest room name, in characters.
pub const MAX_ROOM: usize = 32;
/// Longest chat or private message, in characters.
pub const MAX_TEXT: usize = 2000;
/// Largest client message the chat parses, in bytes; a bigger one is answered with a
/// `too_large` error. The server's own limit (`Config::max_message_size`, 16 KiB in main.rs) sits
/// above it: past that, volley itself closes the connection with 1009 before the chat sees it.
pub const MAX_INPUT: usize = 8 * 1024;

/// A message from a client, already parsed. Each variant documents its JSON form.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// `{"type":"nick","nick":"ada"}`: choose a nickname (unique, case-insensitively).
    Nick { nick: String },
    /// `{"type":"join","room":"rust"}`: enter a room (leaving the current one).
    Join { room: String },
    /// `{"type":"leave"}`: leave the current room.
    Leave,
    /// `{"type":"rooms"}`: ask for the room list.
    Rooms,
    /// `{"type":"message","text":"hi"}`: say something in the current room.
    Message { text: String },
    /// `{"type":"private","to":"bob","text":"psst"}`: a private message to one user.
    Private { to: String, text: String },
    /// `{"type":"typing","active":true}`: started (or stopped) typing in the current room.
    Typing {
        #[serde(default = "yes")]
        active: bool,
    },
}

fn yes() -> bool {
    true
}

/// Every `type` a client may send, to tell an unknown type from a malformed known one.
const CLIENT_TYPES: [&str; 7] = [
    "nick", "join", "leave", "rooms", "message", "private", "typing",
];

/// Why a client message was refused: sent back as `{"type":"error","code":..,"text":..}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    /// Machine-readable: `bad_json`, `bad_request`, `unknown_type`, `too_large`, `binary`,
    /// `bad_nick`, `nick_taken`, `bad_room`, `too_many_rooms`, `bad_text`, `not_in_room`,
    /// `no_such_user`, `rate_limited`.
    pub code: &'static str,
    /// For people.
    pub text: String,
}

impl ChatError {
    /// An error with this code and text.
    pub fn new(code: &'static str, text: impl Into<String>) -> Self {
        ChatError {
            code,
            text: text.into(),
        }
    }
}

/// Parse one text message from a client: size, JSON, `type`, then the variant's fields.
pub fn parse(text: &str) -> Result<ClientMsg, ChatError> {
    if text.len() > MAX_INPUT {
        let msg = format!("message of {} bytes; the limit is {MAX_INPUT}", text.len());
        return Err(ChatError::new("too_large", msg));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ChatError::new("bad_json", format!("not valid JSON: {e}")))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        let msg = "expected a JSON object with a string \"type\" field";
        return Err(ChatError::new("bad_request", msg));
    };
    if !CLIENT_TYPES.contains(&kind) {
        let msg = format!("unknown message type {kind:?}");
        return Err(ChatError::new("unknown_type", msg));
    }
    let kind = kind.to_string();
    serde_json::from_value(value)
        .map_err(|e| ChatError::new("bad_request", format!("bad {kind:?} message: {e}")))
}

/// Letters, digits and `-_.`: names that read well and cannot imitate each other with spaces.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A valid nickname (surrounding spaces removed), or why not.
pub fn check_nick(nick: &str) -> Result<&str, ChatError> {
    let nick = nick.trim();
    let len = nick.chars().count();
    if len == 0 || len > MAX_NICK {
        let msg = format!("a nickname has 1 to {MAX_NICK} characters");
        return Err(ChatError::new("bad_nick", msg));
    }
    if !nick.chars().all(is_name_char) {
        let msg = "a nickname may hold letters, digits, '-', '_' and '.'";
        return Err(ChatError::new("bad_nick", msg));
    }
    Ok(nick)
}

/// A valid room name, lowercased (rooms are case-insensitive), or why not.
pub fn check_room(room: &str) -> Result<String, ChatError> {
    let room = room.trim().trim_start_matches('#');
    let len = room.chars().count();
    if len == 0 || len > MAX_ROOM || !room.chars().all(is_name_char) {
        let msg = format!("a room name has 1 to {MAX_ROOM} letters, digits, '-', '_' or '.'");
        return Err(ChatError::new("bad_room", msg));
    }
    Ok(room.to_lowercase())
}

/// A valid message text (kept as typed), or why not.
pub fn check_text(text: &str) -> Result<&str, ChatError> {
    if text.trim().is_empty() {
        return Err(ChatError::new("bad_text", "empty message"));
    }
    let len = text.chars().count();
    if len > MAX_TEXT {
        let msg = format!("message of {len} characters; the limit is {MAX_TEXT}");
        return Err(ChatError::new("bad_text", msg));
    }
    Ok(text)
}

/// One chat line, as kept in a room's history and sent to its members. `id` and `ts` are
/// assigned by the server: ids grow with every line, so clients can order and de-duplicate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatLine {
    /// Server-assigned, increasing.
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// The room.
    pub room: String,
    /// The author's nickname.
    pub from: String,
    /// What they said.
    pub text: String,
}

/// A room in the room list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoomInfo {
    /// Its name.
    pub name: String,
    /// Users in it now.
    pub members: usize,
}

/// The limits a client should respect, sent in `welcome` so the page can enforce them too.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// [`MAX_NICK`].
    pub nick: usize,
    /// [`MAX_ROOM`].
    pub room: usize,
    /// [`MAX_TEXT`].
    pub text: usize,
    /// Messages allowed per `rate_window_ms`.
    pub rate_messages: u32,
    /// The rate limit's window.
    pub rate_window_ms: u64,
}

/// A message from the server. `seq` fields come from the same counter as message ids: a client
/// keeps the list with the highest `seq`, because lists published from different worker threads
/// may arrive out of order.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    /// First message on every connection.
    Welcome {
        /// This connection's id (volley's `ConnId`).
        id: String,
        /// The nickname assigned until the user picks one.
        nick: &'a str,
        online: usize,
        seq: u64,
        rooms: &'a [RoomInfo],
        limits: &'a Limits,
    },
    /// Your nickname is now `nick`.
    Nick { nick: &'a str },
    /// You are now in `room`; `history` and `users` follow.
    Joined { room: &'a str },
    /// You left `room`.
    Left { room: &'a str },
    /// The last messages of a room, oldest first.
    History {
        room: &'a str,
        messages: &'a [ChatLine],
    },
    /// Who is in a room.
    Users {
        room: &'a str,
        seq: u64,
        users: &'a [String],
    },
    /// Every room with members, and how many users are online.
    Rooms {
        seq: u64,
        online: usize,
        rooms: &'a [RoomInfo],
    },
    /// Something happened in a room (joined, left, renamed).
    System {
        room: &'a str,
        ts: u64,
        text: &'a str,
        online: usize,
    },
    /// A chat line.
    Message(&'a ChatLine),
    /// A private message (sent to its recipient and echoed to its sender).
    Private {
        id: u64,
        ts: u64,
        from: &'a str,
        to: &'a str,
        text: &'a str,
    },
    /// Someone in your room started or stopped typing.
    Typing {
        room: &'a str,
        nick: &'a str,
        active: bool,
    },
    /// Your last message was refused.
    Error { code: &'a str, text: &'a str },
}

impl ServerMsg<'_> {
    /// Encode as a WebSocket text message.
    pub fn encode(&self) -> Message {
        // Serializing these plain structs cannot fail (no maps with non-string keys).
        Message::text(serde_json::to_string(self).unwrap_or_default())
    }
}

impl ChatError {
    /// Encode as an `error` message.
    pub fn encode(&self) -> Message {
        ServerMsg::Error {
            code: self.code,
            text: &self.text,
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type() {
        assert!(matches!(
            parse(r#"{"type":"nick","nick":"a"}"#),
            Ok(ClientMsg::Nick { .. })
        ));
        assert!(matches!(parse(r#"{"type":"leave"}"#), Ok(ClientMsg::Leave)));
        assert!(matches!(
            parse(r#"{"type":"typing"}"#),
            Ok(ClientMsg::Typing { active: true })
        ));
        assert_eq!(parse("{").unwrap_err().code, "bad_json");
        assert_eq!(parse("[1]").unwrap_err().code, "bad_request");
        assert_eq!(
            parse(r#"{"type":"dance"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(parse(r#"{"type":"join"}"#).unwrap_err().code, "bad_request");
    }

    #[test]
    fn names() {
        assert_eq!(check_nick("  ada ").unwrap(), "ada");
        assert!(check_nick("").is_err());
        assert!(check_nick("a b").is_err());
        assert!(check_nick(&"x".repeat(MAX_NICK + 1)).is_err());
        assert_eq!(check_room("#Rust").unwrap(), "rust");
        assert!(check_text(" \n").is_err());
    }
}
