//! Echo server on tokio-tungstenite, as its `examples/echo-server.rs`: `accept_async`, split, and
//! forward every text/binary message back. Run: `tt-echo 127.0.0.1:9001 1`.

use futures_util::{future, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let (addr, workers) = peer_tokio_tungstenite::args();
    peer_tokio_tungstenite::runtime(workers).block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        eprintln!("tt-echo listening on {addr} with {workers} worker thread(s)");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(accept_connection(stream));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
}

async fn accept_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    // Only data messages are echoed; tungstenite answers pings and closes itself.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}
