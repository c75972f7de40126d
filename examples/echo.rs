//! Echo server: every message a client sends comes back to it unchanged.
//!
//! Run: `cargo run --release --example echo -- [ADDR]` (default `127.0.0.1:9001`), then point
//! any WebSocket client at `ws://ADDR/`, e.g. in a browser's console: `ws = new
//! WebSocket("ws://127.0.0.1:9001/"); ws.onmessage = e => console.log(e.data); ws.send("hi")`.
//! Look at how little a handler must write. `RUST_LOG=debug` shows connections come and go.
//! (The echo server the test and benchmark scripts drive is scripts/harness/echo.rs.)

#[path = "common/log.rs"]
mod logger;

use volley::{Context, Handler, Message, Request, Server, Upgrade};

/// One per connection. Every other callback (open, close, timers, ...) has a default.
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        // Text comes back as text, binary as binary. It fails only if the connection is
        // closing or its outbound queue is full: nothing to do about either here.
        let _ = ctx.send(msg);
    }
}

fn main() -> Result<(), volley::Error> {
    logger::init();
    let arg = std::env::args().nth(1);
    let addr = arg.as_deref().unwrap_or("127.0.0.1:9001");
    // The factory sees every upgrade request; this one accepts them all.
    let server = Server::builder()
        .bind(addr)
        .start(|_req: &Request<'_>| Upgrade::accept(Echo))?;
    println!("echo server on ws://{}/", server.local_addr());
    // Runs until the process is stopped.
    server.run()
}
