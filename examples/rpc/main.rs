//! Request/response by id (see rpc.rs for the pattern): a server with two methods, `add` and
//! `echo`, that also asks every new client `{"method": "hello"}` and logs whether it answered
//! within two seconds.
//!
//! Run: `cargo run --release --example rpc`, then e.g. in a browser console:
//! `ws = new WebSocket("ws://127.0.0.1:9003/"); ws.onmessage = e => console.log(e.data);`
//! `ws.send(JSON.stringify({id: 1, method: "add", params: [2, 3]}))` → `{"id":1,"result":5}`.

#[path = "../common/log.rs"]
mod logger;
mod rpc;

use std::time::Duration;

use rpc::{Outcome, Rpc};
use serde_json::{json, Value};
use volley::{Context, Handler, Message, Request, Server, Upgrade};

#[derive(Default)]
struct Session {
    rpc: Rpc,
}

fn methods(_ctx: &mut Context<'_>, name: &str, params: &Value) -> Result<Value, String> {
    match name {
        "add" => {
            let sum = params
                .as_array()
                .ok_or("add takes an array of numbers")?
                .iter()
                .map(|v| v.as_f64().ok_or("add takes numbers"))
                .sum::<Result<f64, _>>()?;
            Ok(json!(sum))
        }
        "echo" => Ok(params.clone()),
        other => Err(format!("no method {other:?}")),
    }
}

impl Handler for Session {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        self.rpc
            .call(ctx, "hello", json!({}), Duration::from_secs(2));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        if let Some((id, outcome)) = self.rpc.on_message(ctx, &msg, methods) {
            log::info!("{}: call {id} answered: {outcome:?}", ctx.id());
        }
    }

    fn on_timer(&mut self, _ctx: &mut Context<'_>, timer: u64) {
        if let Some((id, Outcome::Timeout)) = self.rpc.on_timer(timer) {
            log::info!("call {id}: no answer in time");
        }
    }
}

fn main() {
    logger::init();
    let server = Server::builder()
        .bind("127.0.0.1:9003")
        .start(|_r: &Request<'_>| Upgrade::accept(Session::default()))
        .unwrap_or_else(|e| {
            eprintln!("rpc: cannot start: {e}");
            std::process::exit(1);
        });
    println!("rpc server on ws://{}/", server.local_addr());
    if let Err(e) = server.run() {
        eprintln!("rpc: {e}");
        std::process::exit(1);
    }
}
