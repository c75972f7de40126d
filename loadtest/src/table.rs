//! `table`: turn saved reports into a markdown comparison, each figure also as a ratio to a
//! baseline server (volley). Reports are grouped by scenario and parameters ("cells"); among
//! repeated runs of one server in one cell, the run with the best main figure is kept (highest
//! msg/s or deliveries/s, lowest server RSS per connection for idle, highest handshakes/s for
//! connect) and all its figures are shown.

use std::fmt::Write as _;

use crate::hist::fmt_ns;
use crate::report::Report;

/// A figure of a report: name, value, formatter, and whether higher is better.
struct Figure {
    name: &'static str,
    get: fn(&Report) -> Option<f64>,
    fmt: fn(f64) -> String,
    higher_is_better: bool,
}

fn count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ns(v: f64) -> String {
    fmt_ns(v as u64)
}

fn bytes(v: f64) -> String {
    if v.abs() >= 10_240.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// Higher is better (↑).
const UP: bool = true;
/// Lower is better (↓).
const DOWN: bool = false;

fn fig(
    name: &'static str,
    get: fn(&Report) -> Option<f64>,
    fmt: fn(f64) -> String,
    higher_is_better: bool,
) -> Figure {
    Figure {
        name,
        get,
        fmt,
        higher_is_better,
    }
}

/// Messages per second per server core while held (none below 1% of a core: too noisy).
fn per_core(r: &Report) -> Option<f64> {
    match r.derived.server_cpu_hold_cores {
        Some(c) if c > 0.01 => Some(r.derived.messages_per_s / c),
        _ => None,
    }
}

/// The figures a scenario's rows show, in order.
fn figures(scenario: &str) -> Vec<Figure> {
    let errors = fig("errors + lost", |r| Some(r.failures() as f64), count, DOWN);
    fn rtt(r: &Report, q: f64) -> Option<f64> {
        Some(r.tally.rtt.at(q) as f64)
    }
    fn fanout(r: &Report, q: f64) -> Option<f64> {
        Some(r.tally.fanout.at(q) as f64)
    }
    fn handshake_p99(r: &Report) -> Option<f64> {
        Some(r.tally.handshake.at(99.0) as f64)
    }
    match scenario {
        "echo" => vec![
            fig("msg/s", |r| Some(r.derived.messages_per_s), count, UP),
            fig("msg/s per server core", per_core, count, UP),
            fig("RTT p50", |r| rtt(r, 50.0), ns, DOWN),
            fig("RTT p99", |r| rtt(r, 99.0), ns, DOWN),
            fig("RTT p99.9", |r| rtt(r, 99.9), ns, DOWN),
            errors,
        ],
        "broadcast" => vec![
            fig(
                "deliveries/s",
                |r| Some(r.derived.messages_per_s),
                count,
                UP,
            ),
            fig("deliveries/s per server core", per_core, count, UP),
            fig("fan-out p50", |r| fanout(r, 50.0), ns, DOWN),
            fig("fan-out p99", |r| fanout(r, 99.0), ns, DOWN),
            errors,
        ],
        "idle" => vec![
            fig(
                "server RSS / connection",
                |r| r.derived.server_rss_per_conn,
                bytes,
                DOWN,
            ),
            fig(
                "server CPU / connection (connect)",
                |r| r.derived.server_cpu_connect_ms_per_conn.map(|ms| ms * 1e6),
                ns,
                DOWN,
            ),
            // Connections are paced by the client here, so handshakes/s would measure the pacing:
            // the handshake latency under that load says more about the server.
            fig("handshake p99", handshake_p99, ns, DOWN),
            errors,
        ],
        _ => vec![
            fig(
                "handshakes/s",
                |r| Some(r.derived.handshakes_per_s),
                count,
                UP,
            ),
            fig("handshake p99", handshake_p99, ns, DOWN),
            errors,
        ],
    }
}

/// The cell a report belongs to, as a readable name (runs with equal names are comparable).
pub fn cell_name(r: &Report) -> String {
    let p = &r.params;
    let size = if p.size >= 1024 && p.size.is_multiple_of(1024) {
        format!("{} KiB", p.size / 1024)
    } else {
        format!("{} B", p.size)
    };
    match r.scenario.as_str() {
        "echo" => format!(
            "echo {} conns × {size}, {} in flight",
            p.connections, p.in_flight
        ),
        "broadcast" => {
            let rate = if p.rate > 0.0 {
                format!("{} msg/s", p.rate)
            } else {
                format!("window {}", p.in_flight)
            };
            format!(
                "broadcast {} subscribers, {} publishers × {size}, {rate}",
                p.connections, p.publishers
            )
        }
        "idle" => format!("idle {} conns", p.connections),
        s => format!("{s} {} conns", p.connections),
    }
}

/// The figure runs are ranked by when one server ran a cell several times.
fn rank(r: &Report) -> f64 {
    match r.scenario.as_str() {
        "echo" | "broadcast" => r.derived.messages_per_s,
        "idle" => -r.derived.server_rss_per_conn.unwrap_or(f64::INFINITY),
        _ => r.derived.handshakes_per_s,
    }
}

/// Render the markdown table: one row per (cell, figure), one column per server.
pub fn render(reports: &[Report], baseline: &str) -> String {
    let mut labels: Vec<String> = vec![baseline.to_string()];
    let mut cells: Vec<String> = Vec::new();
    for r in reports {
        if !labels.contains(&r.label) {
            labels.push(r.label.clone());
        }
        let c = cell_name(r);
        if !cells.contains(&c) {
            cells.push(c);
        }
    }

    let mut s = String::new();
    let _ = write!(s, "| scenario | figure |");
    for l in &labels {
        let _ = write!(s, " {l} |");
    }
    let _ = write!(s, "\n|---|---|");
    for _ in &labels {
        let _ = write!(s, "---:|");
    }
    s.push('\n');
    for cell in &cells {
        let Some(scenario) = reports
            .iter()
            .find(|r| &cell_name(r) == cell)
            .map(|r| r.scenario.clone())
        else {
            continue;
        };
        for f in figures(&scenario) {
            write_row(&mut s, reports, cell, &f, &labels, baseline);
        }
    }
    let rounds = cells
        .iter()
        .flat_map(|c| labels.iter().map(move |l| (c, l)))
        .map(|(c, l)| runs(reports, c, l).len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "\nEach cell: best of {rounds} run(s) per server, ranked by its main figure (msg/s, deliveries/s, \
         lowest RSS per connection); ratios are server / {baseline}; ↑ higher is better, ↓ lower is better."
    );
    s
}

/// The runs of server `label` in `cell`.
fn runs<'a>(reports: &'a [Report], cell: &str, label: &str) -> Vec<&'a Report> {
    reports
        .iter()
        .filter(|r| r.label == label && cell_name(r) == cell)
        .collect()
}

