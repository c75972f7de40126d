//! The chat application, everything but `main`: a volley [`Factory`] (`ChatApp`) that serves the
//! page and accepts WebSocket upgrades on `/ws`, and the per-connection [`Handler`] (`Session`)
//! that turns JSON messages into room subscriptions, publishes and private sends.
//!
//! Run it with `cargo run --release --features metrics --example chat`; tests/chat.rs drives this same code over
//! real sockets (it includes this file with `#[path]`).
//!
//! Where volley does the work:
//! - rooms are volley topics: `ctx.subscribe(room)`, `ctx.publish(room, msg)` (each message is
//!   encoded once, whichever worker thread its recipients live on);
//! - private messages go through the recipient's `ConnHandle`, which works from any thread;
//! - dead peers are dropped by volley's heartbeat (`Config::ping_interval`/`pong_timeout`), and
//!   `on_close` then tells their room they left;
//! - the Origin check in `Factory::upgrade` stops other sites from using a visitor's browser to
//!   talk to the chat (cross-site WebSocket hijacking).

// The chat's other modules sit next to this file; `#[path]` finds them there whether this file is
// compiled as part of main.rs or of tests/chat.rs.
#[path = "protocol.rs"]
pub mod protocol;
#[path = "state.rs"]
pub mod state;
// Serving the page's files, shared with the files example.
#[path = "../common/page.rs"]
mod page;
// Several chat servers sharing rooms, nicknames and history through Redis (`--redis`).
#[cfg(feature = "redis")]
#[path = "cluster.rs"]
pub mod cluster;
/// Without the `redis` feature there is no cluster: a type with no values, so the handlers'
/// `Option<Arc<Cluster>>` is always `None` and their cluster branches never run.
#[cfg(not(feature = "redis"))]
pub mod cluster {
    use super::protocol::ChatLine;

    /// No value of this type exists without the `redis` feature.
    #[derive(Debug)]
    pub enum Cluster {}

    #[allow(missing_docs)]
    impl Cluster {
        pub fn owner(&self, _: impl std::fmt::Display) -> String {
            match *self {}
        }
        pub fn guest_number(&self) -> Option<u64> {
            match *self {}
        }
        pub fn claim_nick(&self, _: &str, _: &str) -> Option<bool> {
            match *self {}
        }
        pub fn release_nick(&self, _: &str, _: &str) {
            match *self {}
        }
        pub fn push_history(&self, _: &ChatLine) {
            match *self {}
        }
        pub fn history(&self, _: &str) -> Option<Vec<ChatLine>> {
            match *self {}
        }
        pub fn member(&self, _: &str, _: &str, _: Option<&str>) -> Option<Vec<String>> {
            match *self {}
        }
        pub fn members(&self, _: &str) -> Option<Vec<String>> {
            match *self {}
        }
    }
}

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use volley::{
    CloseCode, CloseFrame, Config, Context, Factory, Handler, Message, Rate, RateLimitPolicy,
    RateLimited, Request, Response, Upgrade,
};

use cluster::Cluster;
use protocol::{ChatError, ClientMsg, Limits, ServerMsg};
use state::{now_ms, State};

// The page, embedded at compile time: one binary, no build step, no CDN.
const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STATS_HTML: &str = include_str!("stats.html");
const STATS_JS: &str = include_str!("stats.js");
const STYLE_CSS: &str = include_str!("style.css");
/// A speech bubble, so the browser's tab has an icon (and asks for nothing that is missing).
const FAVICON_SVG: &str = concat!(
    r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path fill="#4f46e5" "##,
    r##"d="M6 4h20a4 4 0 0 1 4 4v12a4 4 0 0 1-4 4H14l-7 6v-6H6a4 4 0 0 1-4-4V8a4 4 0 0 1 4-4z"/>"##,
    "</svg>"
);
/// Which web pages may open a chat connection, judged by the upgrade's `Origin` header. Clients
/// that are not browsers send no Origin and are always let in: the check exists because a
/// browser would otherwise let any site open a socket as its visitor (with their cookies).
#[derive(Debug, Clone, Default)]
pub enum Origins {
    /// Pages from this server only: the Origin's `host:port` must equal the `Host` header.
    #[default]
    SameHost,
    /// These origins only, e.g. `https://chat.example.com` (flag `--allow-origin`).
    List(Vec<String>),
    /// Any page. For development: any site can then chat in its visitors' name.
    Any,
}

