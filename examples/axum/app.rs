//! The app of examples/axum (tests/axum.rs includes this file too): an axum Router with a
//! JSON API and a page, and the volley Factory that serves its `/ws` through the hand-off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Json, State};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, RwLock};
use volley::integrations::axum::VolleyUpgrade;
use volley::{Context, Factory, Handler, Message, Request, ServerHandle, Upgrade};

/// One chat line, as the API lists it and the WebSocket clients receive it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub topic: String,
    pub user: String,
    pub text: String,
}

/// What the routes share: volley's handle and the message log.
#[derive(Clone)]
pub struct AppState {
    pub volley: ServerHandle,
    pub log: Arc<RwLock<Vec<Line>>>,
}

/// Tokens the store knows, token -> user.
pub fn users() -> Arc<RwLock<HashMap<String, String>>> {
    let known = [("alice-token", "alice"), ("bob-token", "bob")];
    let map = known.map(|(t, u)| (t.to_string(), u.to_string()));
    Arc::new(RwLock::new(HashMap::from(map)))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(include_str!("page.html")) }))
        .route("/api/messages", get(messages))
        .route("/api/publish", post(publish))
        .route("/ws", get(ws))
        .with_state(state)
}

async fn ws(up: VolleyUpgrade, State(s): State<AppState>) -> Response {
    up.accept_with(&s.volley).await
}

async fn messages(State(s): State<AppState>) -> Json<Vec<Line>> {
    Json(s.log.read().await.clone())
}

/// `POST /api/publish {"topic", "text"}`: to every WebSocket client in that room.
async fn publish(State(s): State<AppState>, Json(mut line): Json<Line>) -> Json<Line> {
    line.user = "api".into();
    s.volley
        .publish(&line.topic, serde_json::to_string(&line).unwrap());
    s.log.write().await.push(line.clone());
    Json(line)
}

/// The volley side: every upgrade is deferred to a tokio task that checks `?token=` against
/// the store; a member's messages go to a tokio task (the log is async), which publishes them.
pub struct Rooms {
    pub users: Arc<RwLock<HashMap<String, String>>>,
    pub lines: mpsc::UnboundedSender<Line>,
    pub runtime: tokio::runtime::Handle,
}

impl Factory for Rooms {
    type Handler = Member;

    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Member> {
        let room = req
            .query_param("room")
            .unwrap_or("lobby".into())
            .into_owned();
        let token = req.query_param("token").unwrap_or_default().into_owned();
        let (upgrade, pending) = req.defer();
        let (users, lines) = (self.users.clone(), self.lines.clone());
        self.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await; // the database's round trip
            let _ = match users.read().await.get(&token).cloned() {
                Some(user) => pending.accept(Member { user, room, lines }),
                None => pending.reject(volley::Response::new(401).body("unknown token\n")),
            };
        });
        upgrade
    }
}

/// One WebSocket client: in one room, as one user.
pub struct Member {
    user: String,
    room: String,
    lines: mpsc::UnboundedSender<Line>,
}

impl Handler for Member {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe(&self.room);
    }

    fn on_message(&mut self, _ctx: &mut Context<'_>, msg: Message) {
        let Some(text) = msg.as_text() else { return };
        // Handlers are synchronous: async work (the log) goes to a task, which replies
        // through the ServerHandle (a ConnHandle would reach this connection alone).
        let line = Line {
            topic: self.room.clone(),
            user: self.user.clone(),
            text: text.to_string(),
        };
        let _ = self.lines.send(line);
    }
}

/// The task that logs members' lines and publishes them to their rooms.
pub async fn log_lines(mut rx: mpsc::UnboundedReceiver<Line>, s: AppState) {
    while let Some(line) = rx.recv().await {
        s.volley
            .publish(&line.topic, serde_json::to_string(&line).unwrap());
        s.log.write().await.push(line);
    }
}
