//! Echo server on fastwebsockets, as its `examples/echo_server.rs`: hyper upgrade,
//! `FragmentCollector`, auto-pong and auto-close on. Run: `fws-echo 127.0.0.1:9001 1`.

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

fn main() {
    peer_fastwebsockets::serve("fws-echo", handle_client);
}
