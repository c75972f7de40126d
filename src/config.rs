//! Every limit and timeout, with its default and the attack it guards against. The
//! permessage-deflate numbers (level, memLevel, windows) are the protocol's own defaults, kept
//! in `protocol/deflate/params.rs` and referred to here.

use std::net::IpAddr;
use std::time::Duration;

use crate::protocol::deflate::{DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, MAX_WINDOW_BITS};
use crate::protocol::reader::Streaming;

/// What happens when a connection's outbound queue would exceed
/// [`Config::max_outbound_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackpressurePolicy {
    /// Close the slow consumer with close code 1008 and reason `"slow consumer"`; the frames
    /// already queued are still flushed first if the peer reads them. The default: nothing
    /// queued for a connection is ever silently lost.
    Close,
    /// Drop the message that does not fit, for this connection only (counted in
    /// [`Stats::dropped_messages`](crate::Stats)); the connection stays open. Suits tickers and
    /// game state, where the next update supersedes the missed one.
    Drop,
}

/// What happens to a message over [`Config::message_rate`] or [`Config::byte_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitPolicy {
    /// Close the connection with 1008 (policy violation) and reason `"rate limit"`. The default.
    Close,
    /// Drop the message (the handler never sees it); the connection stays open.
    Drop,
}

/// permessage-deflate (RFC 7692): whether and how messages are compressed. Browsers offer it on
/// every connection; the modes trade memory per connection against compression ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateMode {
    /// Decline every offer.
    Off,
    /// No context takeover in either direction: one decompressor, and one compressor per window
    /// size the clients ask for, per worker thread serve every connection, so a connection holds
    /// no deflate context (just its negotiated parameters), and a publish is compressed once
    /// for all its subscribers. The default (see docs/ARCHITECTURE.md for the
    /// measurements behind it).
    Shared,
    /// Per-connection compression contexts with context takeover (as the client allows): the
    /// best ratio for streams of small similar messages. A connection's compressor runs classic
    /// zlib with [`Config::deflate_window_bits`] and [`Config::deflate_mem_level`], and its
    /// receiving side holds just the client's window ([`Config::deflate_client_window_bits`]);
    /// both are created on the first compressed message in their direction, and an idle
    /// compressor is released down to its window ([`Config::deflate_idle_release`]). Pick the
    /// sizes with [`Config::dedicated_deflate`]; memory per connection is measured in
    /// docs/BENCHMARKS.md.
    Dedicated,
}

/// A window size for [`Config::dedicated_deflate`], like uWebSockets' `DEDICATED_COMPRESSOR_*`
/// and `DEDICATED_DECOMPRESSOR_*`: a compressor with this LZ77 window (and a matching zlib
/// memLevel), or the largest window the client's compressor may use.
///
/// A smaller window costs ratio on messages that repeat what was said long ago and saves
/// memory; for chat-like traffic (80–400 byte JSON) 4 KiB and up compress about as well as
/// 32 KiB (docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DeflateWindow {
    /// 512 bytes (window bits 9).
    B512,
    /// 1 KiB (10).
    K1,
    /// 2 KiB (11).
    K2,
    /// 4 KiB (12).
    K4,
    /// 8 KiB (13).
    K8,
    /// 16 KiB (14).
    K16,
    /// 32 KiB (15, the protocol's largest).
    K32,
}

impl DeflateWindow {
    /// The window as zlib's `windowBits`, 9–15.
    pub fn bits(self) -> u8 {
        match self {
            DeflateWindow::B512 => 9,
            DeflateWindow::K1 => 10,
            DeflateWindow::K2 => 11,
            DeflateWindow::K4 => 12,
            DeflateWindow::K8 => 13,
            DeflateWindow::K16 => 14,
            DeflateWindow::K32 => 15,
        }
    }

    /// The window in bytes.
    pub fn bytes(self) -> usize {
        1 << self.bits()
    }

