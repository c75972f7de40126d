//! Hand-written SVG latency-by-percentile plots in the style of HdrHistogram's plotter: the
//! x axis is `log10(1 / (1 - q))`, so 0%, 90%, 99%, 99.9%, 99.99% and 99.999% sit at equal
//! distances and the tail gets the room it deserves; the y axis is linear latency.

use std::fmt::Write as _;

use crate::hist::{fmt_ns, Hist};

const W: f64 = 860.0;
const H: f64 = 500.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 44.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 120.0;
/// The x axis ends at 99.999%.
const NINES: f64 = 5.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The percentile (0..100) at x position `x` (0..=NINES).
fn percentile_at(x: f64) -> f64 {
    100.0 * (1.0 - 10f64.powf(-x))
}

/// A "nice" axis maximum ≥ `v` (1, 2, 2.5, 5 × 10^k) and its tick step.
fn nice_max(v: f64) -> (f64, f64) {
    if v <= 0.0 {
        return (1.0, 0.2);
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            let max = m * mag;
            let step = if m == 2.5 {
                max / 5.0
            } else {
                max / if m == 2.0 { 4.0 } else { 5.0 }
            };
            return (max, step);
        }
    }
    (10.0 * mag, 2.0 * mag)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Render `series` (label, histogram in ns) as an SVG document.
pub fn render(title: &str, metric: &str, series: &[(String, &Hist)]) -> String {
    let f = Frame::new(series);
    // The legend below the plot grows with the number of series.
    let height = TOP + f.ph + 66.0 + 16.0 * series.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    f.write_axes(&mut s, metric);
    for (k, (label, h)) in series.iter().enumerate() {
        f.write_series(&mut s, k, label, h);
    }
    s.push_str("</svg>\n");
    s
}

/// The plot area and its scales: latency in µs or ms (whichever suits the highest series) up to
/// a nice maximum.
struct Frame {
    /// Plot width and height.
    pw: f64,
    ph: f64,
    /// The y axis' maximum and tick step, in `unit`.
    ymax: f64,
    ystep: f64,
    /// Nanoseconds per `unit`.
    div: f64,
    unit: &'static str,
}

impl Frame {
    fn new(series: &[(String, &Hist)]) -> Self {
        let top_ns = series
            .iter()
            .map(|(_, h)| h.at(percentile_at(NINES)))
            .max()
            .unwrap_or(0) as f64;
        let (unit, div) = if top_ns >= 2e6 {
            ("ms", 1e6)
        } else {
            ("µs", 1e3)
        };
        let (ymax, ystep) = nice_max(top_ns / div);
        Frame {
            pw: W - LEFT - RIGHT,
            ph: H - TOP - BOTTOM,
            ymax,
            ystep,
            div,
            unit,
        }
    }

    /// The x coordinate of position `x` (0..=NINES) on the percentile axis.
    fn x_of(&self, x: f64) -> f64 {
        LEFT + self.pw * x / NINES
    }

    /// The y coordinate of latency `v` (in `unit`).
    fn y_of(&self, v: f64) -> f64 {
        TOP + self.ph * (1.0 - (v / self.ymax).min(1.0))
    }

    /// Grid, axes, their ticks and labels.
    fn write_axes(&self, s: &mut String, metric: &str) {
        let (pw, ph) = (self.pw, self.ph);
        let mut v = 0.0;
        while v <= self.ymax + self.ystep * 0.01 {
            let y = self.y_of(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
                LEFT + pw
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                trim_num(v)
            );
            v += self.ystep;
        }
        for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
        {
            let x = self.x_of(i as f64);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
                TOP + ph
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
                TOP + ph + 18.0
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
            LEFT + pw / 2.0,
            TOP + ph + 38.0
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{} ({})</text>"#,
            TOP + ph / 2.0,
            esc(metric),
            self.unit
        );
    }

    /// Series `k`: its line (if it has samples) and its legend entry.
    fn write_series(&self, s: &mut String, k: usize, label: &str, h: &Hist) {
        let color = COLORS[k % COLORS.len()];
        if h.count() > 0 {
            let mut pts = String::new();
            let steps = 250;
            for i in 0..=steps {
                let x = NINES * i as f64 / steps as f64;
                let val = h.at(percentile_at(x)) as f64 / self.div;
                let _ = write!(pts, "{:.1},{:.1} ", self.x_of(x), self.y_of(val));
            }
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                pts.trim_end()
            );
        }
        let ly = TOP + self.ph + 58.0 + 16.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{:.1}" width="14" height="4" fill="{color}"/>"#,
            ly - 5.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}">{} — p50 {} · p99 {} · p99.9 {} · max {} · {} samples</text>"#,
            LEFT + 20.0,
            esc(label),
            fmt_ns(h.at(50.0)),
            fmt_ns(h.at(99.0)),
            fmt_ns(h.at(99.9)),
            fmt_ns(h.max()),
            h.count()
        );
    }
}

fn trim_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_positions() {
        assert_eq!(percentile_at(0.0), 0.0);
        assert!((percentile_at(1.0) - 90.0).abs() < 1e-9);
        assert!((percentile_at(3.0) - 99.9).abs() < 1e-9);
        assert!((percentile_at(5.0) - 99.999).abs() < 1e-9);
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0).0, 1.0);
        assert_eq!(nice_max(7.3).0, 10.0);
        assert_eq!(nice_max(180.0).0, 200.0);
        assert_eq!(nice_max(230.0).0, 250.0);
        assert_eq!(nice_max(2.0).0, 2.0);
        let (m, st) = nice_max(4100.0);
        assert_eq!(m, 5000.0);
        assert_eq!(st, 1000.0);
    }

    #[test]
    fn svg_has_one_line_per_series_and_escapes_labels() {
        let mut a = Hist::new();
        let mut b = Hist::new();
        for i in 1..=1000u64 {
            a.record(i * 1000);
            b.record(i * 3000);
        }
        let empty = Hist::new();
        let svg = render(
            "echo <rtt> & more",
            "round trip",
            &[
                ("volley".into(), &a),
                ("t&t".into(), &b),
                ("none".into(), &empty),
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("echo &lt;rtt&gt; &amp; more"));
        assert!(svg.contains("t&amp;t"));
        assert!(svg.contains("99.999%"));
        assert!(svg.contains("(ms)"));
    }
}
