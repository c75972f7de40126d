//! Chat: a multi-room chat server with its web page, on one port. The showcase of how an
//! application implements volley's `Handler` and `Factory` (see app.rs).
//!
//! Run: `cargo run --release --features metrics --example chat` and open the printed address in
//! two browser tabs; `/stats` plots the server's live statistics, `/metrics` is the Prometheus
//! exposition.
//! Flags (`--help`): `--host`, `--port` (default 127.0.0.1:8080, port 0 picks a free one),
//! `--allow-origin ORIGIN` (repeatable; default: pages from this server only), `--rate N/SECS`
//! (default 20/10), `--ping-interval SECS` and `--pong-timeout SECS` (default 15 and 10: a
//! vanished tab leaves its room within 25 s), `--workers N`, `--tls-cert FILE --tls-key FILE`
//! (https and wss; `--features metrics,tls`; SIGHUP reloads the files), `--redis URL` (several
//! chat servers sharing rooms, history and nicknames through Redis; `--features metrics,redis`).
//! `RUST_LOG=debug` shows connections come and go.
//!
//! What to look at: app.rs (the handler), protocol.rs (the JSON messages and their checks),
//! state.rs (nicknames, rooms, history), app.js (the page's client).

#[path = "../common/log.rs"]
mod logger;
#[path = "../common/serve.rs"]
mod serve;
#[cfg(feature = "tls")]
#[path = "../common/tls.rs"]
mod tls;

mod app;

use std::time::Duration;

use app::RateLimit;
use app::{ChatApp, ChatConfig, Origins};
use volley::{Config, Server};

const USAGE: &str = "\
usage: chat [--host HOST] [--port PORT] [--allow-origin ORIGIN]... [--rate N/SECS]
            [--ping-interval SECS] [--pong-timeout SECS] [--workers N]
            [--tls-cert FILE --tls-key FILE] [--redis URL]

  --host HOST            address to listen on (default 127.0.0.1)
  --port PORT            port to listen on; 0 picks a free one (default 8080)
  --allow-origin ORIGIN  a page origin allowed to connect, e.g. https://chat.example.com;
                         repeatable; '*' allows any (default: pages served by this server)
  --rate N/SECS          per-connection rate limit (default 20/10); closed with 1008 after
                         10 refused messages in a row
  --ping-interval SECS   ping a silent client after this long (default 15)
  --pong-timeout SECS    drop it if it stays silent this much longer (default 10)
  --workers N            worker threads (default: one per core)
  --tls-cert FILE        PEM certificate chain: serve the page over https and the socket
  --tls-key FILE         over wss (needs the `tls` feature; SIGHUP reloads both files)
  --redis URL            share rooms with the other chat servers on this Redis, e.g.
                         redis://127.0.0.1:6379: messages, joins and leaves, history,
                         members, unique nicknames (needs the `redis` feature)";