    /// The zlib `memLevel` that goes with a compressor of this window: 1 for 512 B and 1 KiB,
    /// 2 for 2–4 KiB, 3 for 8–16 KiB, 4 for 32 KiB. Chosen by `benches/deflate_ratio.rs` on the
    /// recorded chat stream: up to there a larger memLevel (uWebSockets pairs `bits − 7`) gains
    /// under 1% of bytes on the wire for up to 60% more memory.
    pub fn mem_level(self) -> u8 {
        ((self.bits() - 7) / 2).max(1)
    }

    /// Classic zlib's memory for a compressor of this window and [`DeflateWindow::mem_level`]:
    /// `4 × window + 2^(memLevel + 9)` plus ~5.9 KiB of state (measured within 2% by
    /// `benches/deflate_ratio.rs`).
    pub fn compressor_bytes(self) -> usize {
        4 * self.bytes() + (1 << (self.mem_level() + 9)) + 5_900
    }

    /// All windows, smallest first.
    pub const ALL: [DeflateWindow; 7] = [
        DeflateWindow::B512,
        DeflateWindow::K1,
        DeflateWindow::K2,
        DeflateWindow::K4,
        DeflateWindow::K8,
        DeflateWindow::K16,
        DeflateWindow::K32,
    ];
}

impl std::str::FromStr for DeflateWindow {
    type Err = String;

    /// `512`, `1k`, `2k`, `4k`, `8k`, `16k` or `32k` (case-insensitive, `KiB`/`kb` accepted),
    /// as command lines spell them.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let digits = lower
            .trim_end_matches("ib")
            .trim_end_matches('b')
            .trim_end_matches('k');
        let kilo = digits.len() < lower.trim_end_matches("ib").trim_end_matches('b').len();
        let n: usize = digits
            .parse()
            .map_err(|_| format!("{s:?} is not a window size (512, 1k, 2k, 4k, 8k, 16k, 32k)"))?;
        let bytes = if kilo { n.saturating_mul(1024) } else { n };
        DeflateWindow::ALL
            .into_iter()
            .find(|w| w.bytes() == bytes)
            .ok_or_else(|| format!("{s:?} is not a window size (512, 1k, 2k, 4k, 8k, 16k, 32k)"))
    }
}

/// Whether one outgoing message is compressed on a connection that negotiated
/// permessage-deflate (`send_with`, `publish_with`). Connections without the extension always
/// get it uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Compress {
    /// Compress when the message is at least [`Config::compression_threshold`] bytes. What
    /// `send` and `publish` do.
    #[default]
    Auto,
    /// Compress whatever its size (e.g. a small message of a compressible stream, worth it with
    /// a dedicated context).
    Always,
    /// Send it uncompressed whatever its size (e.g. data already compressed: images, archives).
    Never,
}

/// How accepted sockets reach the worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptMode {
    /// Every worker owns a listener bound with `SO_REUSEPORT`; the kernel spreads connections.
    /// Falls back to [`AcceptMode::Acceptor`] where the platform lacks it.
    ReusePort,
    /// One acceptor thread accepts and hands sockets to workers round-robin.
    Acceptor,
}

