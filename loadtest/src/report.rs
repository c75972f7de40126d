//! What a run found: counters, errors by cause, histograms, server samples; merging the partial
//! reports of threads and processes; the derived figures; the summary table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::cli::Options;
use crate::hist::{fmt_ns, Hist};

/// Plain counts, summed over threads and processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Connections attempted.
    pub attempted: u64,
    /// Handshakes completed.
    pub established: u64,
    /// Connections that failed before the handshake completed (any cause).
    pub connect_failed: u64,
    /// Established connections lost before the client closed them (EOF, reset, protocol error,
    /// server close).
    pub dropped: u64,
    /// Connections whose server accepted the permessage-deflate offer.
    pub deflate_accepted: u64,
    /// Data messages sent (echo requests, broadcast publishes).
    pub sent: u64,
    /// Payload bytes sent.
    pub sent_bytes: u64,
    /// Data messages received.
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Messages received during the measurement window.
    pub window_received: u64,
    /// Payload bytes received during the measurement window.
    pub window_received_bytes: u64,
    /// Echo: replies whose bytes differ from what was sent (or that arrived unasked).
    pub mismatched: u64,
    /// Echo: requests still unanswered after the grace period.
    pub unanswered: u64,
    /// Broadcast: messages published.
    pub published: u64,
    /// Broadcast: messages published during the window.
    pub window_published: u64,
    /// Broadcast: an older sequence number than one already seen from the same publisher.
    pub out_of_order: u64,
    /// Broadcast with several targets: deliveries from a publisher on another target (server).
    pub cross_received: u64,
    /// Of those, during the measurement window.
    pub window_cross_received: u64,
    /// Messages that arrived compressed (permessage-deflate) and were inflated.
    pub compressed: u64,
    /// Pings received from the server (each answered with a pong).
    pub pings: u64,
    /// Close handshakes that completed at the end.
    pub closed_clean: u64,
    /// Total of the error map.
    pub errors: u64,
}

impl Counters {
    /// Add `o` to `self`, field by field.
    pub fn add(&mut self, o: &Counters) {
        self.attempted += o.attempted;
        self.established += o.established;
        self.connect_failed += o.connect_failed;
        self.dropped += o.dropped;
        self.deflate_accepted += o.deflate_accepted;
        self.sent += o.sent;
        self.sent_bytes += o.sent_bytes;
        self.received += o.received;
        self.received_bytes += o.received_bytes;
        self.window_received += o.window_received;
        self.window_received_bytes += o.window_received_bytes;
        self.mismatched += o.mismatched;
        self.unanswered += o.unanswered;
        self.published += o.published;
        self.window_published += o.window_published;
        self.out_of_order += o.out_of_order;
        self.cross_received += o.cross_received;
        self.window_cross_received += o.window_cross_received;
        self.compressed += o.compressed;
        self.pings += o.pings;
        self.closed_clean += o.closed_clean;
        self.errors += o.errors;
    }
}

/// Errors by cause, e.g. `"connect: connection refused" → 3`.
pub type ErrorMap = BTreeMap<String, u64>;

/// Count one error of `cause` (allocates only the first time a cause is seen).
pub fn count_error(map: &mut ErrorMap, cause: &str) {
    if let Some(n) = map.get_mut(cause) {
        *n += 1;
    } else {
        map.insert(cause.to_string(), 1);
    }
}

/// What a poll thread counts and times, and so, summed, a shard and a run: one list of fields,
/// which a [`Report`] holds flattened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tally {
    /// Counts.
    pub counters: Counters,
    /// Errors by cause.
    pub errors: ErrorMap,
    /// Handshake latency: TCP connect start → 101 response parsed.
    pub handshake: Hist,
    /// Echo round trip: request written → reply read.
    pub rtt: Hist,
    /// Broadcast fan-out: publisher's timestamp → receipt (wall clock, same machine).
    pub fanout: Hist,
    /// Of those, deliveries from a publisher on another target (server).
    pub fanout_cross: Hist,
}

impl Tally {
    /// Add `o` to `self`: counts and errors summed, histograms merged.
    pub fn merge(&mut self, o: &Tally) {
        self.counters.add(&o.counters);
        for (cause, n) in &o.errors {
            *self.errors.entry(cause.clone()).or_insert(0) += n;
        }
        self.handshake.merge(&o.handshake);
        self.rtt.merge(&o.rtt);
        self.fanout.merge(&o.fanout);
        self.fanout_cross.merge(&o.fanout_cross);
    }
}