/// Everything the flags set.
struct Options {
    host: String,
    port: u16,
    config: Config,
    chat: ChatConfig,
    /// `--tls-cert` and `--tls-key`: serve the page over https and the socket over wss.
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    /// `--redis URL`.
    redis: Option<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        host: "127.0.0.1".into(),
        port: 8080,
        config: Config::default()
            .ping_interval(Some(Duration::from_secs(15)))
            .pong_timeout(Duration::from_secs(10))
            // Chat messages are small: anything over 16 KiB closes the connection (1009). The
            // chat itself answers messages over 8 KiB with an error (protocol::MAX_INPUT).
            .max_message_size(16 << 10)
            .max_frame_size(16 << 10),
        chat: ChatConfig::default(),
        tls_cert: None,
        tls_key: None,
        redis: None,
    };
    let mut origins = Vec::new();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: {what}, not {value:?}");
        match flag.as_str() {
            "--host" => opts.host = value,
            "--port" => opts.port = value.parse().map_err(|_| bad("a port number"))?,
            "--allow-origin" => origins.push(value),
            "--rate" => {
                let (n, secs) = value.split_once('/').ok_or_else(|| bad("N/SECS"))?;
                let messages: u32 = n.parse().map_err(|_| bad("N/SECS"))?;
                let secs: f64 = secs.parse().map_err(|_| bad("N/SECS"))?;
                if messages == 0 || !(secs > 0.0 && secs < 1e6) {
                    return Err(bad("a positive N/SECS"));
                }
                let window = Duration::from_secs_f64(secs);
                opts.chat.rate = RateLimit {
                    messages,
                    window,
                    ..RateLimit::default()
                };
            }
            "--ping-interval" => {
                let secs: u64 = value.parse().map_err(|_| bad("seconds"))?;
                opts.config.ping_interval = Some(Duration::from_secs(secs.max(1)));
            }
            "--pong-timeout" => {
                let secs: u64 = value.parse().map_err(|_| bad("seconds"))?;
                opts.config.pong_timeout = Duration::from_secs(secs.max(1));
            }
            "--workers" => opts.config.workers = value.parse().map_err(|_| bad("a number"))?,
            "--tls-cert" => opts.tls_cert = Some(value.into()),
            "--tls-key" => opts.tls_key = Some(value.into()),
            "--redis" => opts.redis = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if origins.iter().any(|o| o == "*") {
        opts.chat.origins = Origins::Any;
    } else if !origins.is_empty() {
        opts.chat.origins = Origins::List(origins);
    }
    Ok(opts)
}

fn main() {
    logger::init();
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        if e.is_empty() {
            println!("{USAGE}");
            std::process::exit(0);
        }
        eprintln!("chat: {e}\n\n{USAGE}");
        std::process::exit(2);
    });
    let addr = if opts.host.contains(':') {
        format!("[{}]:{}", opts.host, opts.port) // IPv6
    } else {
        format!("{}:{}", opts.host, opts.port)
    };
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut builder = Server::builder()
        .config(opts.chat.server_config(opts.config))
        // Prometheus scrapes this; the /stats page plots it.
        .metrics_path("/metrics");
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut chat = opts.chat;
    if let Some(url) = opts.redis {
        // Rooms are topics: the bridge carries every publish to the other servers' members.
        #[cfg(feature = "redis")]
        {
            let bridge = volley::RedisBridge::new(&url).unwrap_or_else(|e| {
                eprintln!("chat: --redis: {e}");
                std::process::exit(2);
            });
            builder = builder.bridge(bridge.prefix("chat:room:"));
            chat.redis = Some(url);
        }
        #[cfg(not(feature = "redis"))]
        {
            eprintln!("chat: --redis {url} needs the redis feature (--features metrics,redis)");
            std::process::exit(2);
        }
    }
    #[cfg(feature = "tls")]
    let pem = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(tls::Pem {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let (builder, scheme) = match (opts.tls_cert, opts.tls_key) {
        (None, None) => (builder.bind(addr), "http"),
        #[cfg(feature = "tls")]
        (Some(_), Some(_)) => {
            let tls = pem
                .as_ref()
                .map(tls::Pem::load)
                .unwrap_or_else(|| unreachable!());
            (builder.bind_tls(addr, tls), "https")
        }
        #[cfg(not(feature = "tls"))]
        (Some(_), Some(_)) => {
            eprintln!("chat: --tls-cert needs the tls feature (--features metrics,tls)");
            std::process::exit(2);
        }
        _ => {
            eprintln!("chat: --tls-cert and --tls-key go together\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let server = builder.start(ChatApp::new(chat)).unwrap_or_else(|e| {
        eprintln!("chat: cannot start: {e}");
        std::process::exit(1);
    });
    #[cfg(all(feature = "tls", unix))]
    if let Some(pem) = pem {
        pem.reload_on_sighup(server.handle());
    }
    // Scripts (scripts/browser.sh) read the address from this line.
    println!(
        "chat: open {scheme}://{}/ in a browser",
        server.local_addr()
    );
    // Ctrl-C or SIGTERM: close every connection with 1001 after what is queued, then exit.
    serve::until_signal(server, "chat");
}
