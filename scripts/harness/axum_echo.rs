//! The echo server through the axum hand-off, for the interop and benchmark scripts
//! (scripts/interop.sh, loadtest/compare.sh's `volley-axum`): axum owns the port, every path is
//! a WebSocket echo served by volley. `axum-echo-harness [ADDR] [THREADS] [off|shared|dedicated]`:
//! THREADS is both volley's workers and tokio's (tokio only serves the handshakes). Prints
//! `ws://ADDR/` once listening.
//!
//!     cargo run --release --features axum --example axum-echo-harness -- 127.0.0.1:9001 1

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::Response;
use axum::Router;
use volley::integrations::axum::VolleyUpgrade;
use volley::{
    Config, Context, DeflateMode, Handler, Message, Request, Server, ServerHandle, Upgrade,
};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

async fn ws(up: VolleyUpgrade, State(volley): State<ServerHandle>) -> Response {
    up.accept_with(&volley).await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or("127.0.0.1:9001".into());
    let threads: usize = args.next().map_or(Ok(1), |t| t.parse())?;
    // As the echo harness (scripts/harness/echo.rs): large messages, every message compressed
    // on deflate connections.
    let config = Config::default()
        .workers(threads)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .max_outbound_bytes(64 << 20)
        .compression_threshold(0)
        .deflate(match args.next().as_deref() {
            Some("off") => DeflateMode::Off,
            Some("dedicated") => DeflateMode::Dedicated,
            _ => DeflateMode::Shared,
        });
    let server = Server::builder().config(config).without_listener();
    let volley = server.start(|_req: &Request<'_>| Upgrade::accept(Echo))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("ws://{}/", listener.local_addr()?);
        let app = Router::new().fallback(ws).with_state(volley.handle());
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await
    })?;
    Ok(())
}
