//! The Redis bridge (feature `redis`): topics shared across nodes through Redis pub/sub.
//!
//! Three threads per server, none of them a worker:
//!
//! - `bridge-pub` owns the publishing connection. Workers hand it publishes through a bounded
//!   channel (full: dropped and counted); it drains everything queued into one pipeline of
//!   `PUBLISH`es per round trip.
//! - `bridge-sub` owns the subscribing connection: it `SUBSCRIBE`s to a topic's channel when the
//!   topic gains its first subscriber on this node and `UNSUBSCRIBE`s when it loses its last
//!   (reading the node's topic counts, so changes reported out of order settle right), and
//!   reads messages, waking every 20 ms to apply subscription changes.
//! - `bridge-in` decodes what `bridge-sub` read and hands it to the workers in batches: all
//!   that is waiting, one command per worker.
//!
//! A message's Redis payload is binary-safe: the publishing node's id (a random u64, big-endian),
//! the opcode (1 text, 2 binary), then the payload. A node drops its own messages (it delivered
//! them locally already). A lost connection is retried with backoff (50 ms doubling to 2 s;
//! both connections through one `Redial`, in redial.rs); on reconnecting, `bridge-sub`
//! subscribes to every live topic again, and `bridge-pub` sends the batch it was holding, then
//! what waited in the queue.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::redial::{Link, Redial, Side, IO_TIMEOUT};
use crate::error::Error;
use crate::protocol::message::{Message, Utf8Bytes};
use crate::runtime::bridge::{Bridge, BridgeNode};

/// How long `bridge-sub` blocks in a read before looking at subscription changes.
const SUB_POLL: Duration = Duration::from_millis(20);
/// At most this many publishes per pipeline (fewer if the queue is shorter), and this many
/// messages per delivery batch.
const MAX_BATCH: usize = 1024;
/// Bytes before the payload in a message's Redis payload: node id, opcode.
const HEADER: usize = 9;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;

/// A [`Bridge`] through Redis pub/sub: every node connects to the same Redis, and a topic `t`
/// is the channel `PREFIX` + `t` (prefix `volley:` by default).
///
/// ```no_run
/// # fn main() -> Result<(), volley::Error> {
/// use volley::{RedisBridge, Request, Server, Upgrade};
/// # struct App;
/// # impl volley::Handler for App {}
/// let server = Server::builder()
///     .bind("0.0.0.0:8080")
///     .bridge(RedisBridge::new("redis://127.0.0.1:6379")?.prefix("chat:"))
///     .start(|_req: &Request<'_>| Upgrade::accept(App))?;
/// # Ok(()) }
/// ```
///
/// A node subscribes to a topic's channel when the topic gains its first subscriber on it
/// (within about 20 ms), so a message published elsewhere right as the first local subscriber
/// arrives may not reach it.
///
/// While Redis is unreachable local delivery goes on, publishes for other nodes wait in a
/// bounded queue ([`RedisBridge::queue`]; beyond it they are dropped and counted in
/// `Stats::bridge_dropped`), and the bridge reconnects with backoff (50 ms doubling to 2 s),
/// logging a warning when it loses Redis and an info line when it is back. Messages published
/// on other nodes meanwhile are lost (Redis pub/sub keeps nothing). A publish in a pipeline that
/// failed is sent again after reconnecting, so one may arrive twice if Redis executed it but
/// its answer was lost.
pub struct RedisBridge {
    client: redis::Client,
    prefix: String,
    queue: usize,
    node_id: u64,
    /// Set once started: where workers hand publishes and topic changes.
    out: OnceLock<Sender<(Arc<str>, Message)>>,
    interest: OnceLock<Sender<Arc<str>>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for RedisBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBridge")
            .field(
                "addr",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("prefix", &self.prefix)
            .field("queue", &self.queue)
            .field("node_id", &format_args!("{:016x}", self.node_id))
            .finish()
    }
}

