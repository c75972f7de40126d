//! The Prometheus text exposition (format 0.0.4) of a server's statistics (`metrics` feature):
//! what `ServerHandle::metrics` returns and what `ServerBuilder::metrics_path` serves.
//!
//! Written by hand rather than through a client library: the values already live in per-worker
//! single-writer counters and histograms (`stats.rs`, `histogram.rs`), and the format's three line
//! shapes (`# HELP`, `# TYPE`, `name{labels} value`) are all an exporter of existing values needs.
//! A scrape sums the workers (relaxed loads, no locks but the topic map's, held to count it) and
//! costs the hot path nothing. Python's `prometheus_client` parser and a real Prometheus check the
//! output in the tests.

use std::fmt::{self, Write};
use std::sync::atomic::Ordering::Relaxed;

use crate::protocol::handshake::write_response;
use crate::runtime::histogram::{Histogram, Snapshot, WorkerHistograms, BOUNDS_NS};
use crate::runtime::stats::Stats;
use crate::runtime::Shared;
use Values::{Bridge, Latency, LatencyPerWorker, PerWorker, Server, Total};

/// The content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer to a plain HTTP request for the metrics path, if `method` and `path` (without
/// its query) name it: `GET` (or `HEAD`) of exactly that path. Counted as an HTTP request like
/// any other.
pub(crate) fn answer(shared: &Shared, method: &str, path: &str) -> Option<Vec<u8>> {
    let ours = shared.metrics_path.as_deref()?;
    if path != ours || !matches!(method, "GET" | "HEAD") {
        return None;
    }
    let mut text = String::with_capacity(8 << 10);
    // Writing to a String cannot fail.
    let _ = write(shared, &mut text);
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        text.into_bytes()
    };
    let mut bytes = Vec::with_capacity(160 + body.len());
    write_response(
        &mut bytes,
        200,
        &[("Content-Type".to_owned(), CONTENT_TYPE.to_owned())],
        &body,
        true,
    );
    Some(bytes)
}

/// What a scrape reads once: the workers' counters (each, and summed), the bridge's, and the
/// counts kept in the shared state.
struct Scrape {
    per_worker: Vec<Stats>,
    total: Stats,
    /// `None` without a bridge: its metrics are left out.
    bridge: Option<Stats>,
    sockets: u64,
    topics: u64,
    subscriptions: u64,
    /// Publications held in every stream's history.
    history: u64,
}

impl Scrape {
    fn read(shared: &Shared) -> Self {
        let mut total = Stats::default();
        let per_worker: Vec<Stats> = shared
            .stats
            .iter()
            .map(|w| {
                let mut s = Stats::default();
                s.add(w);
                total.add(w);
                s
            })
            .collect();
        let (topics, subscriptions) = {
            let g = shared.topics.lock().unwrap_or_else(|e| e.into_inner());
            (g.len() as u64, g.values().map(|&n| n as u64).sum::<u64>())
        };
        Scrape {
            per_worker,
            total,
            bridge: shared.bridge.as_ref().map(|_| {
                let mut b = Stats::default();
                shared.bridge_stats.add_to(&mut b);
                b
            }),
            sockets: shared.conn_count.load(Relaxed) as u64,
            topics,
            subscriptions,
            history: shared.streams.held() as u64,
        }
    }
}

/// A metric's samples from counters: each a label set (`""`: none) and how to read its value.
type Samples = &'static [(&'static str, fn(&Stats) -> u64)];

/// Where a metric's samples come from.
enum Values {
    /// The server's counters summed over workers, one sample per label set (`""`: no labels).
    Total(Samples),
    /// One sample per worker, labelled `worker="N"` (sum them for the server's figure).
    PerWorker(fn(&Stats) -> u64),
    /// One value of the scrape that is not a worker counter.
    Server(fn(&Scrape) -> u64),
    /// The bridge's counters, one sample per label set; the metric is left out without a bridge.
    Bridge(Samples),
    /// A latency histogram summed over workers.
    Latency(fn(&WorkerHistograms) -> &Histogram),
    /// A latency histogram per worker, labelled `worker="N"`.
    LatencyPerWorker(fn(&WorkerHistograms) -> &Histogram),
}

