//! The chat's shared state: who is online under which nickname, who is in which room, and each
//! room's recent history. One `State` behind a `Mutex` is shared by every connection's handler,
//! which run on several worker threads; every method is quick, so the lock is held briefly.
//!
//! Nothing here touches a socket: handlers (app.rs) turn the results into messages. Part of the
//! chat example (`cargo run --release --features metrics --example chat`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use volley::{ConnHandle, ConnId};

use super::protocol::{check_nick, check_room, check_text, ChatError, ChatLine, RoomInfo};

/// Messages kept per room and sent to whoever joins.
pub const HISTORY: usize = 50;
/// Most rooms at once (those that always exist included): rooms are cheap, but not free.
pub const MAX_ROOMS: usize = 100;
/// Rooms that always exist and keep their history while empty; other rooms vanish, history and
/// all, when their last member leaves.
pub const DEFAULT_ROOMS: [&str; 3] = ["lobby", "rust", "off-topic"];

/// One connected user.
#[derive(Debug)]
pub struct User {
    /// The nickname, as typed.
    pub nick: String,
    /// The room the user is in, if any.
    pub room: Option<String>,
    /// Reaches the user's connection from any thread (private messages).
    pub handle: ConnHandle,
}

#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<ConnId>,
    history: VecDeque<ChatLine>,
    pinned: bool,
}

/// What [`State::join`] did.
#[derive(Debug)]
pub struct Joined {
    /// The room the user was in before, if another one.
    pub left: Option<String>,
    /// The joined room's recent messages, oldest first.
    pub history: Vec<ChatLine>,
    /// The user was in this room already (a client re-joining after a hiccup).
    pub again: bool,
}

/// A private message ready to deliver.
#[derive(Debug)]
pub struct Private {
    /// Server-assigned id (same sequence as chat lines).
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// Sender's nickname.
    pub from: String,
    /// Recipient's nickname, as they spell it.
    pub to: String,
    /// Where to deliver it.
    pub to_handle: ConnHandle,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct State {
    /// Source of message ids and list sequence numbers.
    seq: u64,
    /// Across several servers (`--redis`): where ids come from (Redis's `INCR`), so that ids
    /// from every server are unique and in one order (see `next_seq`).
    shared_ids: Option<SharedIds>,
    guests: u64,
    users: HashMap<ConnId, User>,
    /// Lowercased nickname → its owner, so "Ada" and "ada" cannot both exist.
    nicks: HashMap<String, ConnId>,
    rooms: BTreeMap<String, Room>,
}

impl Default for State {
    fn default() -> Self {
        let rooms = DEFAULT_ROOMS
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    Room {
                        pinned: true,
                        ..Room::default()
                    },
                )
            })
            .collect();
        State {
            seq: 0,
            shared_ids: None,
            guests: 0,
            users: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
        }
    }
}

/// A source of ids shared by several servers.
struct SharedIds(Box<dyn Fn() -> Option<u64> + Send + Sync>);

