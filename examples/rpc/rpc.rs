//! Request/response by id over one WebSocket, as a pattern an application copies and adapts
//! (it needs only serde_json): JSON messages carry an `id`, and
//!
//! - every request from the client gets exactly one reply with its `id`: `{"id", "result"}` or
//!   `{"id", "error": {"code", "message"}}` — a message that is not JSON, has no `id`, or names
//!   no known method is answered with an error too (`id` null when it had none);
//! - the server's own requests to the client (`Rpc::call`) get ids of their own (`"s1"`, `"s2"`,
//!   …); the client's answer `{"id": "s1", "result"…}` completes them, and one not answered
//!   within the timeout is completed with a timeout error (a handler timer per call).
//!
//! `Rpc` lives in the connection's handler; the application supplies the methods.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use volley::{Context, Message};

/// How a call the server made to the client ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The client answered with a result.
    Result(Value),
    /// The client answered with an error.
    Error(Value),
    /// No answer within the timeout.
    Timeout,
}

/// One connection's request/response state.
#[derive(Debug, Default)]
pub struct Rpc {
    next: u64,
    /// Calls to the client awaiting their answer: our id -> the timer id guarding it.
    pending: HashMap<String, u64>,
}

/// Timer ids at and above this guard calls (below are the application's).
const TIMER_BASE: u64 = 1 << 48;

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"id": id, "error": {"code": code, "message": message}})
}

impl Rpc {
    /// Handle one incoming message: a request (answered through `method`, which returns the
    /// result or an error message) or the answer to one of our calls (returned, with its id).
    pub fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        msg: &Message,
        mut method: impl FnMut(&mut Context<'_>, &str, &Value) -> Result<Value, String>,
    ) -> Option<(String, Outcome)> {
        let Some(value) = msg
            .as_text()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
        else {
            let _ = ctx.send(error(&Value::Null, -32700, "not a JSON object").to_string());
            return None;
        };
        let id = value.get("id").cloned().unwrap_or(Value::Null);
        // An answer to one of our calls: a string id we gave out, with a result or an error.
        if let Some(ours) = id.as_str().filter(|s| self.pending.contains_key(*s)) {
            let ours = ours.to_string();
            if let Some(timer) = self.pending.remove(&ours) {
                ctx.cancel_timer(timer);
            }
            let outcome = match (value.get("result"), value.get("error")) {
                (_, Some(e)) => Outcome::Error(e.clone()),
                (Some(r), None) => Outcome::Result(r.clone()),
                (None, None) => Outcome::Error(json!("an answer without result or error")),
            };
            return Some((ours, outcome));
        }
        if id.is_null() {
            let _ = ctx.send(error(&id, -32600, "a request needs an id").to_string());
            return None;
        }
        let reply = match value.get("method").and_then(Value::as_str) {
            None => error(&id, -32600, "a request needs a method"),
            Some(name) => {
                let params = value.get("params").cloned().unwrap_or(Value::Null);
                match method(ctx, name, &params) {
                    Ok(result) => json!({"id": id, "result": result}),
                    Err(message) => error(&id, -32000, &message),
                }
            }
        };
        let _ = ctx.send(reply.to_string());
        None
    }

    /// Ask the client something; its answer comes back from [`Rpc::on_message`], or
    /// [`Rpc::on_timer`] reports the timeout. Returns the call's id.
    pub fn call(
        &mut self,
        ctx: &mut Context<'_>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> String {
        self.next += 1;
        let id = format!("s{}", self.next);
        let timer = TIMER_BASE + self.next;
        ctx.set_timer(timeout, timer);
        self.pending.insert(id.clone(), timer);
        let _ = ctx.send(json!({"id": id, "method": method, "params": params}).to_string());
        id
    }

    /// Pass every handler timer through here: a call's timer completes it with
    /// [`Outcome::Timeout`]; the application's own timers come back as `None`.
    pub fn on_timer(&mut self, timer: u64) -> Option<(String, Outcome)> {
        if timer < TIMER_BASE {
            return None;
        }
        let id = format!("s{}", timer - TIMER_BASE);
        self.pending.remove(&id).map(|_| (id, Outcome::Timeout))
    }
}