impl Origins {
    fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        match self {
            Origins::SameHost => {
                let authority = origin.split_once("://").map(|(_, a)| a);
                authority.is_some() && authority == host
            }
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Origins::Any => true,
        }
    }
}

/// The per-connection rate limit: a burst of `messages`, then `messages` per `window` on
/// average. volley enforces it (`Config::message_rate` with `RateLimitPolicy::Drop`); the chat
/// answers each refused message with a `rate_limited` error and closes a client that goes on
/// sending after `strikes` refusals in a row (1008).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Burst size, and messages allowed per `window` on average.
    pub messages: u32,
    /// The refill period.
    pub window: Duration,
    /// Refused messages in a row after which the connection is closed.
    pub strikes: u32,
}

impl Default for RateLimit {
    /// 20 messages per 10 s; closed after 10 refusals in a row.
    fn default() -> Self {
        RateLimit {
            messages: 20,
            window: Duration::from_secs(10),
            strikes: 10,
        }
    }
}

/// The chat's own settings (volley's are in `volley::Config`).
#[derive(Debug, Clone, Default)]
pub struct ChatConfig {
    /// Per-connection rate limit.
    pub rate: RateLimit,
    /// The Origin allowlist.
    pub origins: Origins,
    /// `--redis URL`: share rooms (history, members), nicknames and guest numbers with the
    /// other chat servers on this Redis (the rooms' messages go through volley's
    /// `RedisBridge`, which main.rs sets up).
    #[cfg(feature = "redis")]
    pub redis: Option<String>,
}

impl ChatConfig {
    /// `base` with what the chat needs from volley: its rate limit.
    pub fn server_config(&self, base: Config) -> Config {
        let r = self.rate;
        let per_second = f64::from(r.messages) / r.window.as_secs_f64().max(1e-3);
        base.message_rate(Some(Rate::new(per_second, r.messages)))
            .rate_limit_policy(RateLimitPolicy::Drop)
    }
}

/// What every connection's handler shares: the state and the settings.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    config: ChatConfig,
    limits: Limits,
    /// The other servers' shared state, with `--redis`.
    cluster: Option<Arc<Cluster>>,
}

impl Shared {
    /// The state, even if a handler panicked while holding it (volley closes that connection
    /// with 1011; the state itself is always left consistent between statements).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The application: shared by volley's worker threads, it answers plain HTTP requests with the
/// page and creates a [`Session`] for each WebSocket upgrade on `/ws`.
#[derive(Debug, Clone)]
pub struct ChatApp {
    shared: Arc<Shared>,
}

impl ChatApp {
    /// A chat with no users yet and the default rooms.
    pub fn new(config: ChatConfig) -> Self {
        let limits = Limits {
            nick: protocol::MAX_NICK,
            room: protocol::MAX_ROOM,
            text: protocol::MAX_TEXT,
            rate_messages: config.rate.messages,
            rate_window_ms: config.rate.window.as_millis() as u64,
        };
        #[cfg(feature = "redis")]
        let (state, cluster) = {
            let mut state = State::default();
            let cluster = config.redis.as_deref().and_then(|url| {
                let c = Cluster::new(url, random_id())
                    .map_err(|e| log::error!("chat: {e}; running alone"))
                    .ok()
                    .map(Arc::new)?;
                let ids = c.clone();
                state.share_ids(move || ids.next_id());
                Some(c)
            });
            (state, cluster)
        };
        #[cfg(not(feature = "redis"))]
        let (state, cluster) = (State::default(), None);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            config,
            limits,
            cluster,
        });
        #[cfg(feature = "redis")]
        if let Some(c) = &shared.cluster {
            c.renew_in_background(Arc::downgrade(&shared), |sh: &Shared| {
                let c = sh.cluster.as_ref();
                let nicks = sh.lock().nicks();
                nicks
                    .into_iter()
                    .filter_map(|(nick, id)| c.map(|c| (nick, c.owner(id))))
                    .collect()
            });
        }
        ChatApp { shared }
    }
}

