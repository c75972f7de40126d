//! Streamed receive: the chunks of messages a connection receives in pieces
//! ([`Streaming`](crate::Streaming)) on their way to [`Handler::on_chunk`], compressed ones
//! inflated chunk by chunk.

use bytes::Bytes;

use crate::protocol::deflate::InflateStream;
use crate::protocol::error::ProtocolError;
use crate::protocol::message::Chunk;
use crate::runtime::handler::{Factory, Handler, RateLimited};
use crate::runtime::stats::bump;

use super::Worker;

impl<F: Factory> Worker<F> {
    /// A chunk of a streamed message, ready for the handler. Rate limits take a streamed
    /// message as a whole at its first chunk (a refused one is dropped to its end); its later
    /// chunks' bytes are charged to the byte rate without refusal.
    pub(super) fn stream_chunk(&mut self, slot: usize, chunk: Chunk) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if !conn.core.is_open() {
            return; // we are closing: data is discarded (RFC 6455 §5.5.1)
        }
        conn.core.last_msg_ms = self.state.now_ms;
        if chunk.is_first() {
            if let Err(in_a_row) = self.state.admit_inbound(&mut conn.core, chunk.len()) {
                if !chunk.is_last() {
                    conn.core.extra().stream_refused = true;
                }
                let info = RateLimited {
                    len: chunk.len(),
                    in_a_row,
                };
                return self.rate_refused(slot, info);
            }
        } else if conn.core.extra.as_ref().is_some_and(|x| x.stream_refused) {
            if chunk.is_last() {
                conn.core.extra().stream_refused = false;
            }
            return;
        } else {
            self.state.charge_inbound(&mut conn.core, chunk.len());
        }
        let st = self.state.stats();
        bump(&st.bytes_in, chunk.len() as u64);
        if chunk.is_last() {
            bump(&st.messages_in, 1);
            if chunk.is_text() {
                bump(&st.text_messages_in, 1);
            }
        }
        self.call(slot, |h, ctx| h.on_chunk(ctx, chunk));
    }

    /// Compressed bytes of a streamed message: inflate them into chunks of at most
    /// [`PIECE`](crate::protocol::deflate::PIECE) bytes, each handed on as it is made.
    pub(super) fn compressed_chunk(
        &mut self,
        slot: usize,
        text: bool,
        first: bool,
        last: bool,
        payload: Bytes,
    ) {
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            if !conn.core.is_open() {
                return;
            }
            let extra = conn.core.extra();
            let Some(cd) = extra.deflate.as_deref_mut() else {
                return self.fail(slot, ProtocolError::ReservedBits);
            };
            if first && pos == 0 {
                let max = extra.streaming.map_or(u64::MAX, |s| s.max_size);
                match InflateStream::start(&mut cd.inflate, text, max) {
                    Ok(stream) => extra.inflating = Some(Box::new(stream)),
                    Err(e) => return self.fail(slot, e),
                }
            }
            let Some(stream) = extra.inflating.as_deref_mut() else {
                return self.fail(slot, ProtocolError::Compression);
            };
            let result = stream.next(&mut cd.inflate, &payload[pos..], last);
            let done = match &result {
                Ok((chunk, _)) => chunk.as_ref().is_some_and(Chunk::is_last),
                Err(_) => true,
            };
            if done {
                if let Some(stream) = extra.inflating.take() {
                    stream.finish(&mut cd.inflate);
                }
            }
            match result {
                Ok((Some(chunk), used)) => {
                    pos += used;
                    if done {
                        bump(&self.state.stats().compressed_in, 1);
                    }
                    self.stream_chunk(slot, chunk);
                    if done {
                        return;
                    }
                }
                Ok((None, _)) => return,
                Err(e) => return self.fail(slot, e),
            }
        }
    }
}
