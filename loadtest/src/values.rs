//! The values the command line takes: durations (`500ms`, `5s`, `2m`), sizes (`4k`, `1MiB`),
//! numbers and rates, each with an error that names what was wrong.

use std::time::Duration;

/// Parse a duration: `500ms`, `5s`, `1.5s`, `2m`, or plain (fractional) seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    let secs = v * scale;
    if secs > 86_400.0 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse a size: `32`, `4k`, `4K`, `4KiB`, `4kb`, `1m`, `1MiB` (binary multiples).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let stripped = lower.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = if let Some(n) = stripped.strip_suffix('k') {
        (n, 1usize << 10)
    } else if let Some(n) = stripped.strip_suffix('m') {
        (n, 1 << 20)
    } else {
        (stripped, 1)
    };
    let v: usize = num.trim().parse().map_err(|_| format!("bad size {s:?}"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} overflows"))
}

/// Parse a number given to `flag`.
pub fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{flag}: bad number {v:?}"))
}

/// Parse a rate (per second): a number, 0 or more.
pub fn parse_rate(flag: &str, v: &str) -> Result<f64, String> {
    let r: f64 = parse_num(flag, v)?;
    if !r.is_finite() || r < 0.0 {
        return Err(format!("{flag}: must be >= 0"));
    }
    Ok(r)
}