impl Factory for ChatApp {
    type Handler = Session;

    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Session> {
        if req.path() != "/ws" {
            return Upgrade::reject(404, "the chat's WebSocket is at /ws\n");
        }
        if let Some(origin) = req.origin() {
            if !self
                .shared
                .config
                .origins
                .allows(origin, req.header("host"))
            {
                log::warn!(
                    "{}: refused upgrade from origin {origin:?}",
                    req.peer_addr()
                );
                return Upgrade::reject(403, "origin not allowed\n");
            }
        }
        Upgrade::accept(Session {
            shared: self.shared.clone(),
        })
    }

    fn http(&self, req: &Request<'_>) -> Response {
        if (req.method(), req.path()) == ("GET", "/ws") {
            return Response::new(426)
                .header("Upgrade", "websocket")
                .body("use WebSocket\n");
        }
        page::serve(
            req,
            &[
                ("/", "text/html; charset=utf-8", INDEX_HTML),
                ("/index.html", "text/html; charset=utf-8", INDEX_HTML),
                ("/app.js", "text/javascript; charset=utf-8", APP_JS),
                ("/stats", "text/html; charset=utf-8", STATS_HTML),
                ("/stats.html", "text/html; charset=utf-8", STATS_HTML),
                ("/stats.js", "text/javascript; charset=utf-8", STATS_JS),
                ("/style.css", "text/css; charset=utf-8", STYLE_CSS),
                ("/favicon.svg", "image/svg+xml", FAVICON_SVG),
                ("/favicon.ico", "image/svg+xml", FAVICON_SVG),
            ],
        )
    }
}

/// One connection's handler. It lives on one worker thread; what all users share is behind
/// `shared`.
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
}

impl Handler for Session {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let cluster = self.shared.cluster.as_deref();
        let number = cluster.and_then(Cluster::guest_number);
        let mut st = self.shared.lock();
        let nick = st.connect(ctx.id(), ctx.handle(), number);
        if let Some(c) = cluster {
            c.claim_nick(&nick, &c.owner(ctx.id()));
        }
        let (seq, online, rooms) = (st.next_seq(), st.online(), st.rooms());
        let welcome = ServerMsg::Welcome {
            id: ctx.id().to_string(),
            nick: &nick,
            online,
            seq,
            rooms: &rooms,
            limits: &self.shared.limits,
        };
        let _ = ctx.send(welcome.encode());
        // The online count changed for everyone else.
        ctx.broadcast_others(room_list(&mut st));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        // volley has already applied the rate limit (every message counts, valid or not, before
        // any work is done): see `on_rate_limited`.
        let result = match msg.as_text() {
            Some(text) => protocol::parse(text).and_then(|m| self.handle(ctx, m)),
            None => Err(ChatError::new(
                "binary",
                "this chat speaks JSON in text messages",
            )),
        };
        if let Err(e) = result {
            let _ = ctx.send(e.encode());
        }
    }

    fn on_rate_limited(&mut self, ctx: &mut Context<'_>, info: RateLimited) {
        let rate = self.shared.config.rate;
        if info.in_a_row > rate.strikes {
            log::info!("{}: closing for flooding", ctx.peer_addr());
            ctx.close(CloseCode::POLICY, "rate limit exceeded");
            return;
        }
        let text = format!(
            "slow down: at most {} messages per {} s",
            rate.messages,
            rate.window.as_secs_f64()
        );
        let _ = ctx.send(ChatError::new("rate_limited", text).encode());
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, frame: CloseFrame) {
        // Called for clean closes and for vanished peers alike (1006 "timeout" after a missed
        // heartbeat): either way the room hears that the user left.
        log::debug!(
            "{}: closed ({} {})",
            ctx.peer_addr(),
            frame.code,
            frame.reason
        );
        let mut st = self.shared.lock();
        let Some((nick, room)) = st.disconnect(ctx.id()) else {
            return;
        };
        let cluster = self.shared.cluster.as_deref();
        if let Some(c) = cluster {
            let owner = c.owner(ctx.id());
            c.release_nick(&nick, &owner);
            if let Some(room) = &room {
                c.member(room, &owner, None);
            }
        }
        if let Some(room) = room {
            announce(cluster, &mut st, ctx, &room, &format!("{nick} left"));
        }
        rooms_changed(&mut st, ctx);
    }
}

