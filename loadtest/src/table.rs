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

fn figures(scenario: &str) -> Vec<Figure> {
    let errors = Figure {
        name: "errors + lost",
        get: |r| Some(r.failures() as f64),
        fmt: count,
        higher_is_better: false,
    };
    let per_core = |r: &Report| match r.derived.server_cpu_hold_cores {
        Some(c) if c > 0.01 => Some(r.derived.messages_per_s / c),
        _ => None,
    };
    match scenario {
        "echo" => vec![
            Figure {
                name: "msg/s",
                get: |r| Some(r.derived.messages_per_s),
                fmt: count,
                higher_is_better: true,
            },
            Figure {
                name: "msg/s per server core",
                get: per_core,
                fmt: count,
                higher_is_better: true,
            },
            Figure {
                name: "RTT p50",
                get: |r| Some(r.tally.rtt.at(50.0) as f64),
                fmt: ns,
                higher_is_better: false,
            },
            Figure {
                name: "RTT p99",
                get: |r| Some(r.tally.rtt.at(99.0) as f64),
                fmt: ns,
                higher_is_better: false,
            },
            Figure {
                name: "RTT p99.9",
                get: |r| Some(r.tally.rtt.at(99.9) as f64),
                fmt: ns,
                higher_is_better: false,
            },
            errors,
        ],
        "broadcast" => vec![
            Figure {
                name: "deliveries/s",
                get: |r| Some(r.derived.messages_per_s),
                fmt: count,
                higher_is_better: true,
            },
            Figure {
                name: "deliveries/s per server core",
                get: per_core,
                fmt: count,
                higher_is_better: true,
            },
            Figure {
                name: "fan-out p50",
                get: |r| Some(r.tally.fanout.at(50.0) as f64),
                fmt: ns,
                higher_is_better: false,
            },
            Figure {
                name: "fan-out p99",
                get: |r| Some(r.tally.fanout.at(99.0) as f64),
                fmt: ns,
                higher_is_better: false,
            },
            errors,
        ],
        "idle" => vec![
            Figure {
                name: "server RSS / connection",
                get: |r| r.derived.server_rss_per_conn,
                fmt: bytes,
                higher_is_better: false,
            },
            Figure {
                name: "server CPU / connection (connect)",
                get: |r| r.derived.server_cpu_connect_ms_per_conn.map(|ms| ms * 1e6),
                fmt: ns,
                higher_is_better: false,
            },
            // Connections are paced by the client here, so handshakes/s would measure the pacing:
            // the handshake latency under that load says more about the server.
            Figure {
                name: "handshake p99",
                get: |r| Some(r.tally.handshake.at(99.0) as f64),
                fmt: ns,
                higher_is_better: false,
            },
            errors,
        ],
        _ => vec![
            Figure {
                name: "handshakes/s",
                get: |r| Some(r.derived.handshakes_per_s),
                fmt: count,
                higher_is_better: true,
            },
            Figure {
                name: "handshake p99",
                get: |r| Some(r.tally.handshake.at(99.0) as f64),
                fmt: ns,
                higher_is_better: false,
            },
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
    let best = |cell: &str, label: &str| -> Option<&Report> {
        reports
            .iter()
            .filter(|r| r.label == label && cell_name(r) == cell)
            .max_by(|a, b| {
                rank(a)
                    .partial_cmp(&rank(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    };
    let runs = |cell: &str, label: &str| {
        reports
            .iter()
            .filter(|r| r.label == label && cell_name(r) == cell)
            .count()
    };

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
            let base = best(cell, baseline).and_then(|r| (f.get)(r));
            let _ = write!(
                s,
                "| {cell} | {}{} |",
                f.name,
                if f.higher_is_better { " ↑" } else { " ↓" }
            );
            for l in &labels {
                let v = best(cell, l).and_then(|r| (f.get)(r));
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
    }
    let rounds = cells
        .iter()
        .flat_map(|c| labels.iter().map(move |l| (c, l)))
        .map(|(c, l)| runs(c, l))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "\nEach cell: best of {rounds} run(s) per server, ranked by its main figure (msg/s, deliveries/s, \
         lowest RSS per connection); ratios are server / {baseline}; ↑ higher is better, ↓ lower is better."
    );
    s
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
