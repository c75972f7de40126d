//! Shared start-up for the peer binaries: `BIN [ADDR] [WORKERS]`, a tokio multi-thread runtime
//! with `worker_threads = WORKERS` (default 1), and hyper's HTTP/1.1 server with upgrades, as the
//! fastwebsockets examples serve connections.

use std::future::Future;
use std::net::SocketAddr;

use fastwebsockets::{upgrade, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

/// `(addr, workers)` from the command line.
pub fn args() -> (SocketAddr, usize) {
    let mut it = std::env::args().skip(1);
    let addr = it.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let workers = it
        .next()
        .map(|w| w.parse().expect("WORKERS must be a number"))
        .unwrap_or(1);
    (addr.parse().expect("ADDR must be host:port"), workers)
}

/// Serve WebSocket upgrades on `addr` with `workers` runtime threads; each upgraded connection is
/// handed to `handle` on its own task (unconstrained, as the examples do).
pub fn serve<F, Fut>(name: &str, handle: F)
where
    F: Fn(upgrade::UpgradeFut) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), WebSocketError>> + Send + 'static,
{
    let (addr, workers) = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        eprintln!("{name} listening on {addr} with {workers} worker thread(s)");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let service = service_fn(move |req| server_upgrade(req, handle.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await;
            });
        }
    });
}

async fn server_upgrade<F, Fut>(
    mut req: Request<Incoming>,
    handle: F,
) -> Result<Response<Empty<Bytes>>, WebSocketError>
where
    F: Fn(upgrade::UpgradeFut) -> Fut,
    Fut: Future<Output = Result<(), WebSocketError>> + Send + 'static,
{
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(tokio::task::unconstrained(handle(fut)));
    Ok(response)
}
