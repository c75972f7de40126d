//! Broadcast server: every connection joins one room; every message a client sends is published
//! to the whole room, sender included. The server side of the loadtest `broadcast` scenario.
//!
//! Run: `cargo run --release --example broadcast -- [ADDR] [WORKERS] [REDIS_URL]`
//! (default `127.0.0.1:9002`). With `--features redis` and a Redis URL, several of these
//! servers share the room through Redis (`RedisBridge`): start two on different ports and point
//! `volley-loadtest broadcast` at both, with `--publish-url` for the publishers' server.
//! `VOLLEY_HISTORY=N` makes the room a stream keeping its last N publications
//! (`ServerBuilder::history`, `Context::publish_stream`): what history costs a broadcast.

#[path = "common/log.rs"]
mod logger;
#[path = "common/serve.rs"]
mod serve;

use volley::{Config, Context, Handler, Message, Request, Server, Upgrade};

const ROOM: &str = "room";

struct Member {
    /// The room keeps a history (`VOLLEY_HISTORY`).
    stream: bool,
}

impl Handler for Member {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe(ROOM);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        // Encoded once, shared by every subscriber on every worker.
        if self.stream {
            ctx.publish_stream(ROOM, |_position| msg);
        } else {
            ctx.publish(ROOM, msg);
        }
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
    let mut builder = Server::builder().config(config).bind(addr);
    let history = std::env::var("VOLLEY_HISTORY")
        .ok()
        .and_then(|n| n.parse().ok());
    if let Some(size) = history {
        let keep = std::time::Duration::from_secs(300);
        builder = builder.history(ROOM, volley::HistoryOptions::new(size, keep));
    }
    let stream = history.is_some();
    if let Some(url) = args.next() {
        #[cfg(feature = "redis")]
        {
            let bridge = volley::RedisBridge::new(&url).unwrap_or_else(|e| {
                eprintln!("broadcast: {e}");
                std::process::exit(2);
            });
            builder = builder.bridge(bridge.prefix("broadcast:"));
        }
        #[cfg(not(feature = "redis"))]
        {
            eprintln!("broadcast: REDIS_URL {url} needs the redis feature (--features redis)");
            std::process::exit(2);
        }
    }
    let server = builder
        .start(move |_req: &Request<'_>| Upgrade::accept(Member { stream }))
        .unwrap_or_else(|e| {
            eprintln!("broadcast: cannot start: {e}");
            std::process::exit(1);
        });
    println!(
        "broadcast server on ws://{}/ ({workers} workers)",
        server.local_addr()
    );
    // Ctrl-C or SIGTERM: close every connection with 1001 after what is queued, then exit.
    serve::until_signal(server, "broadcast");
}
