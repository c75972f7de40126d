//! What the Redis bridge's threads share ([`Link`]) and the reconnect logic of its two
//! connections, publishing and subscribing ([`Redial`]): written once, used by both loops in
//! redis.rs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::runtime::bridge::BridgeNode;

/// Connecting gives up after this long (then the backoff applies).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A command (a pipeline, a SUBSCRIBE) that has no answer after this long fails its connection.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the Redis bridge's three threads share.
pub(super) struct Link {
    pub(super) client: redis::Client,
    pub(super) prefix: String,
    pub(super) node_id: u64,
    pub(super) node: BridgeNode,
    pub(super) stop: Arc<AtomicBool>,
    /// Whether each connection (publishing, subscribing) is up: `bridge_connected` is both.
    pub(super) pub_up: AtomicBool,
    pub(super) sub_up: AtomicBool,
}

impl Link {
    fn update_connected(&self) {
        let up = self.pub_up.load(Ordering::Relaxed) && self.sub_up.load(Ordering::Relaxed);
        self.node.set_connected(up);
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Which of the bridge's two Redis connections a [`Redial`] keeps up.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Publish,
    Subscribe,
}

/// The reconnect logic both connections share, written once: connecting with backoff (50 ms
/// doubling to 2 s, woken early by a stop), the warning when Redis is lost and the info line and
/// `bridge_reconnects` when it is back, and this side's half of `bridge_connected`.
pub(super) struct Redial<'a> {
    link: &'a Link,
    side: Side,
    backoff: Duration,
    /// A connection was lost or a try failed: the next [`Redial::up`] is counted a reconnect.
    lost: bool,
}

impl<'a> Redial<'a> {
    pub(super) fn new(link: &'a Link, side: Side) -> Self {
        Redial {
            link,
            side,
            backoff: BACKOFF_MIN,
            lost: false,
        }
    }

    /// A new connection, after as many tries as it takes, or `None` once the bridge stops.
    /// `waiting` runs before each pause between tries.
    pub(super) fn connect(&mut self, mut waiting: impl FnMut()) -> Option<redis::Connection> {
        loop {
            match self.open() {
                Ok(c) => return Some(c),
                Err(e) => {
                    if !self.lost {
                        let verb = match self.side {
                            Side::Publish => "publish",
                            Side::Subscribe => "subscribe",
                        };
                        log::warn!("redis bridge: cannot reach Redis to {verb}: {e}");
                    }
                    self.down();
                    if self.link.stopping() {
                        return None;
                    }
                    waiting();
                    self.pause();
                    // Stopped during the pause: the subscribing side is done, the publishing
                    // side tries once more to send what is queued.
                    if let (Side::Subscribe, true) = (self.side, self.link.stopping()) {
                        return None;
                    }
                }
            }
        }
    }

    fn open(&self) -> redis::RedisResult<redis::Connection> {
        let c = self
            .link
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)?;
        // The subscribing side sets its timeouts on the pub/sub view of the connection.
        if let Side::Publish = self.side {
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
        }
        Ok(c)
    }

    fn flag(&self) -> &AtomicBool {
        match self.side {
            Side::Publish => &self.link.pub_up,
            Side::Subscribe => &self.link.sub_up,
        }
    }

    /// The connection is ready. True if it was lost before: then the reconnect is counted
    /// (and the caller logs it).
    pub(super) fn up(&mut self) -> bool {
        self.flag().store(true, Ordering::Relaxed);
        self.link.update_connected();
        if !self.lost {
            return false;
        }
        self.lost = false;
        self.link.node.count_reconnect();
        true
    }

    /// The connection is lost (or the bridge is stopping): this side is down.
    pub(super) fn down(&mut self) {
        self.lost = true;
        self.flag().store(false, Ordering::Relaxed);
        self.link.update_connected();
    }

    /// The connection failed after it was made: down, then wait out the backoff.
    pub(super) fn failed(&mut self) {
        self.down();
        self.pause();
    }

    /// Sleep for the backoff, waking early when the bridge stops, and double it.
    pub(super) fn pause(&mut self) {
        let until = Instant::now() + self.backoff;
        while !self.link.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Start the backoff over (the connection served well).
    pub(super) fn reset(&mut self) {
        self.backoff = BACKOFF_MIN;
    }
}
