//! The chat across several servers (`--redis URL`, feature `redis`): what the servers share in
//! Redis besides the rooms' messages (which volley's `RedisBridge` carries as topics).
//!
//! - Nicknames: `chat:nick:NAME` (lowercased) holds its owner, `NODE/CONNECTION`, for 60 s;
//!   every node renews its users' nicknames every 20 s, and releases one when its user
//!   leaves or renames (a crashed node's nicknames free themselves within a minute). Guest
//!   names are numbered by `INCR chat:guests`.
//! - History: `chat:history:ROOM`, a list capped at `state::HISTORY` lines (RPUSH + LTRIM),
//!   read whole on joining, whatever node the line was said on.
//! - Members: `chat:members:ROOM`, a hash of owner → nickname, read for the member list.
//! - Ids of lines and lists: `INCR chat:ids`, one order for every server.
//!
//! These calls are made by the handlers on volley's worker threads, so each is one short round
//! trip on a connection taken from a small pool, bounded by a 250 ms timeout. When Redis does
//! not answer, the chat carries on with this node's own state (its users' nicknames, its
//! rooms' history and members) and tries Redis again a second later.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::protocol::ChatLine;
use super::state::HISTORY;

/// Every Redis call gives up after this long.
const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, Redis is left alone this long (calls answer "unavailable" at once).
const PAUSE: Duration = Duration::from_secs(1);
/// A nickname's lease, and how often the owning node renews it.
const NICK_TTL_SECS: u64 = 60;
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// Claim (or renew) a nickname: set it to the owner if free or already ours. 1 if ours now.
const CLAIM: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) \
    return 1 end return 0";
/// Release a nickname if it is still ours.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// The chat's Redis: a client and a few idle connections.
pub struct Cluster {
    client: redis::Client,
    /// This server's id in owners (`NODE/CONNECTION`).
    pub node: String,
    idle: Mutex<Vec<redis::Connection>>,
    /// Until when Redis is left alone after a failure.
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish()
    }
}

