//! A factory that panics answers that request with 500; the worker, and every connection on it,
//! goes on (as with a panicking handler, which closes only its own connection with 1011).

mod util;

use util::*;
use volley::{Context, Factory, Handler, Message, Request, Response, Upgrade};

struct Echo;
impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

/// Panics in `upgrade` for `/boom`, in `http` for `/boom-page`.
struct Fragile;
impl Factory for Fragile {
    type Handler = Echo;
    fn upgrade(&self, req: &Request<'_>) -> Upgrade<Echo> {
        if req.path() == "/boom" {
            panic!("factory bug in upgrade");
        }
        Upgrade::accept(Echo)
    }
    fn http(&self, req: &Request<'_>) -> Response {
        if req.path() == "/boom-page" {
            panic!("factory bug in http");
        }
        Response::ok("text/plain", "fine")
    }
}

#[test]
fn factory_panics_answer_500_and_the_worker_keeps_serving() {
    // One worker: every connection below shares the thread the factory panics on.
    let s = TestServer::start(config().workers(1), Fragile);
    let mut first = Client::connect(s.addr);
    first.send_text("before");
    assert_eq!(first.recv_text(), "before");

    let head = raw_request(s.addr, upgrade_request("/boom", "").as_bytes());
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    let page = raw_request(s.addr, b"GET /boom-page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 500"), "{page}");
    let fine = raw_request(s.addr, b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        fine.starts_with("HTTP/1.1 200") && fine.ends_with("fine"),
        "{fine}"
    );

    // The connection opened before the panics still echoes, and new upgrades still work.
    first.send_text("after");
    assert_eq!(first.recv_text(), "after");
    let mut second = Client::connect(s.addr);
    second.send_binary(b"new");
    assert_eq!(second.recv().as_bytes(), b"new");
    assert_eq!(s.handle.stats().handshakes_rejected, 1);
}
