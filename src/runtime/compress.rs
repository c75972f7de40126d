//! permessage-deflate in the runtime: where the contexts live (per worker or per connection) and
//! which compressor an outgoing message uses, per [`DeflateMode`]. The codec, and turning a
//! compressed message into a finished one, is [`crate::protocol::deflate`].
//!
//! - `Shared`: every connection agrees `server_no_context_takeover` and
//!   `client_no_context_takeover`, so one compressor per worker (per window size) and one
//!   decompressor per worker serve all connections: no deflate memory per connection, and a
//!   publish is compressed once for all its subscribers.
//! - `Dedicated`: per-connection contexts with context takeover (better ratio on small messages),
//!   created lazily on the first compressed message in each direction. The compressor is
//!   classic zlib sized by the configured window and memLevel; the receiving side is only the
//!   client's window (the worker's [`Inflater`] does the work). An idle compressor is released
//!   down to its window ([`ConnDeflate::release_idle`]). Memory per connection by window:
//!   docs/BENCHMARKS.md.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::config::{Compress, Config, DeflateMode};
use crate::protocol::deflate::{
    negotiate, Compressor, CompressorConfig, DeflateEngine, DeflateOptions, InflateState, Inflater,
    Negotiated, TAIL,
};
use crate::protocol::frame::Frame;
use crate::protocol::message::Message;

/// A connection's negotiated parameters and its own contexts (dedicated mode only).
#[derive(Debug)]
pub(crate) struct ConnDeflate {
    pub neg: Negotiated,
    compressor: Option<Box<Compressor>>,
    /// When the compressor last compressed (the worker's milliseconds).
    used_ms: u32,
    /// The receiving side (the protocol layer picks the worker's shared context or this
    /// connection's own).
    pub inflate: InflateState,
}

impl ConnDeflate {
    pub fn new(neg: Negotiated) -> Self {
        ConnDeflate {
            inflate: neg.server_inflate(),
            neg,
            compressor: None,
            used_ms: 0,
        }
    }

    /// The time (worker milliseconds) at which this connection's live compressor should be
    /// released if it stays unused, or `None` if it holds none.
    pub fn release_at(&self, after: std::time::Duration) -> Option<u32> {
        let c = self.compressor.as_ref()?;
        (!c.is_released()).then(|| self.used_ms.wrapping_add(after.as_millis() as u32))
    }

    /// Release the compressor down to its window if it has not compressed since `after` ago
    /// (`now_ms`, worker milliseconds). `true` if it was released now.
    pub fn release_idle(&mut self, now_ms: u32, after: std::time::Duration) -> bool {
        let Some(c) = self.compressor.as_mut() else {
            return false;
        };
        if c.is_released() || now_ms.wrapping_sub(self.used_ms) < after.as_millis() as u32 {
            return false;
        }
        c.release()
    }

    /// Whether frames compressed by a worker's shared (reset-per-message, window 15) compressor
    /// may go to this connection.
    fn takes_shared(&self) -> bool {
        self.neg.server_no_context_takeover && self.neg.server_max_window_bits == 15
    }
}

/// A worker's deflate state.
#[derive(Debug)]
pub(crate) struct WorkerDeflate {
    options: DeflateOptions,
    threshold: usize,
    /// Reset-per-message compressors, by window bits − 8.
    shared: [Option<Box<Compressor>>; 8],
    /// Inflates compressed messages into finished ones; holds the reset-per-message
    /// decompressor shared by connections that agreed client_no_context_takeover.
    pub inflater: Inflater,
    buf: Vec<u8>,
}

impl WorkerDeflate {
    pub fn new(cfg: &Config) -> Self {
        WorkerDeflate {
            options: options(cfg),
            threshold: cfg.compression_threshold,
            shared: Default::default(),
            inflater: Inflater::new(),
            buf: Vec::new(),
        }
    }

    /// Accept a permessage-deflate offer, if compression is on.
    pub fn negotiate(cfg: &Config, offers: &[&str]) -> Option<Negotiated> {
        if cfg.deflate == DeflateMode::Off || offers.is_empty() {
            return None;
        }
        negotiate(offers, &options(cfg))
    }

