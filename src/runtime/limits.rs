//! Per-IP limits on the client address: open WebSocket connections per IP and handshakes per
//! IP per second (a token bucket with a burst). One table shared by the workers behind a mutex
//! taken only at an upgrade and at the close of a counted connection, never per message, and not
//! at all when no per-IP limit is configured. IPv6 clients are grouped by a prefix (default
//! /64: one host usually owns a whole /64). The table is bounded: when it is full, entries of
//! addresses with no open connection are dropped (their rate state resets), so an attacker
//! cycling through addresses cannot grow it past `max_tracked_ips` plus the open connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{Config, Rate};

/// Why an upgrade was refused by a per-IP limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Seconds after which a retry can succeed (the `Retry-After` header).
    pub retry_after: u64,
}

#[derive(Debug)]
struct Entry {
    conns: u32,
    tokens: f64,
    last: Instant,
}

/// The per-IP table (absent when no per-IP limit is configured).
#[derive(Debug)]
pub(crate) struct IpLimits {
    max_conns: Option<u32>,
    rate: Option<Rate>,
    v6_prefix: u8,
    max_tracked: usize,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl IpLimits {
    /// The limits of `cfg`, or `None` when it sets none.
    pub fn new(cfg: &Config) -> Option<IpLimits> {
        if cfg.max_connections_per_ip.is_none() && cfg.handshakes_per_ip.is_none() {
            return None;
        }
        Some(IpLimits {
            max_conns: cfg
                .max_connections_per_ip
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            rate: cfg.handshakes_per_ip,
            v6_prefix: cfg.ipv6_prefix.min(128),
            max_tracked: cfg.max_tracked_ips.max(1),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// The key `ip` is counted under: itself (IPv4), or its IPv6 prefix.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(self.v6_prefix))
                        .unwrap_or(0);
                    IpAddr::V6((u128::from(v6) & mask).into())
                }
            },
            v4 => v4,
        }
    }

    /// Count a new connection from `ip` (its key) if both limits allow it.
    pub fn admit(&self, key: IpAddr, now: Instant) -> Result<(), Refusal> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= self.max_tracked && !table.contains_key(&key) {
            // Full: forget every address without an open connection.
            table.retain(|_, e| e.conns > 0);
        }
        let burst = self.rate.map_or(0.0, |r| f64::from(r.burst.max(1)));
        let e = table.entry(key).or_insert(Entry {
            conns: 0,
            tokens: burst,
            last: now,
        });
        if let Some(max) = self.max_conns {
            if e.conns >= max {
                return Err(Refusal { retry_after: 1 });
            }
        }
        if let Some(rate) = self.rate {
            let per_sec = rate.per_second.max(1e-9);
            let elapsed = now.saturating_duration_since(e.last).as_secs_f64();
            e.tokens = (e.tokens + elapsed * per_sec).min(burst);
            e.last = now;
            if e.tokens < 1.0 {
                let wait = ((1.0 - e.tokens) / per_sec).ceil().max(1.0);
                return Err(Refusal {
                    retry_after: wait.min(86_400.0) as u64,
                });
            }
            e.tokens -= 1.0;
        }
        e.conns += 1;
        Ok(())
    }

    /// A connection counted by [`admit`](Self::admit) ended (or was not opened after all).
    pub fn release(&self, key: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = table.get_mut(&key) {
            e.conns = e.conns.saturating_sub(1);
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