/// The server process as seen through /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// utime + stime, seconds.
    pub cpu_s: f64,
}

/// Server samples: before connecting, once all are connected, at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// The server's pid.
    pub pid: u32,
    /// Before the first connection.
    pub before: Option<ProcSample>,
    /// Once every connection was established (or had failed).
    pub connected: Option<ProcSample>,
    /// After the window and the grace period, before closing.
    pub end: Option<ProcSample>,
}

/// Run parameters, for the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Params {
    /// Target URL.
    pub url: String,
    /// Connections requested.
    pub connections: u64,
    /// Poll threads per process.
    pub threads: u64,
    /// Client processes.
    pub processes: u64,
    /// Payload size.
    pub size: u64,
    /// In-flight window.
    pub in_flight: u64,
    /// Broadcast rate requested (msgs/s, 0 = window-limited).
    pub rate: f64,
    /// Broadcast publishers.
    pub publishers: u64,
    /// Window length requested, seconds.
    pub duration_s: f64,
    /// Grace period, seconds.
    pub grace_s: f64,
    /// permessage-deflate offered.
    pub deflate: bool,
    /// Number of source addresses (0 = kernel's choice).
    pub sources: u64,
}

impl Params {
    /// The parameters of `o`.
    pub fn from_options(o: &Options) -> Self {
        Params {
            url: {
                let mut u: Vec<String> = o.urls.iter().map(|u| u.to_string()).collect();
                if let Some(p) = &o.publish_url {
                    u.push(format!("(publishers: {p})"));
                }
                u.join(" ")
            },
            connections: o.connections as u64,
            threads: o.threads as u64,
            processes: o.child.map_or(o.processes, |(_, n)| n) as u64,
            size: o.size as u64,
            in_flight: o.in_flight as u64,
            rate: o.rate,
            publishers: o.publishers as u64,
            duration_s: o.duration.as_secs_f64(),
            grace_s: o.grace.as_secs_f64(),
            deflate: o.deflate,
            sources: o.sources.len() as u64,
        }
    }
}

/// Figures computed from the rest (recomputed after every merge; stored for machines).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Derived {
    /// Handshakes completed per second of the connect phase.
    pub handshakes_per_s: f64,
    /// Echo: replies per second in the window. Broadcast: deliveries per second in the window.
    pub messages_per_s: f64,
    /// Payload MB/s (10^6) received in the window.
    pub mb_per_s: f64,
    /// Broadcast: publishes per second in the window.
    pub published_per_s: f64,
    /// Broadcast with several targets: deliveries per second in the window from publishers on
    /// another target (server).
    pub cross_per_s: f64,
    /// Broadcast: deliveries expected (published × established connections).
    pub expected_deliveries: u64,
    /// Broadcast: expected minus received (never negative).
    pub lost: u64,
    /// Server RSS growth per established connection, bytes (before → connected).
    pub server_rss_per_conn: Option<f64>,
    /// Server CPU seconds spent per 1,000 connections while connecting.
    pub server_cpu_connect_ms_per_conn: Option<f64>,
    /// Server CPU share (cores) from connected to end.
    pub server_cpu_hold_cores: Option<f64>,
}

/// One run's report (or one shard's part of it, before merging).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Format version.
    pub version: u32,
    /// A name for this run (the server under test, usually).
    pub label: String,
    /// Scenario name.
    pub scenario: String,
    /// Parameters.
    pub params: Params,
    /// Seconds from the first connection attempt to the last handshake done or failed.
    pub connect_s: f64,
    /// Length of the measurement window, seconds.
    pub window_s: f64,
    /// Seconds from the end of the window until outstanding work drained (or grace expired).
    pub drain_s: f64,
    /// Counts, errors and latencies (in the JSON, its fields sit at this level).
    #[serde(flatten)]
    pub tally: Tally,
    /// Server samples from /proc.
    pub server: Option<ServerStats>,
    /// Derived figures.
    pub derived: Derived,
    /// Notes for the reader (e.g. deflate not accepted).
    pub notes: Vec<String>,
}

/// Report format version.
pub const VERSION: u32 = 1;

impl Report {
    /// An empty report for `o`.
    pub fn new(o: &Options) -> Self {
        Report {
            version: VERSION,
            label: o.label.clone(),
            scenario: o.scenario.name().to_string(),
            params: Params::from_options(o),
            ..Report::default()
        }
    }

