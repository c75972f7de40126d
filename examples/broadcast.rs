//! Broadcast server: every connection joins one room; every message a client sends is published
//! to the whole room, sender included. The server side of the loadtest `broadcast` scenario.
//!
//! Run: `cargo run --release --example broadcast -- [ADDR] [WORKERS]`
//! (default `127.0.0.1:9002`).

#[path = "common/log.rs"]
mod logger;

use volley::{Config, Context, Handler, Message, Request, Server, Upgrade};

const ROOM: &str = "room";

struct Member;

impl Handler for Member {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe(ROOM);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        // Encoded once, shared by every subscriber on every worker.
        ctx.publish(ROOM, msg);
    }
}

fn main() {
    logger::init();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9002".to_string());
    let mut config = Config::default();
    if let Some(w) = args.next() {
        config = config.workers(w.parse().expect("WORKERS must be a number"));
    }
    let workers = config.workers;
    let server = Server::builder()
        .config(config)
        .bind(addr)
        .start(|_req: &Request<'_>| Upgrade::accept(Member))
        .unwrap_or_else(|e| {
            eprintln!("broadcast: cannot start: {e}");
            std::process::exit(1);
        });
    println!(
        "broadcast server on ws://{}/ ({workers} workers)",
        server.local_addr()
    );
    // Ctrl-C or SIGTERM: close every connection with 1001 after what is queued, then exit.
    #[cfg(unix)]
    let result = server.run_until_signal();
    #[cfg(not(unix))]
    let result = server.run();
    if let Err(e) = result {
        eprintln!("broadcast: {e}");
        std::process::exit(1);
    }
}