/// Server configuration. Build it with [`Config::default`] and the chainable setters, or set the
/// public fields directly.
///
/// ```
/// use std::time::Duration;
/// let cfg = volley::Config::default()
///     .workers(2)
///     .max_message_size(1 << 20)
///     .ping_interval(Some(Duration::from_secs(15)));
/// assert_eq!(cfg.workers, 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Worker threads, each with its own event loop. Default: the available parallelism.
    pub workers: usize,
    /// Expect a PROXY protocol header (v1 or v2, as HAProxy, AWS NLB and nginx send it) before
    /// the request on every connection, and take the client's address from it
    /// (`Request::client_addr`, `Context::client_addr`). A connection whose first bytes are not
    /// a valid header is closed with a log line. Default: false. Enable it only behind a proxy
    /// that always sends the header: otherwise any client could claim any address.
    pub proxy_protocol: bool,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed, as networks
    /// (`"10.0.0.0/8".parse()`). When the connection comes from one of them, the client address
    /// is the right-most hop that is not a trusted proxy. Headers from any other peer are
    /// ignored, so a client cannot spoof its address by sending them. Default: none.
    pub trusted_proxies: Vec<IpNetwork>,
    /// Most open WebSocket connections per client IP (after `proxy_protocol` / `trusted_proxies`
    /// have said who the client is; IPv6 grouped by [`Config::ipv6_prefix`]). Over it the
    /// upgrade is answered 429 with `Retry-After`. Default: no limit. Guards against one host
    /// taking every slot of `max_connections`.
    pub max_connections_per_ip: Option<usize>,
    /// Upgrades per client IP per second, with a burst (a token bucket). Over it: 429 with
    /// `Retry-After` (the seconds until a token is back). Default: no limit. Guards against
    /// connect floods from one host, and clients reconnecting in a tight loop.
    pub handshakes_per_ip: Option<Rate>,
    /// IPv6 clients count per network of this prefix length for the per-IP limits (one host
    /// usually owns a whole /64, and could otherwise rotate addresses). Default: 64.
    pub ipv6_prefix: u8,
    /// Most client addresses the per-IP table tracks beside those with open connections; when
    /// full, addresses without an open connection are forgotten (their rate state restarts).
    /// Default: 65,536. Bounds the table's memory against an attacker cycling addresses.
    pub max_tracked_ips: usize,
    /// How accepted sockets reach workers. Default: [`AcceptMode::ReusePort`] (measured faster;
    /// see docs/BENCHMARKS.md).
    pub accept_mode: AcceptMode,
    /// Largest frame payload accepted, in bytes; a larger declared length is answered with close
    /// 1009 before its payload is read. Default: 16 MiB. Guards against memory exhaustion.
    pub max_frame_size: usize,
    /// Largest message accepted (all fragments together, after inflating), in bytes; over it the
    /// connection is closed with 1009. Default: 16 MiB.
    pub max_message_size: usize,
    /// Receive large messages in pieces as they arrive ([`Handler::on_chunk`]) instead of
    /// whole, on every connection; a connection can change its own with
    /// [`Context::set_streaming`]. Streamed messages are bounded by [`Streaming::max_size`]
    /// instead of `max_message_size`/`max_frame_size`, and cost the server no more memory than
    /// a read. Default: `None` (every message arrives whole).
    ///
    /// [`Handler::on_chunk`]: crate::Handler::on_chunk
    /// [`Context::set_streaming`]: crate::Context::set_streaming
    pub streaming: Option<Streaming>,
    /// Largest HTTP upgrade request head, in bytes; over it the answer is 431. Default: 16 KiB.
    /// Guards against header floods.
    pub max_handshake_bytes: usize,
    /// Most headers in an upgrade request; over it the answer is 431. Default: 64.
    pub max_headers: usize,
    /// Size of each worker's shared read buffer (one per worker, not per connection), in bytes;
    /// also the most read from one socket per read call (the rest of a large frame is read
    /// straight into its own buffer instead). Default: 64 KiB (256 KiB measured no better at
    /// 256 KiB messages and worse at 20 B; docs/BENCHMARKS.md).
    pub read_buffer_size: usize,
    /// Most bytes queued for one connection and not yet accepted by its socket. Over it,
    /// [`Config::backpressure`] applies. Default: 16 MiB. Guards against slow readers growing the
    /// server's memory without bound.
    pub max_outbound_bytes: usize,
    /// What happens at [`Config::max_outbound_bytes`]. Default: [`BackpressurePolicy::Close`].
    pub backpressure: BackpressurePolicy,
    /// Data messages a connection may send per second, with a burst (a token bucket per
    /// connection). Over it, [`Config::rate_limit_policy`] applies and the message is counted in
    /// `Stats::rate_limited`. Default: no limit. Guards against one client flooding the handler
    /// (and the rooms it publishes to).
    pub message_rate: Option<Rate>,
    /// Payload bytes of data messages a connection may send per second, with a burst in bytes
    /// (a token bucket per connection; a message larger than the burst is always over it).
    /// Default: no limit. Guards against bandwidth floods that stay under `message_rate`.
    pub byte_rate: Option<Rate>,
    /// What happens to a message over `message_rate` or `byte_rate`. Default:
    /// [`RateLimitPolicy::Close`].
    pub rate_limit_policy: RateLimitPolicy,
    /// Most open connections (WebSocket and pending handshakes) in the whole server; a connection
    /// over it is answered `503 Service Unavailable` and closed. Default: 100,000.
    pub max_connections: usize,
    /// Time allowed from accept to a complete upgrade request; then the socket is dropped.
    /// It also bounds a deferred upgrade ([`Request::defer`](crate::Request::defer)): a
    /// decision not made by then is answered `503` and the handle sees the client gone.
    /// `None` disables. Default: 10 s. Guards against slowloris clients, and against
    /// deferred upgrades piling up behind a slow authentication service.
    pub handshake_timeout: Option<Duration>,
    /// After we send a close frame, how long the peer has to answer before the TCP connection is
    /// dropped. Also bounds graceful shutdown. Default: 5 s.
    pub close_timeout: Duration,
    /// Send a ping after this long without any traffic from the peer. `None` disables heartbeats.
    /// Default: 30 s. Any inbound frame counts as liveness, so busy connections are not pinged.
    pub ping_interval: Option<Duration>,
    /// After a heartbeat ping, how long the peer has to show any sign of life (a pong or anything
    /// else) before the connection is dropped and its handler sees close 1006 with reason
    /// `"timeout"`. Default: 10 s. Frees the slots of peers that vanished without a FIN.
    pub pong_timeout: Duration,
    /// Close (1000, `"idle timeout"`) a connection that has sent no data message for this long.
    /// Pings and pongs do not count. `None` disables. Default: `None`.
    pub idle_timeout: Option<Duration>,
    /// permessage-deflate mode. Default: [`DeflateMode::Shared`].
    pub deflate: DeflateMode,
    /// Messages shorter than this go out uncompressed even on a deflate connection (compressing
    /// tiny messages costs more CPU than it saves bytes). Default: 1024 (as Node's `ws`).
    pub compression_threshold: usize,
    /// Compression level 0–9. Default: 1
    /// ([`DEFAULT_LEVEL`](crate::protocol::deflate::DEFAULT_LEVEL): 8× faster than zlib's 6 on
    /// 1 KiB JSON, ~25% larger output; see docs/BENCHMARKS.md).
    pub deflate_level: u8,
    /// zlib memory level 1–9 of our compressors. Default: 4
    /// ([`DEFAULT_MEM_LEVEL`](crate::protocol::deflate::DEFAULT_MEM_LEVEL)).
    pub deflate_mem_level: u8,
    /// Window bits 9–15 of per-connection compressors in [`DeflateMode::Dedicated`]
    /// (announced as `server_max_window_bits`). Default: 15
    /// ([`MAX_WINDOW_BITS`](crate::protocol::deflate::MAX_WINDOW_BITS)).
    pub deflate_window_bits: u8,
    /// Window bits 9–15 the client's compressor may use in [`DeflateMode::Dedicated`], announced
    /// as `client_max_window_bits` to clients that offer it (browsers do); each such connection
    /// holds a window of this size for inflating. Clients that do not offer it may use 15.
    /// Default: 15 ([`MAX_WINDOW_BITS`](crate::protocol::deflate::MAX_WINDOW_BITS)).
    pub deflate_client_window_bits: u8,
    /// In [`DeflateMode::Dedicated`], release the compressor of a connection that has not
    /// compressed a message for this long, down to its window (at most 2^window_bits bytes):
    /// the next message continues the same stream from it, so the peer notices nothing. Checked
    /// when the connection's heartbeat or idle timer fires, so the release happens within one
    /// [`Config::ping_interval`] after this time. `None` keeps compressors for the connection's
    /// life. Default: 30 s.
    pub deflate_idle_release: Option<Duration>,
    /// Set `TCP_NODELAY` on accepted sockets (volley batches writes itself). Default: true.
    pub tcp_nodelay: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            accept_mode: AcceptMode::ReusePort,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            message_rate: None,
            byte_rate: None,
            rate_limit_policy: RateLimitPolicy::Close,
            max_connections_per_ip: None,
            handshakes_per_ip: None,
            ipv6_prefix: 64,
            max_tracked_ips: 65_536,
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            streaming: None,
            max_handshake_bytes: 16 << 10,
            max_headers: 64,
            read_buffer_size: 64 << 10,
            max_outbound_bytes: 16 << 20,
            backpressure: BackpressurePolicy::Close,
            max_connections: 100_000,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            deflate: DeflateMode::Shared,
            compression_threshold: 1024,
            deflate_level: DEFAULT_LEVEL,
            deflate_mem_level: DEFAULT_MEM_LEVEL,
            deflate_window_bits: MAX_WINDOW_BITS,
            deflate_client_window_bits: MAX_WINDOW_BITS,
            deflate_idle_release: Some(Duration::from_secs(30)),
            tcp_nodelay: true,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl Config {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Set [`Config::workers`] (at least 1 is used).
    workers: usize,
    /// Set [`Config::accept_mode`].
    accept_mode: AcceptMode,
    /// Set [`Config::proxy_protocol`].
    proxy_protocol: bool,
    /// Set [`Config::trusted_proxies`].
    trusted_proxies: Vec<IpNetwork>,
    /// Set [`Config::message_rate`].
    message_rate: Option<Rate>,
    /// Set [`Config::byte_rate`].
    byte_rate: Option<Rate>,
    /// Set [`Config::rate_limit_policy`].
    rate_limit_policy: RateLimitPolicy,
    /// Set [`Config::max_connections_per_ip`].
    max_connections_per_ip: Option<usize>,
    /// Set [`Config::handshakes_per_ip`].
    handshakes_per_ip: Option<Rate>,
    /// Set [`Config::ipv6_prefix`].
    ipv6_prefix: u8,
    /// Set [`Config::max_tracked_ips`].
    max_tracked_ips: usize,
    /// Set [`Config::max_frame_size`].
    max_frame_size: usize,
    /// Set [`Config::max_message_size`].
    max_message_size: usize,
    /// Set [`Config::streaming`].
    streaming: Option<Streaming>,
    /// Set [`Config::max_handshake_bytes`].
    max_handshake_bytes: usize,
    /// Set [`Config::max_headers`].
    max_headers: usize,
    /// Set [`Config::read_buffer_size`].
    read_buffer_size: usize,
    /// Set [`Config::max_outbound_bytes`].
    max_outbound_bytes: usize,
    /// Set [`Config::backpressure`].
    backpressure: BackpressurePolicy,
    /// Set [`Config::max_connections`].
    max_connections: usize,
    /// Set [`Config::handshake_timeout`].
    handshake_timeout: Option<Duration>,
    /// Set [`Config::close_timeout`].
    close_timeout: Duration,
    /// Set [`Config::ping_interval`].
    ping_interval: Option<Duration>,
    /// Set [`Config::pong_timeout`].
    pong_timeout: Duration,
    /// Set [`Config::idle_timeout`].
    idle_timeout: Option<Duration>,
    /// Set [`Config::deflate`].
    deflate: DeflateMode,
    /// Set [`Config::compression_threshold`].
    compression_threshold: usize,
    /// Set [`Config::deflate_level`].
    deflate_level: u8,
    /// Set [`Config::deflate_mem_level`].
    deflate_mem_level: u8,
    /// Set [`Config::deflate_window_bits`].
    deflate_window_bits: u8,
    /// Set [`Config::deflate_client_window_bits`].
    deflate_client_window_bits: u8,
    /// Set [`Config::deflate_idle_release`].
    deflate_idle_release: Option<Duration>,
    /// Set [`Config::tcp_nodelay`].
    tcp_nodelay: bool,
}