    /// Fold a partial report (another thread's or process's) into this one. Times take the
    /// maximum: shards run side by side, and the slowest one bounds the phase.
    pub fn merge(&mut self, o: &Report) {
        self.connect_s = self.connect_s.max(o.connect_s);
        self.window_s = self.window_s.max(o.window_s);
        self.drain_s = self.drain_s.max(o.drain_s);
        self.tally.merge(&o.tally);
        for n in &o.notes {
            if !self.notes.contains(n) {
                self.notes.push(n.clone());
            }
        }
    }

    /// Recompute [`Derived`] and the error total.
    pub fn derive(&mut self) {
        let c = &mut self.tally.counters;
        c.errors = self.tally.errors.values().sum();
        let per = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let mut d = Derived {
            handshakes_per_s: per(c.established, self.connect_s),
            messages_per_s: per(c.window_received, self.window_s),
            mb_per_s: per(c.window_received_bytes, self.window_s) / 1e6,
            published_per_s: per(c.window_published, self.window_s),
            cross_per_s: per(c.window_cross_received, self.window_s),
            ..Derived::default()
        };
        if self.scenario == "broadcast" {
            d.expected_deliveries = c.published.saturating_mul(c.established);
            d.lost = d.expected_deliveries.saturating_sub(c.received);
        }
        if let Some(s) = &self.server {
            if let (Some(b), Some(a)) = (s.before, s.connected) {
                if c.established > 0 {
                    let n = c.established as f64;
                    d.server_rss_per_conn = Some((a.rss_bytes as f64 - b.rss_bytes as f64) / n);
                    d.server_cpu_connect_ms_per_conn = Some((a.cpu_s - b.cpu_s) * 1e3 / n);
                }
            }
            if let (Some(a), Some(e)) = (s.connected, s.end) {
                let held = self.window_s + self.drain_s;
                if held > 0.0 {
                    d.server_cpu_hold_cores = Some((e.cpu_s - a.cpu_s) / held);
                }
            }
        }
        self.derived = d;
    }

    /// Everything that counts against the run: errors, lost broadcast deliveries, out-of-order.
    pub fn failures(&self) -> u64 {
        let c = &self.tally.counters;
        c.errors + self.derived.lost + c.out_of_order
    }

    /// The histogram a scenario is about.
    pub fn main_hist(&self, metric: Option<&str>) -> (&'static str, &Hist) {
        match metric.unwrap_or(match self.scenario.as_str() {
            "echo" => "rtt",
            "broadcast" => "fanout",
            _ => "handshake",
        }) {
            "rtt" => ("round trip", &self.tally.rtt),
            "fanout" => ("fan-out latency", &self.tally.fanout),
            _ => ("handshake latency", &self.tally.handshake),
        }
    }

    /// The summary table for people.
    pub fn summary(&self) -> String {
        let c = &self.tally.counters;
        let mut s = String::new();
        self.write_head(&mut s);
        match self.scenario.as_str() {
            "echo" => self.write_echo(&mut s),
            "broadcast" => self.write_broadcast(&mut s),
            _ => {}
        }
        if c.pings > 0 {
            row(&mut s, "server pings answered", c.pings.to_string());
        }
        if let Some(sv) = &self.server {
            write_server(&mut s, sv, &self.derived);
        }
        row(&mut s, "errors", self.error_list());
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        s
    }

    /// The title, the target, and the rows every scenario has: connections, handshakes,
    /// permessage-deflate.
    fn write_head(&self, s: &mut String) {
        let c = &self.tally.counters;
        let p = &self.params;
        let _ = writeln!(
            s,
            "== volley-loadtest {} — {} ==",
            self.scenario, self.label
        );
        let _ = writeln!(
            s,
            "target {}  connections {}  processes {}  threads/process {}{}",
            p.url,
            p.connections,
            p.processes,
            p.threads,
            if p.sources > 0 {
                format!("  sources {}", p.sources)
            } else {
                String::new()
            }
        );
        row(
            s,
            "connections",
            format!(
                "{} established / {} attempted, {} failed, {} dropped",
                c.established, c.attempted, c.connect_failed, c.dropped
            ),
        );
        // Over wss:// every WebSocket handshake rides on a full TLS handshake (no resumption).
        let tls = p.url.starts_with("wss://");
        row(
            s,
            if tls {
                "TLS+WS handshakes/s"
            } else {
                "handshakes/s"
            },
            format!(
                "{:.0} (connect phase {:.2}s)",
                self.derived.handshakes_per_s, self.connect_s
            ),
        );
        row(s, "handshake latency", percentiles(&self.tally.handshake));
        if p.deflate {
            row(
                s,
                "permessage-deflate",
                format!(
                    "accepted by the server on {} of {} connections; {} of {} messages arrived compressed",
                    c.deflate_accepted, c.established, c.compressed, c.received
                ),
            );
        }
    }

