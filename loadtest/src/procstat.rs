//! Reading /proc: the server's RSS and CPU time, and this process's open-file limit.

use crate::report::ProcSample;

/// Clock ticks per second for /proc/PID/stat times. Linux reports USER_HZ, which is 100 on every
/// mainstream architecture (the kernel's own HZ does not leak into /proc).
const USER_HZ: f64 = 100.0;

/// Sample `pid`'s RSS (/proc/PID/status `VmRSS`) and utime+stime (/proc/PID/stat).
pub fn sample(pid: u32) -> Result<ProcSample, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("server pid {pid}: /proc/{pid}/status: {e}"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("server pid {pid}: /proc/{pid}/stat: {e}"))?;
    Ok(ProcSample {
        rss_bytes: parse_rss(&status).ok_or_else(|| format!("server pid {pid}: no VmRSS"))?,
        cpu_s: parse_cpu(&stat).ok_or_else(|| format!("server pid {pid}: bad /proc stat"))?,
    })
}

/// `VmRSS:   1234 kB` → bytes.
pub fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut f = line["VmRSS:".len()..].split_whitespace();
    let kb: u64 = f.next()?.parse().ok()?;
    match f.next() {
        Some("kB") | None => Some(kb * 1024),
        _ => None,
    }
}

/// utime + stime (fields 14 and 15) in seconds. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after its last `)`.
pub fn parse_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field k is f[k - 3].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// This process's soft limit on open files, if /proc says.
pub fn open_file_limit() -> Option<u64> {
    parse_nofile(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft limit from a /proc/PID/limits text (`None` for unlimited or unknown).
pub fn parse_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_status() {
        let s = "Name:\tvolley\nVmPeak:\t  9999 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(s), Some(2048 * 1024));
        assert_eq!(parse_rss("Name: x\n"), None);
    }

    #[test]
    fn cpu_from_stat_with_odd_name() {
        let s =
            "1234 (my (weird) srv) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu(s), Some(3.0));
        assert_eq!(parse_cpu("garbage"), None);
    }

    #[test]
    fn nofile_limit() {
        let l = "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max cpu time              unlimited            unlimited            seconds   \n\
                 Max open files            20000                20000                files     \n";
        assert_eq!(parse_nofile(l), Some(20000));
        assert_eq!(
            parse_nofile("Max open files unlimited unlimited files"),
            None
        );
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_s >= 0.0);
        assert!(open_file_limit().is_some());
        assert!(sample(u32::MAX).is_err());
    }
}
