//! Echo server on axum's `WebSocketUpgrade` (tokio-tungstenite underneath), as axum's
//! `examples/websockets`: every path upgrades, and each text/binary message goes back.
//! Run: `axt-echo 127.0.0.1:9001 1` (ADDR, tokio worker threads).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;

async fn ws(up: WebSocketUpgrade) -> Response {
    up.max_message_size(64 << 20).on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(msg).await.is_err() {
                    return;
                }
            }
            // tungstenite answers pings and the close itself; `recv` ends after the close.
            _ => {}
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let workers: usize = args.next().map_or(1, |w| w.parse().expect("WORKERS"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        eprintln!("axt-echo listening on {addr} with {workers} worker thread(s)");
        let listener = listener.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        axum::serve(listener, Router::new().fallback(ws))
            .await
            .expect("serve");
    });
}