impl Config {
    /// [`DeflateMode::Dedicated`] with a compressor of window `compressor` (and its matching
    /// memLevel) per connection, and client compressors limited to `decompressor` where they
    /// allow it; like uWebSockets' `DEDICATED_COMPRESSOR_* | DEDICATED_DECOMPRESSOR_*`.
    /// `dedicated_deflate(DeflateWindow::B512, DeflateWindow::K4)` holds about 14 KiB per
    /// connection that compressed both ways (docs/BENCHMARKS.md).
    pub fn dedicated_deflate(
        mut self,
        compressor: DeflateWindow,
        decompressor: DeflateWindow,
    ) -> Self {
        self.deflate = DeflateMode::Dedicated;
        self.deflate_window_bits = compressor.bits();
        self.deflate_mem_level = compressor.mem_level();
        self.deflate_client_window_bits = decompressor.bits();
        self
    }
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or one address): which peers are trusted
/// proxies ([`Config::trusted_proxies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network of `addr` with a `prefix`-bit mask (clamped to the address's width).
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        IpNetwork {
            addr,
            prefix: prefix.min(max),
        }
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNetwork {
    type Err = std::net::AddrParseError;
    /// `"10.0.0.0/8"`, `"2001:db8::/32"` or a single address (`"127.0.0.1"`). A prefix that is
    /// not a number is an error; one wider than the address is clamped.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            None => {
                let addr: IpAddr = s.parse()?;
                Ok(IpNetwork::new(addr, 128))
            }
            Some((a, p)) => {
                let addr: IpAddr = a.parse()?;
                // Reuse the address parser's error type for a bad prefix.
                let prefix = p
                    .parse::<u8>()
                    .map_err(|_| "x".parse::<IpAddr>().unwrap_err())?;
                Ok(IpNetwork::new(addr, prefix))
            }
        }
    }
}