impl RedisBridge {
    /// A bridge to the Redis at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `redis+unix:///path`). Nothing connects before the server starts; an invalid URL is an
    /// error here.
    pub fn new(url: &str) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(|e| {
            Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("redis URL {url:?}: {e}"),
            ))
        })?;
        Ok(RedisBridge {
            client,
            prefix: "volley:".into(),
            queue: 65_536,
            node_id: random_node_id(),
            out: OnceLock::new(),
            interest: OnceLock::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// The Redis channel of topic `t` is `prefix` + `t` (default `"volley:"`). Nodes that
    /// share topics use the same prefix; different applications on one Redis use different
    /// ones.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many outgoing publishes may wait while Redis is slow or unreachable (default
    /// 65,536); beyond that they are dropped and counted (`Stats::bridge_dropped`). Bounds the
    /// memory a Redis outage can take: this many messages, plus the pipeline that was being
    /// sent when the connection failed (at most as many again, and at most 1,024).
    pub fn queue(mut self, messages: usize) -> Self {
        self.queue = messages.max(1);
        self
    }

    /// This node's id in the messages it publishes (random per bridge).
    pub fn node_id(&self) -> u64 {
        self.node_id
    }
}

impl Bridge for RedisBridge {
    fn start(&self, node: BridgeNode) -> io::Result<()> {
        let (out, out_rx) = crossbeam_channel::bounded(self.queue);
        let (interest, interest_rx) = crossbeam_channel::unbounded();
        if self.out.set(out).is_err() || self.interest.set(interest).is_err() {
            return Err(io::Error::other("this RedisBridge is already started"));
        }
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let stop = self.stop.clone();
        let link = Arc::new(Link {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            node_id: self.node_id,
            node,
            stop,
            pub_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
        });
        let (in_tx, in_rx) = crossbeam_channel::bounded(MAX_BATCH * 4);
        let l = link.clone();
        let max_batch = MAX_BATCH.min(self.queue);
        threads.push(
            std::thread::Builder::new()
                .name("bridge-pub".into())
                .spawn(move || publish_loop(&l, &out_rx, max_batch))?,
        );
        let l = link.clone();
        threads.push(
            std::thread::Builder::new()
                .name("bridge-sub".into())
                .spawn(move || subscribe_loop(&l, &interest_rx, &in_tx))?,
        );
        let l = link;
        threads.push(
            std::thread::Builder::new()
                .name("bridge-in".into())
                .spawn(move || deliver_loop(&l, &in_rx))?,
        );
        Ok(())
    }

    fn publish(&self, topic: &Arc<str>, msg: &Message) -> bool {
        let Some(out) = self.out.get() else {
            return false;
        };
        match out.try_send((topic.clone(), msg.clone())) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    fn topic_changed(&self, topic: &Arc<str>) {
        if let Some(interest) = self.interest.get() {
            let _ = interest.send(topic.clone());
        }
    }

    fn stop(&self) {
        // `bridge-pub` sends what is queued first (if Redis is there), then all three end.
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A random id per process and bridge: the standard library's randomly keyed hasher over the
/// clock and the process id (no RNG crate needed; uniqueness, not secrecy, is what counts).
fn random_node_id() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// A message's Redis payload: node id, opcode, payload.
fn encode(node_id: u64, msg: &Message) -> Vec<u8> {
    let payload = msg.as_bytes();
    let mut v = Vec::with_capacity(HEADER + payload.len());
    v.extend_from_slice(&node_id.to_be_bytes());
    v.push(if msg.is_text() { OP_TEXT } else { OP_BINARY });
    v.extend_from_slice(payload);
    v
}

/// What a Redis payload says, if it is one of ours: the publishing node and the message.
/// Anything else (too short, an unknown opcode, text that is not UTF-8) is `None`.
fn decode(payload: Bytes) -> Option<(u64, Message)> {
    if payload.len() < HEADER {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&payload[..8]);
    let op = payload[8];
    let body = payload.slice(HEADER..);
    let msg = match op {
        OP_TEXT => Message::Text(Utf8Bytes::try_from_bytes(body).ok()?),
        OP_BINARY => Message::Binary(body),
        _ => return None,
    };
    Some((u64::from_be_bytes(id), msg))
}

// ---- bridge-pub ---------------------------------------------------------------------------

fn publish_loop(link: &Link, rx: &Receiver<(Arc<str>, Message)>, max_batch: usize) {
    let mut redial = Redial::new(link, Side::Publish);
    let mut batch: Vec<(Arc<str>, Message)> = Vec::new();
    // Connect first: while Redis is away, publishes wait in the bounded channel (and the one
    // batch that failed), and what does not fit there is dropped by `publish`.
    while let Some(mut con) = redial.connect(|| {}) {
        if redial.up() {
            log::info!("redis bridge: publishing connection to Redis is back");
        }
        match publish_on(link, &mut con, rx, max_batch, &mut batch, &mut redial) {
            Ok(()) => return,
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                log::warn!(
                    "redis bridge: lost the publishing connection ({e}); {} publishes held",
                    batch.len()
                );
                redial.failed();
            }
            Err(e) => {
                // Redis refused a command (an ACL, out of memory): sending the same batch again
                // would fail again, so it is dropped and counted; the connection, whose other
                // answers may be pending, is made again.
                log::warn!(
                    "redis bridge: Redis refused a publish ({e}); {} publishes dropped",
                    batch.len()
                );
                link.node.count_dropped(batch.len() as u64);
                batch.clear();
                redial.pause();
            }
        }
    }
}

/// Send what is queued on `con`, one pipeline per round trip, until the bridge stops with
/// nothing queued or the workers are gone (`Ok`), or a pipeline fails (`Err`: `batch` keeps it).
fn publish_on(
    link: &Link,
    con: &mut redis::Connection,
    rx: &Receiver<(Arc<str>, Message)>,
    max_batch: usize,
    batch: &mut Vec<(Arc<str>, Message)>,
    redial: &mut Redial<'_>,
) -> redis::RedisResult<()> {
    let mut channel = String::new();
    loop {
        if batch.is_empty() && !next_batch(link, rx, max_batch, batch) {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (topic, msg) in batch.iter() {
            channel.clear();
            channel.push_str(&link.prefix);
            channel.push_str(topic);
            pipe.cmd("PUBLISH")
                .arg(channel.as_str())
                .arg(encode(link.node_id, msg))
                .ignore();
        }
        pipe.exec(con)?;
        link.node.count_published(batch.len() as u64);
        batch.clear();
        redial.reset();
    }
}

/// Wait for publishes and take what is queued (up to `max_batch`) into `batch`. False once the
/// bridge stops with nothing queued, or the workers are gone.
fn next_batch(
    link: &Link,
    rx: &Receiver<(Arc<str>, Message)>,
    max_batch: usize,
    batch: &mut Vec<(Arc<str>, Message)>,
) -> bool {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => {
                batch.push(m);
                batch.extend(rx.try_iter().take(max_batch - 1));
                return true;
            }
            Err(RecvTimeoutError::Timeout) if link.stopping() => return false,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

// ---- bridge-sub ---------------------------------------------------------------------------

/// One message as read: channel name and payload.
type Incoming = (String, Bytes);

fn subscribe_loop(link: &Link, interest: &Receiver<Arc<str>>, in_tx: &Sender<Incoming>) {
    let mut redial = Redial::new(link, Side::Subscribe);
    while !link.stopping() {
        // Changes while down need no replay: reconnecting subscribes to what is live.
        let Some(mut con) = redial.connect(|| interest.try_iter().for_each(drop)) else {
            break;
        };
        let began = Instant::now();
        match subscribed(link, &mut con, interest, in_tx, &mut redial) {
            Ok(()) => break,
            Err(e) => {
                log::warn!("redis bridge: lost the subscribing connection: {e}");
                // A connection that served a while starts the backoff over; one that failed
                // at once (Redis refusing SUBSCRIBE, say) keeps doubling it: no busy loop.
                if began.elapsed() > Duration::from_secs(1) {
                    redial.reset();
                }
                redial.failed();
            }
        }
    }
    redial.down();
}

/// Serve one subscribing connection until it fails (an error) or the bridge stops (`Ok`).
fn subscribed(
    link: &Link,
    con: &mut redis::Connection,
    interest: &Receiver<Arc<str>>,
    in_tx: &Sender<Incoming>,
    redial: &mut Redial<'_>,
) -> redis::RedisResult<()> {
    let mut ps = con.as_pubsub();
    // (Un)subscribing waits for Redis's confirmation with the long timeout (a timeout there
    // would end the connection); reading messages polls with the short one.
    ps.set_read_timeout(Some(IO_TIMEOUT))?;
    // Everything live now, whatever changes were reported before.
    interest.try_iter().for_each(drop);
    let mut live: HashSet<Arc<str>> = link.node.active_topics().into_iter().collect();
    if !live.is_empty() {
        ps.subscribe(live.iter().map(|t| channel_of(link, t)).collect::<Vec<_>>())?;
    }
    ps.set_read_timeout(Some(SUB_POLL))?;
    if redial.up() {
        log::info!(
            "redis bridge: subscribing connection to Redis is back ({} topics)",
            live.len()
        );
    }
    let mut changed: HashSet<Arc<str>> = HashSet::new();
    loop {
        if link.stopping() {
            return Ok(());
        }
        changed.extend(interest.try_iter());
        if !changed.is_empty() {
            follow_changes(link, &mut ps, &mut changed, &mut live)?;
        }
        match ps.get_message() {
            Ok(msg) => {
                let channel = msg.get_channel_name().to_owned();
                let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                if in_tx.send((channel, payload)).is_err() {
                    return Ok(());
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e),
        }
    }
}

/// Bring the subscriptions in line with the node for the topics in `changed` (drained):
/// subscribe to those that became active, unsubscribe from those that are gone.
fn follow_changes(
    link: &Link,
    ps: &mut redis::PubSub<'_>,
    changed: &mut HashSet<Arc<str>>,
    live: &mut HashSet<Arc<str>>,
) -> redis::RedisResult<()> {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    for t in changed.drain() {
        let want = link.node.is_active(&t);
        if want && !live.contains(&t) {
            add.push(channel_of(link, &t));
            live.insert(t);
        } else if !want && live.remove(&t) {
            remove.push(channel_of(link, &t));
        }
    }
    if add.is_empty() && remove.is_empty() {
        return Ok(());
    }
    ps.set_read_timeout(Some(IO_TIMEOUT))?;
    if !add.is_empty() {
        ps.subscribe(add)?;
    }
    if !remove.is_empty() {
        ps.unsubscribe(remove)?;
    }
    ps.set_read_timeout(Some(SUB_POLL))
}

fn channel_of(link: &Link, topic: &str) -> String {
    let mut c = String::with_capacity(link.prefix.len() + topic.len());
    c.push_str(&link.prefix);
    c.push_str(topic);
    c
}

// ---- bridge-in ----------------------------------------------------------------------------

fn deliver_loop(link: &Link, rx: &Receiver<Incoming>) {
    let mut batch: Vec<(Arc<str>, Message)> = Vec::new();
    while let Ok(first) = rx.recv() {
        for (channel, payload) in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH - 1)) {
            let Some(topic) = channel.strip_prefix(link.prefix.as_str()) else {
                continue;
            };
            match decode(payload) {
                Some((node, _)) if node == link.node_id => {}
                Some((_, msg)) => batch.push((Arc::from(topic), msg)),
                None => log::debug!("redis bridge: ignored a foreign message on {channel:?}"),
            }
        }
        link.node.deliver(batch.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_text_and_binary_apart() {
        let all: Vec<u8> = (0..=255).collect();
        let (id, m) = decode(Bytes::from(encode(7, &Message::binary(all.clone())))).unwrap();
        assert_eq!((id, m), (7, Message::binary(all)));
        let (id, m) = decode(Bytes::from(encode(u64::MAX, &Message::text("héllo")))).unwrap();
        assert_eq!((id, m), (u64::MAX, Message::text("héllo")));
        let (_, m) = decode(Bytes::from(encode(1, &Message::text("")))).unwrap();
        assert_eq!(m, Message::text(""));
    }

    #[test]
    fn foreign_payloads_are_refused() {
        assert!(decode(Bytes::from_static(b"")).is_none());
        assert!(decode(Bytes::from_static(b"12345678")).is_none());
        assert!(decode(Bytes::from_static(b"12345678\x03x")).is_none());
        assert!(decode(Bytes::from_static(b"12345678\x01\xff")).is_none());
        assert!(decode(Bytes::from_static(b"12345678\x02\xff")).is_some());
    }

    #[test]
    fn node_ids_differ() {
        assert_ne!(random_node_id(), random_node_id());
    }
}