impl Session {
    /// Act on one valid message; an `Err` goes back to the client as an `error` message.
    fn handle(&mut self, ctx: &mut Context<'_>, msg: ClientMsg) -> Result<(), ChatError> {
        let id = ctx.id();
        let cluster = self.shared.cluster.as_deref();
        let owner = cluster.map(|c| c.owner(id)).unwrap_or_default();
        let mut st = self.shared.lock();
        match msg {
            ClientMsg::Nick { nick } => {
                // Across servers the nickname is claimed in Redis first (unreachable: this
                // server's own check is all there is).
                let wanted = protocol::check_nick(&nick)?.to_string();
                if let Some(c) = cluster {
                    if c.claim_nick(&wanted, &owner) == Some(false) {
                        let text = format!("{wanted:?} is taken");
                        return Err(ChatError::new("nick_taken", text));
                    }
                }
                let old = match st.set_nick(id, &nick) {
                    Ok(old) => old,
                    Err(e) => {
                        if let Some(c) = cluster {
                            c.release_nick(&wanted, &owner);
                        }
                        return Err(e);
                    }
                };
                let user = st.user(id).ok_or_else(not_connected)?;
                let (nick, room) = (user.nick.clone(), user.room.clone());
                if let Some(c) = cluster {
                    if old.to_lowercase() != nick.to_lowercase() {
                        c.release_nick(&old, &owner);
                    }
                    if let Some(room) = &room {
                        c.member(room, &owner, Some(&nick));
                    }
                }
                let _ = ctx.send(ServerMsg::Nick { nick: &nick }.encode());
                if let Some(room) = room.filter(|_| old != nick) {
                    let text = format!("{old} is now known as {nick}");
                    announce(cluster, &mut st, ctx, &room, &text);
                }
            }
            ClientMsg::Join { room } => {
                let (room, mut joined) = st.join(id, &room)?;
                let nick = st.user(id).ok_or_else(not_connected)?.nick.clone();
                if let Some(c) = cluster {
                    // The room's history from every server, and this user among its members.
                    if let Some(h) = c.history(&room) {
                        joined.history = h;
                    }
                    if let Some(old) = &joined.left {
                        c.member(old, &owner, None);
                    }
                    c.member(&room, &owner, Some(&nick));
                }
                if let Some(old) = joined.left {
                    ctx.unsubscribe(&old);
                    announce(cluster, &mut st, ctx, &old, &format!("{nick} left"));
                }
                // Subscribing in the same callback as the state change leaves no gap: this
                // worker handles publishes from others only between callbacks.
                ctx.subscribe(&room);
                let _ = ctx.send(ServerMsg::Joined { room: &room }.encode());
                let history = ServerMsg::History {
                    room: &room,
                    messages: &joined.history,
                };
                let _ = ctx.send(history.encode());
                if joined.again {
                    let _ = ctx.send(member_list(cluster, &mut st, &room));
                } else {
                    announce(cluster, &mut st, ctx, &room, &format!("{nick} joined"));
                    rooms_changed(&mut st, ctx);
                }
            }
            ClientMsg::Leave => {
                let nick = st.user(id).ok_or_else(not_connected)?.nick.clone();
                let room = st.leave(id).ok_or_else(not_in_room)?;
                if let Some(c) = cluster {
                    c.member(&room, &owner, None);
                }
                ctx.unsubscribe(&room);
                let _ = ctx.send(ServerMsg::Left { room: &room }.encode());
                announce(cluster, &mut st, ctx, &room, &format!("{nick} left"));
                rooms_changed(&mut st, ctx);
            }
            ClientMsg::Rooms => {
                let _ = ctx.send(room_list(&mut st));
            }
            ClientMsg::Message { text } => {
                let line = st.post(id, &text)?;
                drop(st);
                if let Some(c) = cluster {
                    c.push_history(&line);
                }
                ctx.publish(&line.room, ServerMsg::Message(&line).encode());
            }
            ClientMsg::Private { to, text } => {
                let p = st.private(id, &to, &text)?;
                drop(st);
                let (from, to) = (p.from.as_str(), p.to.as_str());
                let msg = ServerMsg::Private {
                    id: p.id,
                    ts: p.ts,
                    from,
                    to,
                    text: &text,
                };
                let msg = msg.encode();
                // The recipient may live on another worker thread: its handle gets it there.
                let _ = p.to_handle.send(msg.clone());
                let _ = ctx.send(msg);
            }
            ClientMsg::Typing { active } => {
                let user = st.user(id).ok_or_else(not_connected)?;
                let room = user.room.clone().ok_or_else(not_in_room)?;
                let nick = user.nick.clone();
                drop(st);
                let typing = ServerMsg::Typing {
                    room: &room,
                    nick: &nick,
                    active,
                };
                ctx.publish_others(&room, typing.encode());
            }
        }
        Ok(())
    }
}

