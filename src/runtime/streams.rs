//! Topic streams: topics that keep a bounded history (opt-in, by topic prefix:
//! [`ServerBuilder::history`](crate::ServerBuilder::history)), whose publications carry an
//! offset within an epoch, so a subscriber that was away can recover exactly what it missed.
//!
//! The guarantees (docs/ARCHITECTURE.md, "Streams: history and recovery"):
//!
//! - Offsets grow by one per publication of a topic; the epoch names the history's continuity
//!   (this store is in memory: a restart gives every stream a new epoch).
//! - Each worker receives a stream's publications in offset order: offsets are assigned and
//!   the publication is handed to every worker's channel under the stream's lock.
//! - A recovering subscriber gets every publication after its position from the history, then
//!   the live ones, with no gap and no duplicate: the history is read and the subscription
//!   made under the same lock, and the worker skips live deliveries it already sent.
//! - When that cannot be done, it is told so ([`Recovery::Failed`]) with the current position.
//!
//! Encode once: the application builds the message from its position (a closure), once per
//! publication; every subscriber, live or recovering, gets the same frame.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Compress;
use crate::protocol::message::Message;
use crate::runtime::history::History;
use crate::runtime::pubsub::SharedFrame;
use crate::runtime::{Command, Delivery, Remote};

/// How much of a topic's stream is kept for recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    /// The last this many publications (0 keeps positions only: every recovery fails).
    pub size: usize,
    /// None older than this.
    pub ttl: Duration,
}

impl HistoryOptions {
    /// The last `size` publications, none older than `ttl`.
    pub fn new(size: usize, ttl: Duration) -> Self {
        HistoryOptions { size, ttl }
    }
}

/// A position in a topic's stream: the offset of a publication and the epoch of the history it
/// belongs to. Offset 0 is before the first publication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamPosition {
    /// The publication's offset: 1 for the first, one more for each next.
    pub offset: u64,
    /// The history's epoch: it changes whenever the history loses continuity (here: a restart
    /// of the server), and a position of another epoch cannot be recovered.
    pub epoch: String,
}

/// Where a subscription to a stream starts ([`Context::subscribe_stream`]).
///
/// [`Context::subscribe_stream`]: crate::Context::subscribe_stream
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Live publications only.
    Now,
    /// The last publication first, if the history still holds it (Centrifugo's cache mode).
    Latest,
    /// Every publication after this position first (recovery after a reconnect).
    After(StreamPosition),
}

/// What a subscription to a stream sent before the live publications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing: live from the current position ([`Since::Now`], [`Since::Latest`] with no
    /// publication held, or a connection already subscribed).
    Live,
    /// [`Since::Latest`]: the last publication was sent first.
    Latest,
    /// Every publication after the position was sent, in order: `missed` of them.
    Recovered {
        /// How many publications were sent from the history.
        missed: usize,
    },
    /// The position cannot be recovered: publications after it were dropped from the
    /// history, it belongs to another epoch, or it is ahead of the stream. The subscription
    /// is live from the current position; the application should tell its client that it may
    /// have missed messages. (Also when recovered publications were refused by the outbound
    /// limit midway: then some were sent, never silently.)
    Failed,
}

/// The answer to [`Context::subscribe_stream`](crate::Context::subscribe_stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// The stream's current position: the last publication sent, or to be sent, live next.
    pub position: StreamPosition,
    /// What was sent from the history.
    pub recovery: Recovery,
}

/// One topic's stream.
#[derive(Debug)]
struct Stream {
    epoch: Arc<str>,
    history: History<SharedFrame>,
}

impl Stream {
    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.history.last(),
            epoch: self.epoch.to_string(),
        }
    }
}

/// Every stream of a server (in memory), and which topics have one.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// (topic prefix, options): the longest matching prefix wins.
    rules: Vec<(String, HistoryOptions)>,
    streams: Mutex<HashMap<Arc<str>, Arc<Mutex<Stream>>>>,
}

/// What a subscription sends from the history, chosen under the stream's lock.
pub(crate) enum Backlog<'a> {
    /// Nothing to send (live only); `failed` when a recovery was asked and is impossible.
    Nothing { failed: bool },
    /// These frames, in order; `latest`: the one last publication of `Since::Latest`.
    Frames {
        frames: Vec<&'a SharedFrame>,
        latest: bool,
    },
}