    /// The echo rows: messages, throughput, round trip.
    fn write_echo(&self, s: &mut String) {
        let (c, d, p) = (&self.tally.counters, &self.derived, &self.params);
        row(
            s,
            "messages",
            format!(
                "{} sent, {} echoed, {} mismatched, {} unanswered",
                c.sent, c.received, c.mismatched, c.unanswered
            ),
        );
        row(
            s,
            "echo throughput",
            format!(
                "{:.0} msg/s, {:.2} MB/s ({} B payload, {} in flight/conn, window {:.2}s)",
                d.messages_per_s, d.mb_per_s, p.size, p.in_flight, self.window_s
            ),
        );
        row(s, "round trip", percentiles(&self.tally.rtt));
    }

    /// The broadcast rows: published, delivered, lost, fan-out, and across servers if any.
    fn write_broadcast(&self, s: &mut String) {
        let (c, d, p) = (&self.tally.counters, &self.derived, &self.params);
        row(
            s,
            "published",
            format!(
                "{} ({:.0}/s in window, {} publishers, {} B)",
                c.published, d.published_per_s, p.publishers, p.size
            ),
        );
        row(
            s,
            "delivered",
            format!(
                "{} of {} expected, {:.0}/s in window ({:.2} MB/s)",
                c.received, d.expected_deliveries, d.messages_per_s, d.mb_per_s
            ),
        );
        row(
            s,
            "lost / out of order",
            format!("{} / {}", d.lost, c.out_of_order),
        );
        row(s, "fan-out latency", percentiles(&self.tally.fanout));
        if c.cross_received > 0 {
            row(
                s,
                "across servers",
                format!(
                    "{} delivered, {:.0}/s in window",
                    c.cross_received, d.cross_per_s
                ),
            );
            row(
                s,
                "fan-out across servers",
                percentiles(&self.tally.fanout_cross),
            );
        }
    }

    /// `0`, or the total and every cause: `3 (2 × connect: refused; 1 × …)`.
    fn error_list(&self) -> String {
        if self.tally.errors.is_empty() {
            return "0".to_string();
        }
        let list: Vec<String> = self
            .tally
            .errors
            .iter()
            .map(|(k, v)| format!("{v} × {k}"))
            .collect();
        format!("{} ({})", self.tally.counters.errors, list.join("; "))
    }
}

/// One summary row: the name in a column, then the value.
fn row(s: &mut String, k: &str, v: String) {
    let _ = writeln!(s, "  {k:<26} {v}");
}

/// The server rows: RSS at the samples, and the figures derived from them.
fn write_server(s: &mut String, sv: &ServerStats, d: &Derived) {
    let mb = |x: Option<ProcSample>| {
        x.map_or("-".into(), |x| {
            format!("{:.1} MiB", x.rss_bytes as f64 / 1048576.0)
        })
    };
    row(
        s,
        "server RSS",
        format!(
            "before {}, connected {}, end {} (pid {})",
            mb(sv.before),
            mb(sv.connected),
            mb(sv.end),
            sv.pid
        ),
    );
    if let Some(b) = d.server_rss_per_conn {
        row(s, "server RSS / connection", format!("{b:.0} bytes"));
    }
    if let Some(ms) = d.server_cpu_connect_ms_per_conn {
        row(
            s,
            "server CPU / connection",
            format!("{:.1} µs while connecting", ms * 1e3),
        );
    }
    if let Some(cores) = d.server_cpu_hold_cores {
        row(s, "server CPU while held", format!("{cores:.3} cores"));
    }
}