    fn shared_compressor(&mut self, bits: u8) -> &mut Compressor {
        let i = usize::from(bits.clamp(8, 15) - 8);
        let options = &self.options;
        self.shared[i].get_or_insert_with(|| {
            Box::new(Compressor::new(CompressorConfig {
                level: options.level,
                window_bits: bits,
                mem_level: options.mem_level,
                no_context_takeover: true,
                engine: DeflateEngine::ZlibRs,
            }))
        })
    }

    fn frame(&self, msg: &Message) -> Bytes {
        Frame::new(msg.opcode(), &self.buf).compressed().encode()
    }

    /// The whole compressed frame for `msg` on this connection, or `None` to send it plain
    /// (under the threshold with [`Compress::Auto`], or [`Compress::Never`]). `shared` is the
    /// publish's lazily compressed-once frame; `now_ms` the worker's clock.
    pub fn compress(
        &mut self,
        conn: &mut ConnDeflate,
        msg: &Message,
        how: Compress,
        shared: Option<&OnceLock<Bytes>>,
        now_ms: u32,
    ) -> Option<Bytes> {
        if !self.wants(msg.len(), how) {
            return None;
        }
        if conn.takes_shared() {
            if let Some(cell) = shared {
                return Some(cell.get_or_init(|| self.compress_shared(msg)).clone());
            }
        }
        self.compress_into_buf(conn, msg.as_bytes(), now_ms);
        Some(self.frame(msg))
    }

    /// Whether a message of `len` bytes sent as `how` says is compressed on a connection that
    /// negotiated deflate.
    pub fn wants(&self, len: usize, how: Compress) -> bool {
        match how {
            Compress::Auto => len >= self.threshold,
            Compress::Always => true,
            Compress::Never => false,
        }
    }

    /// The payload of one fragment of a message sent in fragments, compressed as part of the
    /// message's one DEFLATE stream (RFC 7692 §7.2.1): every fragment is sync-flushed, and all
    /// but the last keep the flush's empty-block tail, since the receiver appends it only after
    /// the last. Without context takeover each fragment comes from a reset compressor (no
    /// reference to an earlier fragment), and the joined blocks are still one valid stream.
    pub fn compress_fragment(
        &mut self,
        conn: &mut ConnDeflate,
        data: &[u8],
        fin: bool,
        now_ms: u32,
    ) -> Bytes {
        self.compress_into_buf(conn, data, now_ms);
        if !fin {
            self.buf.extend_from_slice(&TAIL);
        }
        Bytes::copy_from_slice(&self.buf)
    }

    /// Compress `data` into `self.buf` (cleared first) with this connection's context: the
    /// worker's reset-per-message compressor of the connection's window, or its own.
    fn compress_into_buf(&mut self, conn: &mut ConnDeflate, data: &[u8], now_ms: u32) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if conn.neg.server_no_context_takeover {
            self.shared_compressor(conn.neg.server_max_window_bits)
                .compress(data, &mut buf);
        } else {
            let options = &self.options;
            conn.compressor
                .get_or_insert_with(|| Box::new(conn.neg.compressor(options)))
                .compress(data, &mut buf);
            conn.used_ms = now_ms;
        }
        self.buf = buf;
    }

    /// Compress with the worker's window-15 reset-per-message compressor.
    fn compress_shared(&mut self, msg: &Message) -> Bytes {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.shared_compressor(15)
            .compress(msg.as_bytes(), &mut buf);
        self.buf = buf;
        self.frame(msg)
    }
}

/// The negotiation policy of `cfg`'s mode.
fn options(cfg: &Config) -> DeflateOptions {
    let mut options = DeflateOptions {
        level: cfg.deflate_level,
        mem_level: cfg.deflate_mem_level,
        server_max_window_bits: cfg.deflate_window_bits,
        client_max_window_bits: cfg.deflate_client_window_bits,
        engine: DeflateEngine::Zlib,
        ..Default::default()
    };
    if cfg.deflate == DeflateMode::Shared {
        options.server_no_context_takeover = true;
        options.client_no_context_takeover = true;
        options.server_max_window_bits = 15;
        options.client_max_window_bits = 15;
        options.engine = DeflateEngine::ZlibRs;
    }
    options
}

/// A publish's compressed frame, computed by the first worker that needs it and shared by all.
pub(crate) type LazyDeflated = Arc<OnceLock<Bytes>>;
