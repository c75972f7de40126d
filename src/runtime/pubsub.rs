//! Topics (rooms) local to one worker, and frames encoded once and shared by every recipient.
//!
//! A publish encodes its message into one frame (one allocation); every recipient's outbound
//! queue receives a clone of the same [`Bytes`] (a reference-count increment). Each worker keeps
//! its own topic → subscribers map, so fan-out needs no lock; the server-wide subscriber counts
//! live in [`Shared::topics`](super::Shared) and are touched only on subscribe/unsubscribe.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use slab::Slab;

use crate::config::Compress;
use crate::protocol::frame::Frame;
use crate::protocol::message::Message;
use crate::runtime::compress::LazyDeflated;

/// A message encoded once as a complete server frame, shared by reference.
#[derive(Debug, Clone)]
pub(crate) struct SharedFrame {
    /// The whole frame (header + payload), uncompressed.
    pub plain: Bytes,
    /// The message (for per-connection compression in dedicated mode).
    pub msg: Message,
    /// The compressed frame, made by the first worker that needs it (shared deflate mode).
    pub deflated: LazyDeflated,
    /// Whether deflate connections get it compressed.
    pub compress: Compress,
}

impl SharedFrame {
    /// Encode `msg` into one frame, compressed for deflate connections as `compress` says.
    pub fn encode(msg: &Message, compress: Compress) -> Self {
        SharedFrame {
            plain: Frame::message(msg).encode(),
            msg: msg.clone(),
            deflated: Default::default(),
            compress,
        }
    }
}

/// A connection that recovered a stream up to `upto`: live deliveries of `topic` at or before
/// that offset, still on their way to this worker, are not sent to it again.
#[derive(Debug)]
pub(crate) struct StreamSkip {
    pub slot: u32,
    pub generation: u32,
    pub topic: Arc<str>,
    pub upto: u64,
}

/// One worker's topics.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    by_name: HashMap<Arc<str>, usize>,
    topics: Slab<Topic>,
}

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    /// Subscribed connection slots.
    subs: Slab<u32>,
}

/// A connection's membership: (topic index, key in the topic's subscriber slab).
pub(crate) type Membership = (u32, u32);

impl Topics {
    /// Subscribe `slot`. Returns the topic's shared name if this was a new subscription.
    pub fn subscribe(
        &mut self,
        slot: u32,
        memberships: &mut Vec<Membership>,
        name: &str,
    ) -> Option<Arc<str>> {
        if let Some(&t) = self.by_name.get(name) {
            if memberships.iter().any(|m| m.0 as usize == t) {
                return None;
            }
            let topic = &mut self.topics[t];
            let key = topic.subs.insert(slot);
            memberships.push((t as u32, key as u32));
            return Some(topic.name.clone());
        }
        let name: Arc<str> = Arc::from(name);
        let mut subs = Slab::with_capacity(1);
        let key = subs.insert(slot);
        let t = self.topics.insert(Topic {
            name: name.clone(),
            subs,
        });
        self.by_name.insert(name.clone(), t);
        memberships.push((t as u32, key as u32));
        Some(name)
    }

    /// Unsubscribe from `name`. Returns the name if the connection was subscribed.
    pub fn unsubscribe(
        &mut self,
        memberships: &mut Vec<Membership>,
        name: &str,
    ) -> Option<Arc<str>> {
        let &t = self.by_name.get(name)?;
        let i = memberships.iter().position(|m| m.0 as usize == t)?;
        let m = memberships.swap_remove(i);
        Some(self.remove(m))
    }

    /// Remove every membership (a closing connection). Returns the topic names left.
    pub fn unsubscribe_all(&mut self, memberships: &mut Vec<Membership>) -> Vec<Arc<str>> {
        memberships
            .drain(..)
            .map(|m| self.remove(m))
            .collect::<Vec<_>>()
    }

    fn remove(&mut self, (t, key): Membership) -> Arc<str> {
        let topic = &mut self.topics[t as usize];
        topic.subs.remove(key as usize);
        let name = topic.name.clone();
        if topic.subs.is_empty() {
            self.by_name.remove(&name);
            self.topics.remove(t as usize);
        }
        name
    }

    /// The local subscribers of `name`.
    pub fn subscribers(&self, name: &str) -> impl Iterator<Item = u32> + '_ {
        self.by_name
            .get(name)
            .map(|&t| &self.topics[t].subs)
            .into_iter()
            .flat_map(|s| s.iter().map(|(_, &slot)| slot))
    }

    /// Topic names of a connection's memberships.
    pub fn names(&self, memberships: &[Membership]) -> Vec<String> {
        memberships
            .iter()
            .map(|m| self.topics[m.0 as usize].name.to_string())
            .collect()
    }

    /// Whether the memberships include `name`.
    pub fn contains(&self, memberships: &[Membership], name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&t| memberships.iter().any(|m| m.0 as usize == t))
    }
}