/// One metric family: name, Prometheus type, help text, and where its values come from.
struct Metric(&'static str, &'static str, &'static str, Values);

/// Every metric, in the order of the exposition.
#[rustfmt::skip]
const METRICS: &[Metric] = &[
    Metric("volley_connections_open", "gauge", "WebSocket connections open now.",
        PerWorker(|s| s.connections_open)),
    Metric("volley_connections_total", "counter", "WebSocket connections opened since start.",
        Total(&[("", |s| s.connections_total)])),
    Metric("volley_sockets_open", "gauge",
        "Sockets held (handshaking and open), counted against max_connections.",
        Server(|s| s.sockets)),
    Metric("volley_http_requests_total", "counter",
        "Plain HTTP requests answered (Factory::http, the metrics path).",
        Total(&[("", |s| s.http_requests)])),
    Metric("volley_handshakes_rejected_total", "counter", "Upgrade requests refused, by reason.",
        Total(&[
            ("reason=\"malformed\"", |s| s.rejected_malformed),
            ("reason=\"method\"", |s| s.rejected_method),
            ("reason=\"version\"", |s| s.rejected_version),
            ("reason=\"too_large\"", |s| s.rejected_too_large),
            ("reason=\"application\"", |s| s.rejected_by_application),
            ("reason=\"factory_panic\"", |s| s.rejected_factory_panic),
            ("reason=\"capacity\"", |s| s.rejected_over_capacity),
            ("reason=\"per_ip\"", |s| s.rejected_per_ip),
            ("reason=\"undecided\"", |s| s.rejected_undecided),
        ])),
    Metric("volley_upgrades_deferred_total", "counter",
        "Upgrades the application deferred to decide on another thread.",
        Total(&[("", |s| s.upgrades_deferred)])),
    Metric("volley_messages_received_total", "counter", "Data messages received, by opcode.",
        Total(&[
            ("opcode=\"text\"", |s| s.text_messages_in),
            ("opcode=\"binary\"", |s| s.messages_in.saturating_sub(s.text_messages_in)),
        ])),
    Metric("volley_messages_sent_total", "counter",
        "Data messages queued for sending (a publish counts once per recipient), by opcode.",
        Total(&[
            ("opcode=\"text\"", |s| s.text_messages_out),
            ("opcode=\"binary\"", |s| s.messages_out.saturating_sub(s.text_messages_out)),
        ])),
    Metric("volley_bytes_received_total", "counter",
        "Payload bytes of data messages received (after inflating).",
        Total(&[("", |s| s.bytes_in)])),
    Metric("volley_bytes_sent_total", "counter",
        "Bytes written to sockets (frames, headers included).",
        Total(&[("", |s| s.bytes_out)])),
    Metric("volley_compressed_messages_total", "counter",
        "permessage-deflate compressed messages, by direction.",
        Total(&[
            ("direction=\"received\"", |s| s.compressed_in),
            ("direction=\"sent\"", |s| s.compressed_out),
        ])),
    Metric("volley_deflate_contexts_released_total", "counter",
        "Idle per-connection compressors released down to their window.",
        Total(&[("", |s| s.deflate_released)])),
    Metric("volley_tls_errors_total", "counter",
        "TLS connections closed for a TLS error (plaintext on a TLS port, a bad record, a \
         failed handshake).",
        Total(&[("", |s| s.tls_errors)])),
    Metric("volley_closes_total", "counter",
        "WebSocket connections closed, by the close code their handler saw (1006: no close \
         handshake).",
        Total(&[
            ("code=\"1000\"", |s| s.closes_normal),
            ("code=\"1001\"", |s| s.closes_going_away),
            ("code=\"1002\"", |s| s.closes_protocol_error),
            ("code=\"1003\"", |s| s.closes_unsupported),
            ("code=\"1005\"", |s| s.closes_no_status),
            ("code=\"1006\"", |s| s.closes_abnormal),
            ("code=\"1007\"", |s| s.closes_invalid_payload),
            ("code=\"1008\"", |s| s.closes_policy),
            ("code=\"1009\"", |s| s.closes_too_big),
            ("code=\"1011\"", |s| s.closes_internal),
            ("code=\"other\"", |s| s.closes_other),
        ])),
    Metric("volley_protocol_errors_total", "counter",
        "Connections failed for a protocol violation by the peer, by the close code sent.",
        Total(&[
            ("code=\"1002\"", |s| s.closed_protocol_error),
            ("code=\"1007\"", |s| s.closed_invalid_payload),
            ("code=\"1009\"", |s| s.closed_too_big),
        ])),
    Metric("volley_timeouts_total", "counter",
        "Connections ended by a timeout (handshake, heartbeat, idle, close).",
        Total(&[("", |s| s.timeouts)])),
    Metric("volley_backpressure_events_total", "counter",
        "Sends refused at a connection's outbound limit, by what the policy did.",
        Total(&[
            ("action=\"closed\"", |s| s.slow_consumers_closed),
            ("action=\"dropped\"", |s| s.dropped_messages),
        ])),
    Metric("volley_dropped_deliveries_total", "counter",
        "Messages dropped for a recipient at its outbound limit (BackpressurePolicy::Drop).",
        Total(&[("", |s| s.dropped_messages)])),
    Metric("volley_outbound_queued_bytes", "gauge", "Bytes queued for sending and not yet written.",
        PerWorker(Stats::queued_bytes)),
    Metric("volley_topics", "gauge", "Topics with at least one subscriber.",
        Server(|s| s.topics)),
    Metric("volley_subscriptions", "gauge",
        "Subscriptions (a connection subscribed to a topic) across all topics.",
        Server(|s| s.subscriptions)),
    Metric("volley_history_publications", "gauge",
        "Publications held in the history of topics that keep one (for recovery).",
        Server(|s| s.history)),
    Metric("volley_recoveries_total", "counter",
        "Stream subscriptions from a position, by outcome: every missed publication sent, or not recoverable.",
        Total(&[("outcome=\"recovered\"", |s| s.recoveries), ("outcome=\"failed\"", |s| s.recoveries_failed)])),
    Metric("volley_bridge_connected", "gauge",
        "1 while the bridge to other nodes reaches its broker, else 0.",
        Bridge(&[("", |b| b.bridge_connected)])),
    Metric("volley_bridge_messages_total", "counter",
        "Messages through the bridge to other nodes, by direction (dropped: the outgoing \
         queue was full).",
        Bridge(&[
            ("direction=\"published\"", |b| b.bridge_published),
            ("direction=\"received\"", |b| b.bridge_received),
            ("direction=\"dropped\"", |b| b.bridge_dropped),
        ])),
    Metric("volley_bridge_reconnects_total", "counter",
        "Connections to the bridge's broker made again after one was lost.",
        Bridge(&[("", |b| b.bridge_reconnects)])),
    Metric("volley_handler_duration_seconds", "histogram",
        "From the read that completed a message to the end of its handler call.",
        Latency(|w| &w.handler)),
    Metric("volley_queue_wait_seconds", "histogram",
        "From a connection's oldest queued frame to the write that emptied its queue.",
        Latency(|w| &w.queue_wait)),
    Metric("volley_loop_turn_duration_seconds", "histogram",
        "One event-loop turn per worker: from poll's return to the end of its flushes.",
        LatencyPerWorker(|w| &w.turn)),
    Metric("volley_loop_lag_seconds", "histogram",
        "How late each worker woke for a timer deadline it asked poll for.",
        LatencyPerWorker(|w| &w.lag)),
];

/// Write every metric of the server behind `shared` to `out`.
pub(crate) fn write(shared: &Shared, out: &mut impl Write) -> fmt::Result {
    let scrape = Scrape::read(shared);
    for Metric(name, kind, help, values) in METRICS {
        if matches!(values, Bridge(_)) && scrape.bridge.is_none() {
            continue;
        }
        writeln!(out, "# HELP {name} {help}")?;
        writeln!(out, "# TYPE {name} {kind}")?;
        match values {
            Total(samples) => labelled(out, name, samples, &scrape.total)?,
            Bridge(samples) => {
                if let Some(b) = &scrape.bridge {
                    labelled(out, name, samples, b)?;
                }
            }
            PerWorker(v) => {
                for (i, w) in scrape.per_worker.iter().enumerate() {
                    sample(out, name, &format!("worker=\"{i}\""), v(w))?;
                }
            }
            Server(v) => sample(out, name, "", v(&scrape))?,
            Latency(pick) => {
                let mut all = Snapshot::default();
                for w in shared.histograms.iter() {
                    pick(w).add_to(&mut all);
                }
                histogram(out, name, "", &all)?;
            }
            LatencyPerWorker(pick) => {
                for (i, w) in shared.histograms.iter().enumerate() {
                    let mut snap = Snapshot::default();
                    pick(w).add_to(&mut snap);
                    histogram(out, name, &format!("worker=\"{i}\""), &snap)?;
                }
            }
        }
    }
    Ok(())
}

/// `name{labels} value`, without braces for empty labels.
fn sample(out: &mut impl Write, name: &str, labels: &str, value: impl fmt::Display) -> fmt::Result {
    if labels.is_empty() {
        writeln!(out, "{name} {value}")
    } else {
        writeln!(out, "{name}{{{labels}}} {value}")
    }
}

/// One sample per label set, read from `stats`.
fn labelled(out: &mut impl Write, name: &str, samples: Samples, stats: &Stats) -> fmt::Result {
    for (labels, v) in samples {
        sample(out, name, labels, v(stats))?;
    }
    Ok(())
}

/// The buckets (cumulative), sum and count of one histogram series.
fn histogram(out: &mut impl Write, name: &str, labels: &str, snap: &Snapshot) -> fmt::Result {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (bound, n) in BOUNDS_NS.iter().zip(&snap.buckets) {
        cumulative += n;
        let le = *bound as f64 / 1e9;
        writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        )?;
    }
    cumulative += snap.buckets[BOUNDS_NS.len()];
    writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
    )?;
    sample(
        out,
        &format!("{name}_sum"),
        labels,
        snap.sum_ns as f64 / 1e9,
    )?;
    sample(out, &format!("{name}_count"), labels, cumulative)
}