impl std::fmt::Debug for SharedIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedIds")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl State {
    /// The next id / sequence number: 1, 2, 3... The page orders lines by id and drops
    /// repeats, and ignores a member or room list older than the last it saw, so across servers
    /// ([`State::share_ids`]) the numbers come from one counter they share; while it cannot be
    /// reached, a server numbers on from the last id it had.
    pub fn next_seq(&mut self) -> u64 {
        let shared = self.shared_ids.as_ref().and_then(|f| (f.0)());
        self.seq = shared.unwrap_or(self.seq + 1);
        self.seq
    }

    /// Take ids from `next` (shared by several servers; `None`: unavailable just now).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn share_ids(&mut self, next: impl Fn() -> Option<u64> + Send + Sync + 'static) {
        self.shared_ids = Some(SharedIds(Box::new(next)));
    }

    /// Every user's nickname with their connection.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn nicks(&self) -> Vec<(String, ConnId)> {
        self.users
            .iter()
            .map(|(id, u)| (u.nick.clone(), *id))
            .collect()
    }

    /// Users online.
    pub fn online(&self) -> usize {
        self.users.len()
    }

    /// A user, by connection.
    pub fn user(&self, id: ConnId) -> Option<&User> {
        self.users.get(&id)
    }

    /// A new connection: register it under a fresh guest nickname, which is returned (`number`:
    /// the guest number to try first, given by Redis across servers).
    pub fn connect(&mut self, id: ConnId, handle: ConnHandle, number: Option<u64>) -> String {
        let nick = loop {
            let n = match number {
                Some(n) if !self.nicks.contains_key(&format!("guest-{n}")) => n,
                _ => {
                    self.guests += 1;
                    self.guests
                }
            };
            let nick = format!("guest-{n}");
            if !self.nicks.contains_key(&nick) {
                break nick;
            }
        };
        self.nicks.insert(nick.clone(), id);
        self.users.insert(
            id,
            User {
                nick: nick.clone(),
                room: None,
                handle,
            },
        );
        nick
    }

    /// A connection ended: forget the user; returns their nickname and the room they were in.
    pub fn disconnect(&mut self, id: ConnId) -> Option<(String, Option<String>)> {
        let room = self.leave(id);
        let user = self.users.remove(&id)?;
        self.nicks.remove(&user.nick.to_lowercase());
        Some((user.nick, room))
    }

    /// Change a user's nickname; returns the old one.
    pub fn set_nick(&mut self, id: ConnId, nick: &str) -> Result<String, ChatError> {
        let nick = check_nick(nick)?;
        let key = nick.to_lowercase();
        if self.nicks.get(&key).is_some_and(|owner| *owner != id) {
            return Err(ChatError::new("nick_taken", format!("{nick:?} is taken")));
        }
        let user = self.users.get_mut(&id).ok_or_else(gone)?;
        let old = std::mem::replace(&mut user.nick, nick.to_string());
        self.nicks.remove(&old.to_lowercase());
        self.nicks.insert(key, id);
        Ok(old)
    }

    /// Move a user into `room` (created if needed), out of the room they were in.
    pub fn join(&mut self, id: ConnId, room: &str) -> Result<(String, Joined), ChatError> {
        let room = check_room(room)?;
        if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS {
            let msg = format!("there are {MAX_ROOMS} rooms already; join one of them");
            return Err(ChatError::new("too_many_rooms", msg));
        }
        let current = self.users.get(&id).ok_or_else(gone)?.room.clone();
        let again = current.as_deref() == Some(room.as_str());
        let left = if again { None } else { self.leave(id) };
        let r = self.rooms.entry(room.clone()).or_default();
        r.members.insert(id);
        let history = r.history.iter().cloned().collect();
        if let Some(user) = self.users.get_mut(&id) {
            user.room = Some(room.clone());
        }
        Ok((
            room,
            Joined {
                left,
                history,
                again,
            },
        ))
    }

    /// Take a user out of their room; returns the room they left.
    pub fn leave(&mut self, id: ConnId) -> Option<String> {
        let room = self.users.get_mut(&id)?.room.take()?;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&id);
            if r.members.is_empty() && !r.pinned {
                self.rooms.remove(&room);
            }
        }
        Some(room)
    }

    /// Record a chat line from a user in their room.
    pub fn post(&mut self, id: ConnId, text: &str) -> Result<ChatLine, ChatError> {
        let text = check_text(text)?;
        let user = self.users.get(&id).ok_or_else(gone)?;
        let Some(room) = user.room.clone() else {
            return Err(ChatError::new("not_in_room", "join a room first"));
        };
        let from = user.nick.clone();
        let line = ChatLine {
            id: self.next_seq(),
            ts: now_ms(),
            room,
            from,
            text: text.into(),
        };
        if let Some(r) = self.rooms.get_mut(&line.room) {
            if r.history.len() == HISTORY {
                r.history.pop_front();
            }
            r.history.push_back(line.clone());
        }
        Ok(line)
    }

    /// Prepare a private message from a user to the user called `to`.
    pub fn private(&mut self, id: ConnId, to: &str, text: &str) -> Result<Private, ChatError> {
        check_text(text)?;
        let from = self.users.get(&id).ok_or_else(gone)?.nick.clone();
        let target = self.nicks.get(&to.trim().to_lowercase()).copied();
        let Some(user) = target.and_then(|t| self.users.get(&t)) else {
            return Err(ChatError::new(
                "no_such_user",
                format!("nobody is called {to:?}"),
            ));
        };
        if target == Some(id) {
            return Err(ChatError::new("bad_request", "that is you"));
        }
        let (to, to_handle) = (user.nick.clone(), user.handle.clone());
        Ok(Private {
            id: self.next_seq(),
            ts: now_ms(),
            from,
            to,
            to_handle,
        })
    }

    /// The nicknames in `room`, sorted.
    pub fn users_in(&self, room: &str) -> Vec<String> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut nicks: Vec<String> = r
            .members
            .iter()
            .filter_map(|id| self.users.get(id))
            .map(|u| u.nick.clone())
            .collect();
        nicks.sort_by_key(|n| n.to_lowercase());
        nicks
    }

    /// Every room with its member count, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .map(|(name, r)| RoomInfo {
                name: name.clone(),
                members: r.members.len(),
            })
            .collect()
    }
}

/// A handler asked about a user that is not registered (cannot happen between `on_open` and
/// `on_close`, but the answer is an error, never a panic).
fn gone() -> ChatError {
    ChatError::new("bad_request", "not connected")
}