impl Cluster {
    /// A cluster through the Redis at `url` (checked, not connected yet).
    pub fn new(url: &str, node: u64) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url:?}: {e}"))?;
        Ok(Cluster {
            client,
            node: format!("{node:016x}"),
            idle: Mutex::new(Vec::new()),
            paused_until: Mutex::new(None),
        })
    }

    /// The owner string of one of this node's connections.
    pub fn owner(&self, conn: impl std::fmt::Display) -> String {
        format!("{}/{conn}", self.node)
    }

    /// Run `f` on a pooled connection; `None` if Redis is unavailable (logged).
    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        {
            let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            match *p {
                Some(t) if Instant::now() < t => return None,
                Some(_) => *p = None,
                None => {}
            }
        }
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let con = match pooled {
            Some(c) => Ok(c),
            None => self
                .client
                .get_connection_with_timeout(TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(TIMEOUT))?;
                    c.set_write_timeout(Some(TIMEOUT))?;
                    Ok(c)
                }),
        };
        let result = con.and_then(|mut c| f(&mut c).map(|v| (v, c)));
        match result {
            Ok((v, c)) => {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < 8 {
                    idle.push(c);
                }
                Some(v)
            }
            Err(e) => {
                log::warn!("chat: Redis unavailable ({what}: {e}); using this node's state");
                *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + PAUSE);
                None
            }
        }
    }

    fn nick_key(nick: &str) -> String {
        format!("chat:nick:{}", nick.to_lowercase())
    }

    /// The next message or list id, from one counter for every server (`INCR chat:ids`), so
    /// the page sees one order whatever server a line comes from.
    pub fn next_id(&self) -> Option<u64> {
        self.with("id", |c| redis::cmd("INCR").arg("chat:ids").query(c))
    }

    /// A fresh guest number, unique across the servers.
    pub fn guest_number(&self) -> Option<u64> {
        self.with("guest number", |c| {
            redis::cmd("INCR").arg("chat:guests").query(c)
        })
    }

    /// Claim `nick` for `owner`: `Some(true)` if it is ours now, `Some(false)` if another user
    /// (on any server) holds it, `None` if Redis is unavailable.
    pub fn claim_nick(&self, nick: &str, owner: &str) -> Option<bool> {
        self.with("claim nickname", |c| {
            let r: i64 = redis::cmd("EVAL")
                .arg(CLAIM)
                .arg(1)
                .arg(Self::nick_key(nick))
                .arg(owner)
                .arg(NICK_TTL_SECS)
                .query(c)?;
            Ok(r == 1)
        })
    }

    /// Give `nick` up if `owner` still holds it.
    pub fn release_nick(&self, nick: &str, owner: &str) {
        self.with("release nickname", |c| {
            redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(Self::nick_key(nick))
                .arg(owner)
                .exec(c)
        });
    }

    /// Renew the leases of this node's users' nicknames, `(nick, owner)`.
    fn renew(&self, nicks: &[(String, String)]) {
        if nicks.is_empty() {
            return;
        }
        self.with("renew nicknames", |c| {
            let mut pipe = redis::pipe();
            for (nick, owner) in nicks {
                pipe.cmd("EVAL")
                    .arg(CLAIM)
                    .arg(1)
                    .arg(Self::nick_key(nick))
                    .arg(owner)
                    .arg(NICK_TTL_SECS)
                    .ignore();
            }
            pipe.exec(c)
        });
    }

    /// Renew this node's nicknames every 20 s, as long as `app` lives; `nicks` lists them.
    pub fn renew_in_background<T: Send + Sync + 'static>(
        self: &Arc<Self>,
        app: Weak<T>,
        nicks: fn(&T) -> Vec<(String, String)>,
    ) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("chat-nicks".into())
            .spawn(move || loop {
                std::thread::sleep(RENEW_EVERY);
                let Some(app) = app.upgrade() else { return };
                me.renew(&nicks(&app));
            });
        if let Err(e) = spawned {
            log::warn!("chat: cannot start the nickname renewal thread: {e}");
        }
    }

    /// Append a line to its room's history, keeping the last `HISTORY`.
    pub fn push_history(&self, line: &ChatLine) {
        let Ok(json) = serde_json::to_string(line) else {
            return;
        };
        let key = format!("chat:history:{}", line.room);
        self.with("history", |c| {
            redis::pipe()
                .cmd("RPUSH")
                .arg(&key)
                .arg(json)
                .ignore()
                .cmd("LTRIM")
                .arg(&key)
                .arg(-(HISTORY as i64))
                .arg(-1)
                .ignore()
                .exec(c)
        });
    }

    /// A room's history, oldest first (lines that do not parse are skipped).
    pub fn history(&self, room: &str) -> Option<Vec<ChatLine>> {
        let raw: Vec<String> = self.with("history", |c| {
            redis::cmd("LRANGE")
                .arg(format!("chat:history:{room}"))
                .arg(0)
                .arg(-1)
                .query(c)
        })?;
        Some(
            raw.iter()
                .filter_map(|s| serde_json::from_str(s).ok())
                .collect(),
        )
    }

    /// Record (`Some(nick)`) or remove (`None`) `owner` as a member of `room`, then return the
    /// room's members' nicknames, sorted. One round trip.
    pub fn member(&self, room: &str, owner: &str, nick: Option<&str>) -> Option<Vec<String>> {
        let key = format!("chat:members:{room}");
        let mut users: Vec<String> = self.with("members", |c| {
            let mut pipe = redis::pipe();
            match nick {
                Some(n) => pipe.cmd("HSET").arg(&key).arg(owner).arg(n).ignore(),
                None => pipe.cmd("HDEL").arg(&key).arg(owner).ignore(),
            };
            let (users,): (Vec<String>,) = pipe.cmd("HVALS").arg(&key).query(c)?;
            Ok(users)
        })?;
        users.sort_by_key(|n| n.to_lowercase());
        Some(users)
    }

    /// A room's members' nicknames, sorted.
    pub fn members(&self, room: &str) -> Option<Vec<String>> {
        let mut users: Vec<String> = self.with("members", |c| {
            redis::cmd("HVALS")
                .arg(format!("chat:members:{room}"))
                .query(c)
        })?;
        users.sort_by_key(|n| n.to_lowercase());
        Some(users)
    }
}
