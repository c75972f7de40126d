//! The test-and-benchmark echo server (cargo example `echo-harness`): every text or binary
//! message comes back unchanged, with the limits, deflate modes, listeners and switches that the
//! scripts need. It is the server of the Autobahn conformance run (scripts/conformance.sh), the
//! interop clients (scripts/interop.sh), the chaos soak and leak check (scripts/chaos.sh) and the
//! comparisons and memory measurements in loadtest/ (compare.sh, compare-uws.sh,
//! compare-uws-mt.sh, deflate-memory.sh). On `/room` a message goes to every connection on
//! `/room` instead (the chaos soak's broadcast clients). A first example to read is
//! examples/echo.rs; this one is what the scripts drive.
//!
//! Run: `cargo run --release --example echo-harness -- [ADDR] [WORKERS] [off|shared|dedicated|dedicated:C/D]`
//! (default `127.0.0.1:9001`, workers = available parallelism, deflate `shared`; `dedicated:512/4k`
//! is `Config::dedicated_deflate` with those compressor/decompressor windows), then point any
//! WebSocket client at `ws://ADDR/`. `VOLLEY_ACCEPT=acceptor` uses one acceptor thread instead of
//! a `SO_REUSEPORT` listener per worker (for comparing the two); `VOLLEY_PING_MS=1000` sets the
//! heartbeat interval (default 30 s). `VOLLEY_PER_IP=1` turns the per-IP limits on, set too high
//! to refuse anything (what their bookkeeping costs). `VOLLEY_STREAM_OVER=N` receives messages
//! over N bytes in chunks (`Streaming::over(N)`) and echoes each chunk at once as a fragment, so a
//! message of any size passes through in bounded memory (the conformance run with streaming on).
//! Set `RUST_LOG=debug` to watch connections come and go.
//! With the `tls` feature, `VOLLEY_TLS_ADDR=127.0.0.1:9443 VOLLEY_TLS_CERT=cert.pem
//! VOLLEY_TLS_KEY=key.pem` adds a wss:// listener beside the plain one (SIGHUP reloads the
//! files).

#[path = "../../examples/common/log.rs"]
mod logger;
#[path = "../../examples/common/serve.rs"]
mod serve;
#[cfg(feature = "tls")]
#[path = "../../examples/common/tls.rs"]
mod tls;

use volley::{
    AcceptMode, Chunk, Config, Context, DeflateMode, DeflateWindow, Handler, Message, Request,
    Server, Streaming, Upgrade,
};

/// On `/room`, every message goes to everyone in one room (the chaos soak's broadcast
/// clients); on any other path it comes back to its sender.
enum Echo {
    Echo,
    Room,
}

impl Handler for Echo {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        if let Echo::Room = self {
            ctx.subscribe("room");
            // Room messages are published whole (a chunk cannot be published on its own).
            ctx.set_streaming(None);
        }
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        match self {
            Echo::Echo => {
                let _ = ctx.send(msg);
            }
            Echo::Room => ctx.publish("room", msg),
        }
    }
    /// A streamed message goes back fragment by fragment as its chunks come.
    fn on_chunk(&mut self, ctx: &mut Context<'_>, chunk: Chunk) {
        let last = chunk.is_last();
        let _ = match chunk.data() {
            Message::Text(t) => ctx.send_text_fragment(t.as_str(), last),
            Message::Binary(b) => ctx.send_binary_fragment(b.clone(), last),
        };
    }
}

fn main() {
    logger::init();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_string());
    let mut config = Config::default()
        // The conformance suite sends messages of up to 16 MiB and expects them back.
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .max_outbound_bytes(64 << 20)
        // Compress every message on deflate connections (the conformance runner expects it).
        .compression_threshold(0);
    if let Some(w) = args.next() {
        config = config.workers(w.parse().expect("WORKERS must be a number"));
    }
    if let Ok(ms) = std::env::var("VOLLEY_PING_MS") {
        let ms = ms
            .parse()
            .expect("VOLLEY_PING_MS must be a number of milliseconds");
        config = config.ping_interval(Some(std::time::Duration::from_millis(ms)));
    }
    if std::env::var("VOLLEY_PER_IP").as_deref() == Ok("1") {
        // Per-IP limits on, set high enough never to refuse: what the bookkeeping costs.
        config = config
            .max_connections_per_ip(Some(1 << 30))
            .handshakes_per_ip(Some(volley::Rate::new(1e9, u32::MAX)));
    }
    if let Ok(over) = std::env::var("VOLLEY_STREAM_OVER") {
        let over = over
            .parse()
            .expect("VOLLEY_STREAM_OVER must be a number of bytes");
        config = config.streaming(Some(Streaming::over(over)));
    }
    if std::env::var("VOLLEY_ACCEPT").as_deref() == Ok("acceptor") {
        config = config.accept_mode(AcceptMode::Acceptor);
    }
    if let Some(mode) = args.next() {
        config = match mode.as_str() {
            "off" => config.deflate(DeflateMode::Off),
            "shared" => config.deflate(DeflateMode::Shared),
            "dedicated" => config.deflate(DeflateMode::Dedicated),
            // dedicated:COMPRESSOR/DECOMPRESSOR windows, e.g. dedicated:512/4k
            other => match other
                .strip_prefix("dedicated:")
                .and_then(|w| w.split_once('/'))
                .map(|(c, d)| (c.parse::<DeflateWindow>(), d.parse::<DeflateWindow>()))
            {
                Some((Ok(c), Ok(d))) => config.dedicated_deflate(c, d),
                _ => panic!(
                    "unknown deflate mode {other:?}: use off, shared, dedicated or \
                     dedicated:WINDOW/WINDOW (512, 1k, 2k, 4k, 8k, 16k, 32k)"
                ),
            },
        };
    }
    let workers = config.workers;
    let builder = Server::builder().config(config).bind(addr);
    #[cfg(feature = "tls")]
    let (builder, pem) = match (
        std::env::var("VOLLEY_TLS_ADDR"),
        std::env::var_os("VOLLEY_TLS_CERT"),
        std::env::var_os("VOLLEY_TLS_KEY"),
    ) {
        (Ok(tls_addr), Some(cert), Some(key)) => {
            let pem = tls::Pem {
                cert: cert.into(),
                key: key.into(),
            };
            (builder.bind_tls(tls_addr, pem.load()), Some(pem))
        }
        _ => (builder, None),
    };
    let server = builder
        .start(|req: &Request<'_>| {
            Upgrade::accept(if req.path() == "/room" {
                Echo::Room
            } else {
                Echo::Echo
            })
        })
        .unwrap_or_else(|e| {
            eprintln!("echo: cannot start: {e}");
            std::process::exit(1);
        });
    println!(
        "echo server on ws://{}/ ({workers} workers)",
        server.local_addr()
    );
    #[cfg(feature = "tls")]
    if let Some(pem) = pem {
        println!("echo server on wss://{}/", server.local_addrs()[1]);
        #[cfg(unix)]
        pem.reload_on_sighup(server.handle());
    }
    // Ctrl-C or SIGTERM: close every connection with 1001 after what is queued, then exit.
    serve::until_signal(server, "echo");
}
