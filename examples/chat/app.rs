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

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use volley::{
    CloseCode, CloseFrame, Config, Context, Factory, Handler, Message, Rate, RateLimitPolicy,
    RateLimited, Request, Response, Upgrade,
};

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
/// The page loads nothing but its own files and talks only to its own server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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
        let shared = Shared {
            state: Mutex::new(State::default()),
            config,
            limits,
        };
        ChatApp {
            shared: Arc::new(shared),
        }
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
        let (content_type, body) = match (req.method(), req.path()) {
            ("GET", "/" | "/index.html") => ("text/html; charset=utf-8", INDEX_HTML),
            ("GET", "/app.js") => ("text/javascript; charset=utf-8", APP_JS),
            ("GET", "/stats" | "/stats.html") => ("text/html; charset=utf-8", STATS_HTML),
            ("GET", "/stats.js") => ("text/javascript; charset=utf-8", STATS_JS),
            ("GET", "/style.css") => ("text/css; charset=utf-8", STYLE_CSS),
            ("GET", "/favicon.svg" | "/favicon.ico") => ("image/svg+xml", FAVICON_SVG),
            ("GET", "/ws") => {
                return Response::new(426)
                    .header("Upgrade", "websocket")
                    .body("use WebSocket\n")
            }
            ("GET", _) => return Response::not_found(),
            _ => {
                return Response::new(405)
                    .header("Allow", "GET")
                    .body("method not allowed\n")
            }
        };
        Response::ok(content_type, body)
            .header("Cache-Control", "no-cache")
            .header("X-Content-Type-Options", "nosniff")
            .header("Content-Security-Policy", CSP)
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
        let mut st = self.shared.lock();
        let nick = st.connect(ctx.id(), ctx.handle());
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
        if let Some(room) = room {
            announce(&mut st, ctx, &room, &format!("{nick} left"));
        }
        rooms_changed(&mut st, ctx);
    }
}

impl Session {
    /// Act on one valid message; an `Err` goes back to the client as an `error` message.
    fn handle(&mut self, ctx: &mut Context<'_>, msg: ClientMsg) -> Result<(), ChatError> {
        let id = ctx.id();
        let mut st = self.shared.lock();
        match msg {
            ClientMsg::Nick { nick } => {
                let old = st.set_nick(id, &nick)?;
                let user = st.user(id).ok_or_else(not_connected)?;
                let (nick, room) = (user.nick.clone(), user.room.clone());
                let _ = ctx.send(ServerMsg::Nick { nick: &nick }.encode());
                if let Some(room) = room.filter(|_| old != nick) {
                    let text = format!("{old} is now known as {nick}");
                    announce(&mut st, ctx, &room, &text);
                }
            }
            ClientMsg::Join { room } => {
                let (room, joined) = st.join(id, &room)?;
                let nick = st.user(id).ok_or_else(not_connected)?.nick.clone();
                if let Some(old) = joined.left {
                    ctx.unsubscribe(&old);
                    announce(&mut st, ctx, &old, &format!("{nick} left"));
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
                    let _ = ctx.send(member_list(&mut st, &room));
                } else {
                    announce(&mut st, ctx, &room, &format!("{nick} joined"));
                    rooms_changed(&mut st, ctx);
                }
            }
            ClientMsg::Leave => {
                let nick = st.user(id).ok_or_else(not_connected)?.nick.clone();
                let room = st.leave(id).ok_or_else(not_in_room)?;
                ctx.unsubscribe(&room);
                let _ = ctx.send(ServerMsg::Left { room: &room }.encode());
                announce(&mut st, ctx, &room, &format!("{nick} left"));
                rooms_changed(&mut st, ctx);
            }
            ClientMsg::Rooms => {
                let _ = ctx.send(room_list(&mut st));
            }
            ClientMsg::Message { text } => {
                let line = st.post(id, &text)?;
                drop(st);
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
fn announce(st: &mut State, ctx: &mut Context<'_>, room: &str, text: &str) {
    let online = st.online();
    let line = ServerMsg::System {
        room,
        ts: now_ms(),
        text,
        online,
    };
    ctx.publish(room, line.encode());
    ctx.publish(room, member_list(st, room));
}

/// Send everyone the new room list (member counts and the online count changed).
fn rooms_changed(st: &mut State, ctx: &mut Context<'_>) {
    ctx.broadcast(room_list(st));
}

/// The members of `room`, numbered (see `ServerMsg`'s `seq`).
fn member_list(st: &mut State, room: &str) -> Message {
    let (seq, users) = (st.next_seq(), st.users_in(room));
    let users = &users;
    ServerMsg::Users { room, seq, users }.encode()
}

/// Every room with its member count, and the online count, numbered.
fn room_list(st: &mut State) -> Message {
    let (seq, online, rooms) = (st.next_seq(), st.online(), st.rooms());
    let rooms = &rooms;
    ServerMsg::Rooms { seq, online, rooms }.encode()
}

fn not_in_room() -> ChatError {
    ChatError::new("not_in_room", "join a room first")
}

fn not_connected() -> ChatError {
    ChatError::new("bad_request", "not connected")
}
