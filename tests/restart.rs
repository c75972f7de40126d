//! A zero-downtime restart on `SO_REUSEPORT`, with two real processes: the old server (A) runs,
//! the new one (B) binds the same port and starts accepting, A gets SIGTERM and stops accepting,
//! closes its connections with 1012 (service restart) and exits. Clients that keep connecting
//! throughout never see a refused or failed connection; A's clients are told to reconnect and
//! land on B.
//!
//! The server processes are this test binary run again with `--ignored --exact restart_child`.

#![cfg(target_os = "linux")]

mod util;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::{Client, Got};
use volley::{CloseCode, Config, Context, Handler, Message, Request, Server, Upgrade};

/// Greets with the process's name, then echoes.
struct Greeter(&'static str);
impl Handler for Greeter {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx.send(format!("hello from {}", self.0));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

/// The server process: not a test on its own (ignored); the restart test starts it.
#[test]
#[ignore = "a server process for restart_without_refused_connections"]
fn restart_child() {
    let port = std::env::var("VOLLEY_RESTART_PORT").expect("started by the restart test");
    let name: &'static str = std::env::var("VOLLEY_RESTART_NAME").unwrap().leak();
    let server = Server::builder()
        .config(Config::default().workers(2))
        .bind(format!("127.0.0.1:{port}"))
        .start(move |_r: &Request<'_>| Upgrade::accept(Greeter(name)))
        .expect("bind with SO_REUSEPORT next to the other process");
    // SIGTERM: stop accepting, close every connection with 1012 after what is queued, exit.
    let _guard = server
        .handle()
        .shutdown_on_signals(
            CloseCode::SERVICE_RESTART,
            "restart",
            Duration::from_secs(5),
        )
        .unwrap();
    println!("READY {name}");
    server.run().unwrap();
    println!("EXITED {name}");
}

fn spawn_server(port: u16, name: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "restart_child", "--nocapture"])
        .env("VOLLEY_RESTART_PORT", port.to_string())
        .env("VOLLEY_RESTART_NAME", name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_for_line(&mut out, &format!("READY {name}"));
    (child, out)
}

fn wait_for_line(out: &mut BufReader<ChildStdout>, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the server process ended before printing {want:?}"
        );
        if line.trim() == want {
            return;
        }
    }
}

/// What one connection attempt saw.
#[derive(Debug, PartialEq)]
enum Visit {
    /// Greeted by this server and echoed.
    Served(String),
    /// Told to reconnect (1012) before the echo came back: a restart, not a failure.
    Restarted,
    /// Anything else: refused, reset, a failed upgrade.
    Failed(String),
}

fn visit(addr: SocketAddr) -> Visit {
    let stream = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return Visit::Failed(format!("connect: {e}")),
    };
    let mut c = match Client::over(stream, "/") {
        Ok(c) => c,
        Err(head) => return Visit::Failed(format!("upgrade: {head:?}")),
    };
    let name = match c.next() {
        Got::Msg(m) => m.as_text().unwrap_or_default().to_string(),
        other => return Visit::Failed(format!("greeting: {other:?}")),
    };
    c.send_text("echo");
    match c.next() {
        Got::Msg(m) if m.as_text() == Some("echo") => {}
        Got::Close(Some(f)) if f.code == CloseCode::SERVICE_RESTART => {
            c.send_close(1012, "");
            return Visit::Restarted;
        }
        other => return Visit::Failed(format!("echo: {other:?}")),
    }
    c.send_close(1000, "");
    Visit::Served(name)
}

#[test]
fn restart_without_refused_connections() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (mut a, mut a_out) = spawn_server(port, "A");

    // A client of A that stays connected through the restart.
    let mut long = Client::connect(addr);
    assert_eq!(long.recv_text(), "hello from A");

    // Clients that keep connecting, one after another, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let visits = Arc::new(Mutex::new(Vec::<(Instant, Visit)>::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, visits) = (stop.clone(), visits.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let v = visit(addr);
                    visits.lock().unwrap().push((Instant::now(), v));
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    let (mut b, _b_out) = spawn_server(port, "B");
    std::thread::sleep(Duration::from_millis(300));
    // The restart: A stops accepting, tells its clients 1012, drains, exits.
    let status = Command::new("kill")
        .args(["-TERM", &a.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    match long.next() {
        Got::Close(Some(f)) => assert_eq!(
            (f.code, f.reason.as_str()),
            (CloseCode::SERVICE_RESTART, "restart")
        ),
        other => panic!("A's long-lived client got {other:?}"),
    }
    long.send_close(1012, "");
    drop(long);
    wait_for_line(&mut a_out, "EXITED A");
    assert!(a.wait().unwrap().success());
    let a_gone = Instant::now();
    // The long-lived client reconnects, to B.
    let mut again = Client::connect(addr);
    assert_eq!(again.recv_text(), "hello from B");
    again.send_close(1000, "");
    drop(again);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().unwrap();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    let _ = b.wait();

    let visits = visits.lock().unwrap();
    let count = |f: &dyn Fn(&Visit) -> bool| visits.iter().filter(|(_, v)| f(v)).count();
    let failed: Vec<_> = visits
        .iter()
        .filter(|(_, v)| matches!(v, Visit::Failed(_)))
        .collect();
    let by_a = count(&|v| *v == Visit::Served("hello from A".into()));
    let by_b = count(&|v| *v == Visit::Served("hello from B".into()));
    let restarted = count(&|v| *v == Visit::Restarted);
    eprintln!(
        "{} visits: {by_a} served by A, {by_b} by B, {restarted} told to reconnect, {} failed",
        visits.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed visits: {failed:?}");
    assert!(by_a > 0 && by_b > 0, "both servers served clients");
    let a_after = visits
        .iter()
        .filter(|(t, v)| *t > a_gone && *v == Visit::Served("hello from A".into()))
        .count();
    assert_eq!(a_after, 0, "nobody is served by A after it exited");
}