/// `p50 … max (n samples)` for a histogram.
pub fn percentiles(h: &Hist) -> String {
    if h.count() == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        fmt_ns(h.at(50.0)),
        fmt_ns(h.at(90.0)),
        fmt_ns(h.at(99.0)),
        fmt_ns(h.at(99.9)),
        fmt_ns(h.max()),
        h.count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(established: u64, received: u64, window: f64, rtt: &[u64]) -> Report {
        let mut r = Report {
            scenario: "echo".into(),
            version: VERSION,
            ..Report::default()
        };
        r.connect_s = window / 10.0;
        r.window_s = window;
        r.tally.counters.attempted = established + 1;
        r.tally.counters.established = established;
        r.tally.counters.connect_failed = 1;
        r.tally.counters.received = received;
        r.tally.counters.window_received = received;
        r.tally.counters.window_received_bytes = received * 32;
        for &v in rtt {
            r.tally.rtt.record(v);
        }
        count_error(&mut r.tally.errors, "connect: connection refused");
        r
    }

    #[test]
    fn multi_process_merge_through_json() {
        let a = shard(100, 1000, 2.0, &[10_000, 20_000]);
        let b = shard(50, 3000, 2.5, &[30_000]);
        // Children send their reports as JSON; the parent merges what it parses.
        let a2: Report = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        let b2: Report = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(a2, a);
        let mut m = Report {
            scenario: "echo".into(),
            ..Report::default()
        };
        m.merge(&a2);
        m.merge(&b2);
        m.derive();
        assert_eq!(m.tally.counters.established, 150);
        assert_eq!(m.tally.counters.attempted, 152);
        assert_eq!(m.tally.counters.received, 4000);
        assert_eq!(m.tally.errors["connect: connection refused"], 2);
        assert_eq!(m.tally.counters.errors, 2);
        assert_eq!(m.window_s, 2.5);
        assert_eq!(m.connect_s, 0.25);
        assert_eq!(m.tally.rtt.count(), 3);
        assert!(m.tally.rtt.max() >= 30_000 && m.tally.rtt.max() < 30_100);
        assert!((m.derived.messages_per_s - 1600.0).abs() < 1e-9);
        assert!((m.derived.mb_per_s - 4000.0 * 32.0 / 2.5 / 1e6).abs() < 1e-12);
        assert!((m.derived.handshakes_per_s - 600.0).abs() < 1e-9);
        assert_eq!(m.failures(), 2);
    }

    #[test]
    fn broadcast_loss_is_expected_minus_delivered() {
        let mut r = Report {
            scenario: "broadcast".into(),
            window_s: 1.0,
            ..Report::default()
        };
        r.tally.counters.established = 10;
        r.tally.counters.published = 7;
        r.tally.counters.received = 65;
        r.tally.counters.out_of_order = 1;
        r.derive();
        assert_eq!(r.derived.expected_deliveries, 70);
        assert_eq!(r.derived.lost, 5);
        assert_eq!(r.failures(), 6);
        // More received than expected (duplicates) is not negative loss.
        r.tally.counters.received = 80;
        r.derive();
        assert_eq!(r.derived.lost, 0);
    }

    #[test]
    fn server_figures_per_connection() {
        let mut r = Report {
            scenario: "idle".into(),
            window_s: 10.0,
            ..Report::default()
        };
        r.tally.counters.established = 1000;
        r.server = Some(ServerStats {
            pid: 1,
            before: Some(ProcSample {
                rss_bytes: 10 << 20,
                cpu_s: 1.0,
            }),
            connected: Some(ProcSample {
                rss_bytes: (10 << 20) + 2_000_000,
                cpu_s: 1.5,
            }),
            end: Some(ProcSample {
                rss_bytes: (10 << 20) + 2_000_000,
                cpu_s: 1.6,
            }),
        });
        r.derive();
        assert_eq!(r.derived.server_rss_per_conn, Some(2000.0));
        assert!((r.derived.server_cpu_connect_ms_per_conn.unwrap() - 0.5).abs() < 1e-9);
        assert!((r.derived.server_cpu_hold_cores.unwrap() - 0.01).abs() < 1e-9);
        let s = r.summary();
        assert!(s.contains("server RSS / connection"), "{s}");
        assert!(s.contains("2000 bytes"), "{s}");
    }

    #[test]
    fn summary_shows_errors_by_cause() {
        let mut r = shard(10, 10, 1.0, &[1000]);
        count_error(&mut r.tally.errors, "echo: payload mismatch");
        r.derive();
        let s = r.summary();
        assert!(s.contains("errors"), "{s}");
        assert!(s.contains("1 × connect: connection refused"), "{s}");
        assert!(s.contains("1 × echo: payload mismatch"), "{s}");
        assert!(s.contains("round trip"), "{s}");
    }

    #[test]
    fn old_or_partial_json_still_parses() {
        let r: Report =
            serde_json::from_str(r#"{"scenario":"echo","counters":{"sent":3}}"#).unwrap();
        assert_eq!(r.tally.counters.sent, 3);
        assert_eq!(r.tally.rtt.count(), 0);
    }
}
