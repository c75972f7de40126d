//! Echo server on fastwebsockets' upgrade under axum, as fastwebsockets' `examples/axum.rs`:
//! `IncomingUpgrade` as the extractor, `FragmentCollector`, auto-pong and auto-close on.
//! Run: `axf-echo 127.0.0.1:9001 1` (ADDR, tokio worker threads).

use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use axum::Router;
use fastwebsockets::upgrade::{IncomingUpgrade, UpgradeFut};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};

async fn ws(up: IncomingUpgrade) -> impl IntoResponse {
    let (response, fut) = up.upgrade().expect("upgrade");
    tokio::task::spawn(tokio::task::unconstrained(async move {
        let _ = echo(fut).await;
    }));
    response
}

async fn echo(fut: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
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
        eprintln!("axf-echo listening on {addr} with {workers} worker thread(s)");
        let listener = listener.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        axum::serve(listener, Router::new().fallback(ws))
            .await
            .expect("serve");
    });
}
