//! Which connections a poll thread opens, and when: the partition of the run's connections
//! over processes and threads, and the connect pacing (with its linear ramp-up).

/// Which connections a thread opens: global indices `start, start + stride, …` below `total`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// First global index.
    pub start: u64,
    /// Distance between indices (processes × threads).
    pub stride: u64,
    /// Total connections of the run.
    pub total: u64,
    /// New connections per second for this thread (0: unpaced).
    pub rate: f64,
    /// Most handshakes in progress on this thread.
    pub max_pending: usize,
    /// Seconds over which the rate ramps up linearly from 0 to `rate`.
    pub ramp: f64,
}

impl Plan {
    /// How many connections should have been opened `t` seconds after the start: the integral
    /// of the rate (rising linearly over `ramp`, then flat), plus one so the first opens at 0.
    pub fn due(&self, t: f64) -> u64 {
        if self.rate <= 0.0 {
            return u64::MAX;
        }
        let n = if t < self.ramp {
            self.rate * t * t / (2.0 * self.ramp)
        } else {
            self.rate * (t - self.ramp / 2.0)
        };
        n as u64 + 1
    }

    /// When connection number `k` (0-based) is due, in seconds after the start.
    pub fn time_of(&self, k: u64) -> f64 {
        if self.rate <= 0.0 || k == 0 {
            return 0.0;
        }
        let k = k as f64;
        let ramp_count = self.rate * self.ramp / 2.0;
        if k < ramp_count {
            (2.0 * self.ramp * k / self.rate).sqrt()
        } else {
            k / self.rate + self.ramp / 2.0
        }
    }

    /// How many connections this thread opens.
    pub fn count(&self) -> u64 {
        if self.start >= self.total {
            0
        } else {
            (self.total - self.start).div_ceil(self.stride)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_partition_the_connections() {
        // 2 processes × 3 threads share 100 connections without overlap or gap.
        let (procs, threads, total) = (2u64, 3u64, 100u64);
        let mut seen = vec![0u8; total as usize];
        for p in 0..procs {
            for t in 0..threads {
                let plan = Plan {
                    start: p + procs * t,
                    stride: procs * threads,
                    total,
                    rate: 0.0,
                    max_pending: 1,
                    ramp: 0.0,
                };
                for k in 0..plan.count() {
                    seen[(plan.start + k * plan.stride) as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        let plan = Plan {
            start: 7,
            stride: 8,
            total: 5,
            rate: 0.0,
            max_pending: 1,
            ramp: 0.0,
        };
        assert_eq!(plan.count(), 0);
        assert_eq!(plan.due(100.0), u64::MAX);
    }

    #[test]
    fn pacing_with_and_without_ramp() {
        let flat = Plan {
            start: 0,
            stride: 1,
            total: 1000,
            rate: 100.0,
            max_pending: 9,
            ramp: 0.0,
        };
        assert_eq!(flat.due(0.0), 1);
        assert_eq!(flat.due(1.0), 101);
        assert!((flat.time_of(50) - 0.5).abs() < 1e-9);
        // Ramp over 2 s: 100 connections in the ramp (area of the triangle), then 100/s.
        let ramp = Plan { ramp: 2.0, ..flat };
        assert_eq!(ramp.due(0.0), 1);
        assert_eq!(ramp.due(1.0), 26);
        assert_eq!(ramp.due(2.0), 101);
        assert_eq!(ramp.due(3.0), 201);
        for k in [1u64, 10, 99, 100, 150, 400] {
            let t = ramp.time_of(k);
            assert_eq!(ramp.due(t + 1e-9), k + 1, "k {k} at t {t}");
        }
    }
}
