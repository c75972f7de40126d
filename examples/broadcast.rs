//! Broadcast server: every connection joins one room; every message a client sends is published
//! to the whole room, sender included. The server side of the loadtest `broadcast` scenario.
//!
//! Run: `cargo run --release --example broadcast -- [ADDR] [WORKERS] [REDIS_URL]`
//! (default `127.0.0.1:9002`). With `--features redis` and a Redis URL, several of these
//! servers share the room through Redis (`RedisBridge`): start two on different ports and point
//! `volley-loadtest broadcast` at both, with `--publish-url` for the publishers' server.

#[path = "common/log.rs"]
mod logger;
#[path = "common/serve.rs"]
mod serve;

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
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut builder = Server::builder().config(config).bind(addr);
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
    serve::until_signal(server, "broadcast");
}
