//! A `redis-server` of the test's own (feature `redis` tests): started from PATH on a free
//! loopback port in its own directory, without persistence, and killed on drop. A missing
//! `redis-server` fails the test with a clear message: it never skips.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A `redis-server` this test started: its own port and directory, no persistence; killed on
/// drop.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

impl Redis {
    pub fn start() -> Redis {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!(
            "volley-redis-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            port,
            dir,
            child: None,
        };
        r.spawn();
        r
    }

    /// Start (again) on the same port.
    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): these tests need Debian's redis-server on \
                     PATH (apt-get install redis-server; scripts/test.sh installs it)"
                )
            });
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = self.conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// `PUBSUB CHANNELS pattern`, sorted.
    pub fn channels(&self, pattern: &str) -> Vec<String> {
        let mut c = self.conn().expect("redis");
        let mut v: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg(pattern)
            .query(&mut c)
            .expect("PUBSUB CHANNELS");
        v.sort();
        v
    }

    /// Subscribers (connections) of `channel`: `PUBSUB NUMSUB`.
    pub fn numsub(&self, channel: &str) -> i64 {
        let Ok(mut c) = self.conn() else { return -1 };
        let r: redis::RedisResult<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut c);
        r.map(|(_, n)| n).unwrap_or(-1)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