/// A rate with a burst, for a token bucket: `burst` events at once, then `per_second` on
/// average ([`Config::handshakes_per_ip`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed at once (the bucket's size; at least 1 is used).
    pub burst: u32,
}

impl Rate {
    /// `per_second` on average, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Rate { per_second, burst }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_windows_parse_as_command_lines_spell_them() {
        for (s, w) in [
            ("512", DeflateWindow::B512),
            ("512b", DeflateWindow::B512),
            ("1k", DeflateWindow::K1),
            ("4K", DeflateWindow::K4),
            ("16KiB", DeflateWindow::K16),
            ("32kb", DeflateWindow::K32),
        ] {
            assert_eq!(s.parse::<DeflateWindow>(), Ok(w), "{s}");
        }
        for bad in ["", "k", "3k", "64k", "4096k", "-1", "4 k"] {
            assert!(bad.parse::<DeflateWindow>().is_err(), "{bad}");
        }
        for w in DeflateWindow::ALL {
            assert_eq!(w.bytes(), 1 << w.bits());
            assert!((1..=4).contains(&w.mem_level()));
        }
    }

    #[test]
    fn dedicated_deflate_sets_both_windows() {
        let c = Config::default().dedicated_deflate(DeflateWindow::B512, DeflateWindow::K4);
        assert_eq!(c.deflate, DeflateMode::Dedicated);
        assert_eq!(
            (
                c.deflate_window_bits,
                c.deflate_mem_level,
                c.deflate_client_window_bits
            ),
            (9, 1, 12)
        );
    }
}
