//! A per-connection rate limit: a token bucket that holds `messages` tokens and refills them
//! over `window`, so a client may send a burst of `messages` and then `messages / window` on
//! average. Messages over the limit are refused; a client that goes on sending after `strikes`
//! refusals in a row is treated as abusive (the handler closes it with 1008).
//!
//! Part of the chat example (`cargo run --release --features metrics --example chat`).

use std::time::{Duration, Instant};

/// The limit's settings (flag `--rate N/SECS` in main.rs).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Burst size, and messages allowed per `window` on average.
    pub messages: u32,
    /// The refill period.
    pub window: Duration,
    /// Refused messages in a row after which the connection is closed.
    pub strikes: u32,
}

impl Default for RateLimit {
    /// 20 messages per 10 s; closed after 10 refusals in a row.
    fn default() -> Self {
        RateLimit {
            messages: 20,
            window: Duration::from_secs(10),
            strikes: 10,
        }
    }
}

/// The limiter's answer for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Over the limit: refuse this message.
    Deny,
    /// Over the limit, again and again: close the connection.
    Abuse,
}

/// One connection's bucket.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
    strikes: u32,
}

impl Limiter {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Limiter {
            limit,
            tokens: f64::from(limit.messages),
            last: now,
            strikes: 0,
        }
    }

    /// Account for one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let cap = f64::from(self.limit.messages);
        let per_sec = cap / self.limit.window.as_secs_f64().max(1e-3);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            Verdict::Allow
        } else {
            self.strikes += 1;
            if self.strikes > self.limit.strikes {
                Verdict::Abuse
            } else {
                Verdict::Deny
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_then_abuse() {
        let limit = RateLimit {
            messages: 2,
            window: Duration::from_secs(10),
            strikes: 1,
        };
        let t = Instant::now();
        let mut l = Limiter::new(limit, t);
        assert_eq!(l.check(t), Verdict::Allow);
        assert_eq!(l.check(t), Verdict::Allow);
        assert_eq!(l.check(t), Verdict::Deny);
        assert_eq!(l.check(t), Verdict::Abuse);
        // 5 s later one token (2 per 10 s) has come back.
        assert_eq!(l.check(t + Duration::from_secs(5)), Verdict::Allow);
        assert_eq!(l.check(t + Duration::from_secs(5)), Verdict::Deny);
    }
}
