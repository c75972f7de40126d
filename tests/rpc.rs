//! The request/response pattern of examples/rpc over real sockets: exactly one reply per
//! request, with its id, errors included; the server's own calls answered, or timed out.

mod util;

#[path = "../examples/rpc/rpc.rs"]
mod rpc;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc::{Outcome, Rpc};
use serde_json::{json, Value};
use util::*;
use volley::{Context, Handler, Message, Request, Upgrade};

type Log = Arc<Mutex<Vec<(String, Outcome)>>>;

struct Session {
    rpc: Rpc,
    log: Log,
}

fn methods(ctx: &mut Context<'_>, name: &str, params: &Value) -> Result<Value, String> {
    match name {
        "double" => params
            .as_i64()
            .map(|n| json!(n * 2))
            .ok_or_else(|| "double takes a number".to_string()),
        "peer" => Ok(json!(ctx.peer_addr().ip().to_string())),
        other => Err(format!("no method {other}")),
    }
}

impl Handler for Session {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        self.rpc
            .call(ctx, "confirm", json!({"n": 1}), Duration::from_millis(300));
        self.rpc
            .call(ctx, "ignored", json!({}), Duration::from_millis(300));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if let Some(done) = self.rpc.on_message(ctx, &msg, methods) {
            self.log.lock().unwrap().push(done);
        }
    }
    fn on_timer(&mut self, _ctx: &mut Context<'_>, timer: u64) {
        if let Some(done) = self.rpc.on_timer(timer) {
            self.log.lock().unwrap().push(done);
        }
    }
}

fn reply(c: &mut Client) -> Value {
    serde_json::from_str(&c.recv_text()).unwrap()
}

#[test]
fn every_request_gets_one_reply_and_server_calls_complete_or_time_out() {
    let log: Log = Arc::default();
    let l = log.clone();
    let s = TestServer::start(config(), move |_r: &Request<'_>| {
        Upgrade::accept(Session {
            rpc: Rpc::default(),
            log: l.clone(),
        })
    });
    let mut c = Client::connect(s.addr);
    // The server's two calls arrive first.
    let first = reply(&mut c);
    let second = reply(&mut c);
    assert_eq!(first["method"], "confirm");
    assert_eq!(second["method"], "ignored");
    // Requests, interleaved with the answer to the first call.
    c.send_text(&json!({"id": 7, "method": "double", "params": 21}).to_string());
    c.send_text(&json!({"id": first["id"], "result": "ok"}).to_string());
    c.send_text(&json!({"id": "x", "method": "double", "params": "two"}).to_string());
    c.send_text(&json!({"id": 8, "method": "nope"}).to_string());
    c.send_text("not json");
    c.send_text(&json!({"method": "double", "params": 1}).to_string());
    let replies: Vec<Value> = (0..5).map(|_| reply(&mut c)).collect();
    assert_eq!(replies[0], json!({"id": 7, "result": 42}));
    assert_eq!(replies[1]["id"], "x");
    assert_eq!(replies[1]["error"]["message"], "double takes a number");
    assert_eq!(replies[2]["id"], 8);
    assert!(replies[2]["error"].is_object());
    assert_eq!(replies[3]["id"], Value::Null);
    assert_eq!(replies[3]["error"]["code"], -32700);
    assert_eq!(replies[4]["error"]["message"], "a request needs an id");
    // The unanswered call times out; the answered one completed with its result.
    wait_until(5, "both server calls completed", || {
        log.lock().unwrap().len() == 2
    });
    let log = log.lock().unwrap();
    assert_eq!(
        log[0],
        (
            first["id"].as_str().unwrap().to_string(),
            Outcome::Result(json!("ok"))
        )
    );
    assert_eq!(
        log[1],
        (second["id"].as_str().unwrap().to_string(), Outcome::Timeout)
    );
    // Nothing more was sent: exactly one reply per request.
    c.send_text(&json!({"id": 9, "method": "double", "params": 1}).to_string());
    assert_eq!(reply(&mut c), json!({"id": 9, "result": 2}));
}
