//! The handler's view of its connection: send, close, ping, subscribe/publish, timers, handles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::Compress;
use crate::error::Error;
use crate::protocol::close::CloseCode;
use crate::protocol::message::Message;
use crate::protocol::reader::Streaming;
use crate::runtime::connection::ConnCore;
use crate::runtime::handle::{ConnHandle, ConnId, ServerHandle};
use crate::runtime::pubsub::{SharedFrame, StreamSkip};
use crate::runtime::stats::bump;
use crate::runtime::streams::{Backlog, Recovery, Since, StreamPosition, Subscribed};
use crate::runtime::users;
use crate::runtime::worker::{Action, WorkerState};
use crate::runtime::Delivery;

/// Passed to every [`Handler`](crate::Handler) callback: everything a handler can do to its
/// connection and, through topics, to others.
///
/// Sends are queued and written once per event-loop turn with vectored writes, so many small
/// sends cost one system call.
pub struct Context<'a> {
    pub(crate) core: &'a mut ConnCore,
    pub(crate) state: &'a mut WorkerState,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id())
            .field("peer", &self.core.peer)
            .finish()
    }
}

impl Context<'_> {
    /// This connection's id (unique for the server's lifetime: a reused slot gets a new
    /// generation).
    pub fn id(&self) -> ConnId {
        self.state.conn_id(self.core)
    }

    /// The socket's peer address (a proxy's, behind one).
    pub fn peer_addr(&self) -> SocketAddr {
        self.core.peer
    }

    /// The client's address, as [`Request::client_addr`](crate::Request::client_addr) gave it
    /// at the upgrade.
    pub fn client_addr(&self) -> SocketAddr {
        self.core
            .extra
            .as_ref()
            .and_then(|x| x.client_addr)
            .unwrap_or(self.core.peer)
    }

    /// The subprotocol chosen at the upgrade, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.core.extra.as_ref()?.protocol.as_deref()
    }

    /// Whether messages can still be sent (the connection is open and no close was sent).
    pub fn is_open(&self) -> bool {
        self.core.is_open()
    }

    /// Queue a message. Fails with [`Error::Closed`] once closing, or [`Error::OutboundFull`]
    /// when the outbound queue is at [`Config::max_outbound_bytes`](crate::Config) (then the
    /// configured [`BackpressurePolicy`](crate::BackpressurePolicy) has been applied).
    pub fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        self.send_with(msg, Compress::Auto)
    }

    /// [`Context::send`], compressed or not as `how` says (on a connection that negotiated
    /// permessage-deflate; the others always get it plain).
    pub fn send_with(&mut self, msg: impl Into<Message>, how: Compress) -> Result<(), Error> {
        self.state.send_message(self.core, &msg.into(), how)
    }

    /// Send part of a binary message: the first call starts it, `fin` ends it. Between the
    /// first and the last fragment, whole messages sent to this connection (by `send`, a
    /// publish, a broadcast) wait and follow the message, as RFC 6455 requires; pings, pongs
    /// and a close may go out between fragments. On a permessage-deflate connection the
    /// message is compressed (as one stream, fragment by fragment) when its first fragment
    /// reaches [`Config::compression_threshold`](crate::Config::compression_threshold). For large
    /// transfers, [`ReadStreamer`](crate::ReadStreamer) paces this with `on_drain`.
    pub fn send_binary_fragment(&mut self, data: impl Into<Bytes>, fin: bool) -> Result<(), Error> {
        self.state.send_fragment(self.core, data.into(), false, fin)
    }

    /// Send part of a text message (each part is whole UTF-8, so the message is too); see
    /// [`Context::send_binary_fragment`]. [`Error::FragmentKind`] while a binary message is
    /// being sent in fragments.
    pub fn send_text_fragment(&mut self, text: &str, fin: bool) -> Result<(), Error> {
        let data = Bytes::copy_from_slice(text.as_bytes());
        self.state.send_fragment(self.core, data, true, fin)
    }

    /// Whether a message sent in fragments is under way (its last fragment not yet sent).
    pub fn is_sending_fragments(&self) -> bool {
        self.core
            .extra
            .as_ref()
            .is_some_and(|x| x.fragmenting.is_some())
    }

    /// Ask for [`Handler::on_drain`](crate::Handler::on_drain) once everything queued now has
    /// been written, even if the socket never filled up (it then runs on a later loop turn, so
    /// a producer that refills from `on_drain` shares the worker with other connections).
    pub fn notify_drain(&mut self) {
        self.core.extra().drain_requested = true;
        self.state.mark_dirty(self.core);
    }

    /// Receive this connection's large messages in chunks ([`Handler::on_chunk`]) from the next
    /// message on, as `streaming` says, or whole again with `None`; starts as
    /// [`Config::streaming`]. A message already streaming goes on in chunks to its end.
    ///
    /// ```
    /// use volley::{Chunk, Context, Handler, Streaming};
    /// struct Upload { received: u64 }
    /// impl Handler for Upload {
    ///     fn on_open(&mut self, ctx: &mut Context<'_>) {
    ///         // Anything over 64 KiB arrives in pieces, up to 1 GiB in all.
    ///         ctx.set_streaming(Some(Streaming::over(64 << 10).max_size(1 << 30)));
    ///     }
    ///     fn on_chunk(&mut self, ctx: &mut Context<'_>, chunk: Chunk) {
    ///         self.received += chunk.len() as u64;
    ///         if chunk.is_last() {
    ///             let _ = ctx.send_text(&format!("got {} bytes", self.received));
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// [`Handler::on_chunk`]: crate::Handler::on_chunk
    /// [`Config::streaming`]: crate::Config::streaming
    pub fn set_streaming(&mut self, streaming: Option<Streaming>) {
        if streaming.is_some() || self.streaming().is_some() {
            self.core.extra().streaming = streaming;
        }
    }

    /// Which messages this connection receives in chunks ([`Context::set_streaming`]).
    pub fn streaming(&self) -> Option<Streaming> {
        self.core.extra.as_ref().and_then(|x| x.streaming)
    }

    /// Queue a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message::text(text))
    }

    /// Queue a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send(Message::binary(bytes::Bytes::copy_from_slice(data)))
    }

    /// Queue a ping (payload cut to 125 bytes). Pongs arrive at
    /// [`Handler::on_pong`](crate::Handler::on_pong).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.state.send_ping(self.core, payload)
    }

    /// Start the closing handshake with `code` and `reason` (cut to 123 bytes). The handler's
    /// [`on_close`](crate::Handler::on_close) runs when the peer answers (or the close timeout
    /// ends the wait).
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.state.start_close(self.core, code, reason);
    }

    /// Tie this connection to the user `user` (an application's id: after its token was
    /// checked, say): [`ServerHandle::send_to_user`] and [`ServerHandle::disconnect_user`]
    /// then reach it, from any node of a bridged cluster. A connection belongs to one user at a
    /// time (setting another replaces it; `None` unties it). Reuses topics: each user's
    /// connections subscribe to two internal topics, left out of topic listings.
    pub fn set_user(&mut self, user: Option<&str>) {
        if let Some(old) = self.core.extra.as_mut().and_then(|x| x.user.take()) {
            self.state
                .unsubscribe(self.core, &users::messages_topic(&old));
            self.state
                .unsubscribe(self.core, &users::disconnects_topic(&old));
        }
        if let Some(user) = user {
            self.state
                .subscribe(self.core, &users::messages_topic(user));
            self.state
                .subscribe(self.core, &users::disconnects_topic(user));
            self.core.extra().user = Some(Arc::from(user));
        }
    }

    /// The user this connection is tied to ([`Context::set_user`]).
    pub fn user(&self) -> Option<&str> {
        self.core.extra.as_ref().and_then(|x| x.user.as_deref())
    }

    /// Bytes queued for this connection and not yet accepted by its socket.
    pub fn buffered_amount(&self) -> usize {
        self.core.queued()
    }

    /// A `Send + Clone` handle to this connection, usable from any thread.
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(self.id(), self.state.shared.clone())
    }

    /// A handle to the whole server (publish from anywhere, stats, shutdown).
    pub fn server(&self) -> ServerHandle {
        ServerHandle::from_shared(self.state.shared.clone())
    }

    /// Subscribe to `topic`; returns false if already subscribed. Topics are created on first
    /// subscription and vanish with their last subscriber; a connection's subscriptions end with
    /// it.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        self.state.subscribe(self.core, topic)
    }

    /// Unsubscribe from `topic`; returns false if not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.state.unsubscribe(self.core, topic)
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.core
            .extra
            .as_ref()
            .is_some_and(|e| self.state.topics.contains(&e.topics, topic))
    }

    /// The topics this connection is subscribed to.
    pub fn topics(&self) -> Vec<String> {
        self.core
            .extra
            .as_ref()
            .map(|e| self.state.topics.names(&e.topics))
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !users::is_internal(t))
            .collect()
    }

    /// Subscribers of `topic` across the whole server.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.state.shared.subscriber_count(topic)
    }

    /// Send `msg` to every subscriber of `topic` on every worker, this connection included if it
    /// is subscribed. The message is encoded once and shared by every recipient. With a
    /// [bridge](crate::ServerBuilder::bridge) it also goes to the topic's subscribers on the
    /// other nodes ([`publish_local`](Self::publish_local) keeps it on this one).
    pub fn publish(&mut self, topic: &str, msg: impl Into<Message>) {
        self.publish_skipping(topic, msg.into(), None, Compress::Auto);
    }

    /// [`Context::publish`] to this node's subscribers only, never through the bridge.
    pub fn publish_local(&mut self, topic: &str, msg: impl Into<Message>) {
        self.deliver_here(topic.into(), &msg.into(), None, Compress::Auto);
    }

    /// [`Context::publish`], compressed or not for the subscribers that negotiated
    /// permessage-deflate as `how` says. Compressed, it is compressed once for all subscribers
    /// in the shared mode, and once per subscriber's own context in the dedicated mode.
    pub fn publish_with(&mut self, topic: &str, msg: impl Into<Message>, how: Compress) {
        self.publish_skipping(topic, msg.into(), None, how);
    }

    /// Like [`Context::publish`], but skips this connection ("broadcast to everyone but me");
    /// other nodes deliver it to all their subscribers.
    pub fn publish_others(&mut self, topic: &str, msg: impl Into<Message>) {
        let me = Some(self.id());
        self.publish_skipping(topic, msg.into(), me, Compress::Auto);
    }

    /// Publish to a topic that keeps a history ([`ServerBuilder::history`]): the message gets
    /// the topic's next offset, and `build` makes it from that position (once: every
    /// subscriber, live or recovering, gets the same frame; put the position in the payload so
    /// that clients can resume from it). Returns the position, or `None` (and publishes
    /// nothing) if the topic keeps no history. Streams stay on this node.
    ///
    /// [`ServerBuilder::history`]: crate::ServerBuilder::history
    pub fn publish_stream(
        &mut self,
        topic: &str,
        build: impl FnOnce(&StreamPosition) -> Message,
    ) -> Option<StreamPosition> {
        let shared = &self.state.shared;
        shared
            .streams
            .publish(&shared.remotes, topic, build, Compress::Auto)
    }

    /// Subscribe to a topic that keeps a history, from `since`: with [`Since::After`], every
    /// publication after that position is sent first, in order, then the live ones, with no
    /// gap and no duplicate, or the answer says [`Recovery::Failed`] (the position is older
    /// than the history, of another epoch, or unknown) and the subscription is live from the
    /// current position. `None` if the topic keeps no history (not subscribed). A connection
    /// already subscribed stays so, and gets nothing from the history ([`Recovery::Live`]).
    pub fn subscribe_stream(&mut self, topic: &str, since: Since) -> Option<Subscribed> {
        let shared = self.state.shared.clone();
        let (core, state) = (&mut *self.core, &mut *self.state);
        let (position, recovery) = shared.streams.subscribe(topic, &since, |backlog, last| {
            if !state.subscribe(core, topic) {
                return Recovery::Live;
            }
            // Live deliveries start after `last`, whatever the backlog was.
            state.stream_skips.push(StreamSkip {
                slot: core.slot,
                generation: core.generation,
                topic: Arc::from(topic),
                upto: last,
            });
            let (frames, latest) = match backlog {
                Backlog::Nothing { failed } => {
                    return if failed {
                        Recovery::Failed
                    } else {
                        Recovery::Live
                    };
                }
                Backlog::Frames { frames, latest } => (frames, latest),
            };
            let sent = frames
                .iter()
                .take_while(|f| state.send_shared(core, f).is_ok())
                .count();
            match (latest, sent == frames.len()) {
                (_, false) => Recovery::Failed,
                (true, true) => Recovery::Latest,
                (false, true) => Recovery::Recovered { missed: sent },
            }
        })?;
        let st = self.state.stats();
        match recovery {
            Recovery::Recovered { .. } => bump(&st.recoveries, 1),
            Recovery::Failed => bump(&st.recoveries_failed, 1),
            Recovery::Live | Recovery::Latest => {}
        }
        Some(Subscribed { position, recovery })
    }

    /// Send `msg` to every open connection of the server, this one included.
    pub fn broadcast(&mut self, msg: impl Into<Message>) {
        self.broadcast_skipping(msg.into(), None);
    }

    /// Send `msg` to every open connection of the server except this one.
    pub fn broadcast_others(&mut self, msg: impl Into<Message>) {
        let me = Some(self.id());
        self.broadcast_skipping(msg.into(), me);
    }

    fn publish_skipping(&mut self, topic: &str, msg: Message, skip: Option<ConnId>, how: Compress) {
        let topic: Arc<str> = topic.into();
        self.state.shared.bridge_publish(&topic, &msg);
        self.deliver_here(topic, &msg, skip, how);
    }

    /// Deliver to this node's subscribers of `topic` (all workers), skipping `skip`.
    fn deliver_here(
        &mut self,
        topic: Arc<str>,
        msg: &Message,
        skip: Option<ConnId>,
        how: Compress,
    ) {
        let frame = SharedFrame::encode(msg, how);
        self.state
            .actions
            .push(Action::Deliver(Delivery::Publish { topic, frame, skip }));
    }

    fn broadcast_skipping(&mut self, msg: Message, skip: Option<ConnId>) {
        let frame = SharedFrame::encode(&msg, Compress::Auto);
        self.state
            .actions
            .push(Action::Deliver(Delivery::Broadcast { frame, skip }));
    }

    /// Arm a timer: [`Handler::on_timer`](crate::Handler::on_timer) runs with `id` after `after`
    /// (at the worker's timer granularity, never early). Setting an `id` that is already armed
    /// re-arms it. Timers end with the connection.
    pub fn set_timer(&mut self, after: Duration, id: u64) {
        self.state.set_user_timer(self.core, after, id);
    }

    /// Disarm the timer `id`; returns whether it was armed.
    pub fn cancel_timer(&mut self, id: u64) -> bool {
        self.state.cancel_user_timer(self.core, id)
    }
}
