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
use crate::runtime::histogram::{Snapshot, BOUNDS_NS};
use crate::runtime::stats::Stats;
use crate::runtime::Shared;

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

/// Write every metric of the server behind `shared` to `out`.
pub(crate) fn write(shared: &Shared, out: &mut impl Write) -> fmt::Result {
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
    let s = &total;

    gauge_per_worker(
        out,
        "volley_connections_open",
        "WebSocket connections open now.",
        per_worker.iter().map(|w| w.connections_open),
    )?;
    counter(
        out,
        "volley_connections_total",
        "WebSocket connections opened since start.",
        &[("", s.connections_total)],
    )?;
    gauge(
        out,
        "volley_sockets_open",
        "Sockets held (handshaking and open), counted against max_connections.",
        shared.conn_count.load(Relaxed) as u64,
    )?;
    counter(
        out,
        "volley_http_requests_total",
        "Plain HTTP requests answered (Factory::http, the metrics path).",
        &[("", s.http_requests)],
    )?;
    counter(
        out,
        "volley_handshakes_rejected_total",
        "Upgrade requests refused, by reason.",
        &[
            ("reason=\"malformed\"", s.rejected_malformed),
            ("reason=\"method\"", s.rejected_method),
            ("reason=\"version\"", s.rejected_version),
            ("reason=\"too_large\"", s.rejected_too_large),
            ("reason=\"application\"", s.rejected_by_application),
            ("reason=\"factory_panic\"", s.rejected_factory_panic),
            ("reason=\"capacity\"", s.rejected_over_capacity),
            ("reason=\"per_ip\"", s.rejected_per_ip),
            ("reason=\"undecided\"", s.rejected_undecided),
        ],
    )?;
    counter(
        out,
        "volley_upgrades_deferred_total",
        "Upgrades the application deferred to decide on another thread.",
        &[("", s.upgrades_deferred)],
    )?;
    let binary_in = s.messages_in.saturating_sub(s.text_messages_in);
    counter(
        out,
        "volley_messages_received_total",
        "Data messages received, by opcode.",
        &[
            ("opcode=\"text\"", s.text_messages_in),
            ("opcode=\"binary\"", binary_in),
        ],
    )?;
    let binary_out = s.messages_out.saturating_sub(s.text_messages_out);
    counter(
        out,
        "volley_messages_sent_total",
        "Data messages queued for sending (a publish counts once per recipient), by opcode.",
        &[
            ("opcode=\"text\"", s.text_messages_out),
            ("opcode=\"binary\"", binary_out),
        ],
    )?;
    counter(
        out,
        "volley_bytes_received_total",
        "Payload bytes of data messages received (after inflating).",
        &[("", s.bytes_in)],
    )?;
    counter(
        out,
        "volley_bytes_sent_total",
        "Bytes written to sockets (frames, headers included).",
        &[("", s.bytes_out)],
    )?;
    counter(
        out,
        "volley_compressed_messages_total",
        "permessage-deflate compressed messages, by direction.",
        &[
            ("direction=\"received\"", s.compressed_in),
            ("direction=\"sent\"", s.compressed_out),
        ],
    )?;
    counter(
        out,
        "volley_deflate_contexts_released_total",
        "Idle per-connection compressors released down to their window.",
        &[("", s.deflate_released)],
    )?;
    counter(
        out,
        "volley_tls_errors_total",
        "TLS connections closed for a TLS error (plaintext on a TLS port, a bad record, a \
         failed handshake).",
        &[("", s.tls_errors)],
    )?;
    counter(
        out,
        "volley_closes_total",
        "WebSocket connections closed, by the close code their handler saw (1006: no close \
         handshake).",
        &[
            ("code=\"1000\"", s.closes_normal),
            ("code=\"1001\"", s.closes_going_away),
            ("code=\"1002\"", s.closes_protocol_error),
            ("code=\"1003\"", s.closes_unsupported),
            ("code=\"1005\"", s.closes_no_status),
            ("code=\"1006\"", s.closes_abnormal),
            ("code=\"1007\"", s.closes_invalid_payload),
            ("code=\"1008\"", s.closes_policy),
            ("code=\"1009\"", s.closes_too_big),
            ("code=\"1011\"", s.closes_internal),
            ("code=\"other\"", s.closes_other),
        ],
    )?;
    counter(
        out,
        "volley_protocol_errors_total",
        "Connections failed for a protocol violation by the peer, by the close code sent.",
        &[
            ("code=\"1002\"", s.closed_protocol_error),
            ("code=\"1007\"", s.closed_invalid_payload),
            ("code=\"1009\"", s.closed_too_big),
        ],
    )?;
    counter(
        out,
        "volley_timeouts_total",
        "Connections ended by a timeout (handshake, heartbeat, idle, close).",
        &[("", s.timeouts)],
    )?;
    counter(
        out,
        "volley_backpressure_events_total",
        "Sends refused at a connection's outbound limit, by what the policy did.",
        &[
            ("action=\"closed\"", s.slow_consumers_closed),
            ("action=\"dropped\"", s.dropped_messages),
        ],
    )?;
    counter(
        out,
        "volley_dropped_deliveries_total",
        "Messages dropped for a recipient at its outbound limit (BackpressurePolicy::Drop).",
        &[("", s.dropped_messages)],
    )?;
    gauge_per_worker(
        out,
        "volley_outbound_queued_bytes",
        "Bytes queued for sending and not yet written.",
        per_worker.iter().map(|w| w.queued_bytes()),
    )?;
    let (topics, subscriptions) = {
        let g = shared.topics.lock().unwrap_or_else(|e| e.into_inner());
        (g.len() as u64, g.values().map(|&n| n as u64).sum::<u64>())
    };
    gauge(
        out,
        "volley_topics",
        "Topics with at least one subscriber.",
        topics,
    )?;
    gauge(
        out,
        "volley_subscriptions",
        "Subscriptions (a connection subscribed to a topic) across all topics.",
        subscriptions,
    )?;
    if shared.bridge.is_some() {
        let mut b = Stats::default();
        shared.bridge_stats.add_to(&mut b);
        gauge(
            out,
            "volley_bridge_connected",
            "1 while the bridge to other nodes reaches its broker, else 0.",
            b.bridge_connected,
        )?;
        counter(
            out,
            "volley_bridge_messages_total",
            "Messages through the bridge to other nodes, by direction (dropped: the outgoing \
             queue was full).",
            &[
                ("direction=\"published\"", b.bridge_published),
                ("direction=\"received\"", b.bridge_received),
                ("direction=\"dropped\"", b.bridge_dropped),
            ],
        )?;
        counter(
            out,
            "volley_bridge_reconnects_total",
            "Connections to the bridge's broker made again after one was lost.",
            &[("", b.bridge_reconnects)],
        )?;
    }

    let hist = |pick: fn(&crate::runtime::histogram::WorkerHistograms) -> &_| {
        shared
            .histograms
            .iter()
            .map(|w| {
                let mut snap = Snapshot::default();
                crate::runtime::histogram::Histogram::add_to(pick(w), &mut snap);
                snap
            })
            .collect::<Vec<Snapshot>>()
    };
    let sum = |v: &[Snapshot]| {
        let mut all = Snapshot::default();
        for s in v {
            for (a, b) in all.buckets.iter_mut().zip(&s.buckets) {
                *a += b;
            }
            all.sum_ns += s.sum_ns;
        }
        all
    };
    histogram(
        out,
        "volley_handler_duration_seconds",
        "From the read that completed a message to the end of its handler call.",
        &[("", sum(&hist(|w| &w.handler)))],
    )?;
    histogram(
        out,
        "volley_queue_wait_seconds",
        "From a connection's oldest queued frame to the write that emptied its queue.",
        &[("", sum(&hist(|w| &w.queue_wait)))],
    )?;
    let labelled = |v: Vec<Snapshot>| {
        v.into_iter()
            .enumerate()
            .map(|(i, s)| (format!("worker=\"{i}\""), s))
            .collect::<Vec<_>>()
    };
    let turns = labelled(hist(|w| &w.turn));
    histogram(
        out,
        "volley_loop_turn_duration_seconds",
        "One event-loop turn per worker: from poll's return to the end of its flushes.",
        &turns
            .iter()
            .map(|(l, s)| (l.as_str(), s.clone()))
            .collect::<Vec<_>>(),
    )?;
    let lags = labelled(hist(|w| &w.lag));
    histogram(
        out,
        "volley_loop_lag_seconds",
        "How late each worker woke for a timer deadline it asked poll for.",
        &lags
            .iter()
            .map(|(l, s)| (l.as_str(), s.clone()))
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}

fn header(out: &mut impl Write, name: &str, help: &str, kind: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// `name{labels} value`, without braces for empty labels.
fn sample(out: &mut impl Write, name: &str, labels: &str, value: impl fmt::Display) -> fmt::Result {
    if labels.is_empty() {
        writeln!(out, "{name} {value}")
    } else {
        writeln!(out, "{name}{{{labels}}} {value}")
    }
}

fn counter(out: &mut impl Write, name: &str, help: &str, samples: &[(&str, u64)]) -> fmt::Result {
    header(out, name, help, "counter")?;
    for (labels, v) in samples {
        sample(out, name, labels, v)?;
    }
    Ok(())
}

fn gauge(out: &mut impl Write, name: &str, help: &str, value: u64) -> fmt::Result {
    header(out, name, help, "gauge")?;
    sample(out, name, "", value)
}

/// A gauge with one sample per worker (`worker="N"`); sum them for the server's figure.
fn gauge_per_worker(
    out: &mut impl Write,
    name: &str,
    help: &str,
    values: impl Iterator<Item = u64>,
) -> fmt::Result {
    header(out, name, help, "gauge")?;
    for (i, v) in values.enumerate() {
        sample(out, name, &format!("worker=\"{i}\""), v)?;
    }
    Ok(())
}

fn histogram(
    out: &mut impl Write,
    name: &str,
    help: &str,
    series: &[(&str, Snapshot)],
) -> fmt::Result {
    header(out, name, help, "histogram")?;
    for (labels, snap) in series {
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
        sample(out, &format!("{name}_count"), labels, cumulative)?;
    }
    Ok(())
}
