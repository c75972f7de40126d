//! Broadcast server on tokio-tungstenite, as its `examples/server.rs`: every connection joins one
//! room (a map of per-client unbounded channels); every data message a client sends goes to every
//! connection in the room, the sender included. Run: `tt-broadcast 127.0.0.1:9001 1`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::{future, pin_mut, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

type Room = Arc<Mutex<HashMap<u64, UnboundedSender<Message>>>>;

fn main() {
    let (addr, workers) = peer_tokio_tungstenite::args();
    peer_tokio_tungstenite::runtime(workers).block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        eprintln!("tt-broadcast listening on {addr} with {workers} worker thread(s)");
        let room = Room::default();
        let ids = AtomicU64::new(0);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(handle_connection(room.clone(), stream, id));
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
}

async fn handle_connection(room: Room, stream: TcpStream, id: u64) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (tx, rx) = unbounded();
    room.lock().unwrap().insert(id, tx);

    let (outgoing, incoming) = ws.split();
    let publish = incoming.try_for_each(|msg| {
        if msg.is_text() || msg.is_binary() {
            // Message payloads are `Bytes`: cloning one per subscriber does not copy it.
            for sub in room.lock().unwrap().values() {
                let _ = sub.unbounded_send(msg.clone());
            }
        }
        future::ok(())
    });
    let deliver = rx.map(Ok).forward(outgoing);

    pin_mut!(publish, deliver);
    future::select(publish, deliver).await;
    room.lock().unwrap().remove(&id);
}