/// Tell a room that its membership changed: a system line and the new member list.
fn announce(
    cluster: Option<&Cluster>,
    st: &mut State,
    ctx: &mut Context<'_>,
    room: &str,
    text: &str,
) {
    let online = st.online();
    let line = ServerMsg::System {
        room,
        ts: now_ms(),
        text,
        online,
    };
    ctx.publish(room, line.encode());
    ctx.publish(room, member_list(cluster, st, room));
}

/// Send everyone the new room list (member counts and the online count changed).
fn rooms_changed(st: &mut State, ctx: &mut Context<'_>) {
    ctx.broadcast(room_list(st));
}

/// The members of `room` (on every server, with `--redis`), numbered (see `ServerMsg`'s `seq`).
fn member_list(cluster: Option<&Cluster>, st: &mut State, room: &str) -> Message {
    let users = cluster.and_then(|c| c.members(room));
    let (seq, users) = (st.next_seq(), users.unwrap_or_else(|| st.users_in(room)));
    let users = &users;
    ServerMsg::Users { room, seq, users }.encode()
}

/// Every room with its member count, and the online count, numbered.
fn room_list(st: &mut State) -> Message {
    let (seq, online, rooms) = (st.next_seq(), st.online(), st.rooms());
    let rooms = &rooms;
    ServerMsg::Rooms { seq, online, rooms }.encode()
}

/// A random id for this server among the chat servers (the standard library's randomly keyed
/// hasher over the clock and the process id).
#[cfg(feature = "redis")]
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(now_ms());
    h.finish()
}

fn not_in_room() -> ChatError {
    ChatError::new("not_in_room", "join a room first")
}

fn not_connected() -> ChatError {
    ChatError::new("bad_request", "not connected")
}