/// The best of those runs by [`rank`].
fn best<'a>(reports: &'a [Report], cell: &str, label: &str) -> Option<&'a Report> {
    runs(reports, cell, label).into_iter().max_by(|a, b| {
        rank(a)
            .partial_cmp(&rank(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

/// One row: figure `f` of `cell` for every server, with its ratio to the baseline's.
fn write_row(
    s: &mut String,
    reports: &[Report],
    cell: &str,
    f: &Figure,
    labels: &[String],
    baseline: &str,
) {
    let base = best(reports, cell, baseline).and_then(|r| (f.get)(r));
    let _ = write!(
        s,
        "| {cell} | {}{} |",
        f.name,
        if f.higher_is_better { " ↑" } else { " ↓" }
    );
    for l in labels {
        let v = best(reports, cell, l).and_then(|r| (f.get)(r));
        let text = match (v, base) {
            (None, _) => "–".to_string(),
            (Some(v), _) if l == baseline => (f.fmt)(v),
            (Some(v), Some(b)) if b != 0.0 => format!("{} ({:.2}×)", (f.fmt)(v), v / b),
            (Some(v), _) => (f.fmt)(v),
        };
        let _ = write!(s, " {text} |");
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(label: &str, conns: u64, msgs: f64, p99_ns: u64) -> Report {
        let mut r = Report {
            label: label.into(),
            scenario: "echo".into(),
            window_s: 1.0,
            ..Report::default()
        };
        r.params.connections = conns;
        r.params.size = 32;
        r.params.in_flight = 1;
        r.tally.counters.window_received = msgs as u64;
        r.tally.rtt.record(p99_ns);
        r.derive();
        r
    }

    #[test]
    fn best_run_and_ratios() {
        let reports = vec![
            echo("volley", 100, 1000.0, 1000),
            echo("tt", 100, 500.0, 2000),
            echo("volley", 100, 2000.0, 1000), // the better volley run
            echo("tt", 100, 600.0, 3000),
            echo("volley", 1000, 4000.0, 5000),
        ];
        let t = render(&reports, "volley");
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("| scenario | figure | volley | tt |"),
            "{t}"
        );
        let row = lines
            .iter()
            .find(|l| l.contains("echo 100 conns") && l.contains("msg/s ↑"))
            .unwrap();
        assert!(row.contains("| 2,000 |"), "{row}");
        assert!(row.contains("600 (0.30×)"), "{row}");
        // tt never ran the 1000-connection cell.
        let row = lines
            .iter()
            .find(|l| l.contains("echo 1000 conns") && l.contains("msg/s ↑"))
            .unwrap();
        assert!(row.ends_with("| – |"), "{row}");
        assert!(t.contains("best of 2 run(s)"), "{t}");
    }

    #[test]
    fn idle_ranks_by_lowest_memory() {
        let mk = |rss: f64| {
            let mut r = Report {
                label: "volley".into(),
                scenario: "idle".into(),
                ..Report::default()
            };
            r.params.connections = 5000;
            r.derived.server_rss_per_conn = Some(rss);
            r
        };
        let a = mk(900.0);
        let b = mk(400.0);
        assert!(rank(&b) > rank(&a));
        // derive() is not called here, so the figure stays as set.
        let t = render(&[a, b], "volley");
        assert!(
            t.contains("| idle 5000 conns | server RSS / connection ↓ | 400 B |"),
            "{t}"
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(count(1234567.4), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(bytes(405.0), "405 B");
        assert_eq!(bytes(139_223.0), "136.0 KiB");
        let mut r = Report {
            scenario: "broadcast".into(),
            ..Report::default()
        };
        r.params.connections = 1000;
        r.params.publishers = 10;
        r.params.size = 4096;
        r.params.in_flight = 8;
        assert_eq!(
            cell_name(&r),
            "broadcast 1000 subscribers, 10 publishers × 4 KiB, window 8"
        );
    }
}
