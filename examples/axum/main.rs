//! volley inside an axum app, on one port: a JSON API, a page and `/ws` served by volley.
//!
//!     cargo run --release --features axum --example axum      # then open http://127.0.0.1:3000/
//!     curl -X POST localhost:3000/api/publish -H 'content-type: application/json' \
//!          -d '{"topic":"lobby","user":"","text":"hello from REST"}'
//!     curl localhost:3000/api/messages
//!
//! Look at: app.rs's `ws` route (three lines) and the `Rooms` factory, which defers each
//! upgrade to a tokio task checking the token against an async store; `Member`, a synchronous
//! handler that hands its messages to a tokio task. Ctrl-C stops both servers gracefully
//! (WebSocket clients get close 1001).

mod app;

use std::net::SocketAddr;

use app::{AppState, Rooms};
use volley::{Config, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let users = app::users();
    let (lines, rx) = tokio::sync::mpsc::unbounded_channel();
    let rooms = Rooms {
        users,
        lines,
        runtime: tokio::runtime::Handle::current(),
    };
    // No listener of its own: axum's port brings the connections.
    let mut config = Config::default();
    config.ping_interval = Some(std::time::Duration::from_secs(20));
    let volley = Server::builder()
        .config(config)
        .without_listener()
        .start(rooms)?;
    let state = AppState {
        volley: volley.handle(),
        log: Default::default(),
    };
    tokio::spawn(app::log_lines(rx, state.clone()));
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("http://{}/?token=alice-token", listener.local_addr()?);
    let handle = volley.handle();
    let app = app::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            handle.shutdown();
        })
        .await?;
    volley.handle().stopped().await;
    Ok(())
}
