//! Broadcast server on fastwebsockets: hyper upgrade, the socket split into read and write halves
//! (as `examples/echo_server_split.rs`), `FragmentCollectorRead`, auto-pong and auto-close on.
//! Every connection joins one room (a map of per-client unbounded channels feeding its write
//! half); every data message a client sends goes to every connection, the sender included.
//!
//! fastwebsockets writes each frame straight to the socket. So that a burst of publishes costs one
//! write per subscriber rather than one per message (as tokio-tungstenite's `forward` batches by
//! flushing only when its channel runs dry), the write half sits behind a `BufWriter`, and the
//! writer task writes everything queued before it flushes.
//! Run: `fws-broadcast 127.0.0.1:9001 1`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use fastwebsockets::{upgrade, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use hyper::body::Bytes;
use tokio::io::BufWriter;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// What a connection's writer task sends: a published message (shared, not copied), or a control
/// frame the reader owes the peer (pong, close reply).
enum Out {
    Data(OpCode, Bytes),
    Control(OpCode, Vec<u8>),
}

type Room = Mutex<HashMap<u64, UnboundedSender<Out>>>;

fn room() -> &'static Room {
    static ROOM: OnceLock<Room> = OnceLock::new();
    ROOM.get_or_init(Room::default)
}

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let mut ws = fut.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let (rx, mut tx) = ws.split(|s| {
        let (r, w) = tokio::io::split(s);
        (r, BufWriter::new(w))
    });
    let mut rx = FragmentCollectorRead::new(rx);

    let id = IDS.fetch_add(1, Ordering::Relaxed);
    let (out_tx, mut out_rx) = unbounded_channel::<Out>();
    room().lock().unwrap().insert(id, out_tx.clone());

    let writer = tokio::spawn(async move {
        while let Some(mut out) = out_rx.recv().await {
            loop {
                let (opcode, close) = match &out {
                    Out::Data(op, _) => (*op, false),
                    Out::Control(op, _) => (*op, *op == OpCode::Close),
                };
                let payload = match &out {
                    Out::Data(_, b) => Payload::Borrowed(b),
                    Out::Control(_, v) => Payload::Borrowed(v),
                };
                if tx
                    .write_frame(Frame::new(true, opcode, None, payload))
                    .await
                    .is_err()
                    || close
                {
                    let _ = tx.flush().await;
                    return;
                }
                match out_rx.try_recv() {
                    Ok(next) => out = next,
                    Err(_) => break,
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
        }
    });

    let result = async {
        loop {
            let frame = rx
                .read_frame(&mut |obligated: Frame<'_>| {
                    let _ = out_tx.send(Out::Control(obligated.opcode, obligated.payload.to_vec()));
                    async { Ok::<(), std::io::Error>(()) }
                })
                .await?;
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => {
                    let msg = Bytes::copy_from_slice(&frame.payload);
                    for sub in room().lock().unwrap().values() {
                        let _ = sub.send(Out::Data(frame.opcode, msg.clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    room().lock().unwrap().remove(&id);
    drop(out_tx);
    let _ = writer.await;
    result
}

fn main() {
    peer_fastwebsockets::serve("fws-broadcast", handle_client);
}