impl Streams {
    /// History for the topics starting with each rule's prefix (`""`: every topic); a later
    /// rule for the same prefix replaces an earlier one.
    pub fn new(rules: Vec<(String, HistoryOptions)>) -> Self {
        let mut streams = Streams::default();
        for (prefix, options) in rules {
            streams.rules.retain(|(p, _)| *p != prefix);
            streams.rules.push((prefix, options));
        }
        streams
    }

    /// The history options of `topic`, if it keeps a history.
    fn options(&self, topic: &str) -> Option<HistoryOptions> {
        self.rules
            .iter()
            .filter(|(p, _)| topic.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, o)| *o)
    }

    /// The stream of `topic` (made on first use), if the topic keeps a history.
    fn stream(&self, topic: &str) -> Option<Arc<Mutex<Stream>>> {
        let options = self.options(topic)?;
        let mut g = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let s = g.entry(Arc::from(topic)).or_insert_with(|| {
            Arc::new(Mutex::new(Stream {
                epoch: new_epoch(),
                history: History::new(options.size, options.ttl),
            }))
        });
        Some(s.clone())
    }

    /// Publish to a stream: the next offset, the message `build` makes from it (once), the
    /// history, and every worker's channel, in that order under the stream's lock. `None` if
    /// `topic` keeps no history (nothing is published).
    pub fn publish(
        &self,
        remotes: &[Remote],
        topic: &str,
        build: impl FnOnce(&StreamPosition) -> Message,
        how: Compress,
    ) -> Option<StreamPosition> {
        let stream = self.stream(topic)?;
        let mut s = stream.lock().unwrap_or_else(|e| e.into_inner());
        let position = StreamPosition {
            offset: s.history.next_offset(),
            epoch: s.epoch.to_string(),
        };
        let frame = SharedFrame::encode(&build(&position), how);
        let offset = s.history.push(Instant::now(), frame.clone());
        let delivery = Delivery::Stream {
            topic: Arc::from(topic),
            frame,
            offset,
        };
        for r in remotes {
            r.send(Command::Deliver(delivery.clone()));
        }
        Some(position)
    }

    /// Subscribe to a stream from `since`: under the stream's lock, `with` gets what to send
    /// from the history and the offset that live deliveries start after, and subscribes.
    /// `None` if `topic` keeps no history.
    pub fn subscribe<R>(
        &self,
        topic: &str,
        since: &Since,
        with: impl FnOnce(Backlog<'_>, u64) -> R,
    ) -> Option<(StreamPosition, R)> {
        let stream = self.stream(topic)?;
        let mut s = stream.lock().unwrap_or_else(|e| e.into_inner());
        s.history.evict(Instant::now());
        let last = s.history.last();
        let backlog = match since {
            Since::Now => Backlog::Nothing { failed: false },
            Since::Latest => match s.history.latest() {
                Some(f) => Backlog::Frames {
                    frames: vec![f],
                    latest: true,
                },
                None => Backlog::Nothing { failed: false },
            },
            Since::After(p) if p.epoch.as_str() != &*s.epoch => Backlog::Nothing { failed: true },
            Since::After(p) => match s.history.after(p.offset) {
                Ok(frames) => Backlog::Frames {
                    frames: frames.collect(),
                    latest: false,
                },
                Err(_) => Backlog::Nothing { failed: true },
            },
        };
        let r = with(backlog, last);
        Some((s.position(), r))
    }

    /// Publications held in every stream's history (the `volley_history_publications` metric).
    #[cfg(feature = "metrics")]
    pub fn held(&self) -> usize {
        let g = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        g.values()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).history.len())
            .sum()
    }
}

/// A fresh epoch: 16 hex digits from the process's random hash keys and the clock.
fn new_epoch() -> Arc<str> {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    Arc::from(format!("{:016x}", h.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_decides_and_other_topics_keep_no_history() {
        let s = Streams::new(vec![
            (
                "chat.".into(),
                HistoryOptions::new(10, Duration::from_secs(1)),
            ),
            (
                "chat.big.".into(),
                HistoryOptions::new(99, Duration::from_secs(1)),
            ),
        ]);
        assert_eq!(s.options("chat.room").map(|o| o.size), Some(10));
        assert_eq!(s.options("chat.big.room").map(|o| o.size), Some(99));
        assert_eq!(s.options("news"), None);
        assert!(s.stream("news").is_none());
    }

    #[test]
    fn epochs_differ_between_stores() {
        assert_ne!(new_epoch(), new_epoch());
    }
}
