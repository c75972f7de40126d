//! Where the load goes: `ws://` URL parsing, the loopback-only rule, and source address ranges.

use std::fmt;
#[cfg(test)]
use std::net::Ipv6Addr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A parsed `ws://host[:port][/path][?query]` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// The address to connect to (always loopback).
    pub addr: SocketAddr,
    /// The `Host` header value: the host as written, with the port if one was given.
    pub host: String,
    /// Request target: path and query, at least `/`.
    pub path: String,
    /// `wss://`: TLS (the `host` without its port is the name sent by SNI and verified).
    pub tls: bool,
}

impl WsUrl {
    /// The host name without the port (and without IPv6 brackets): what TLS verifies.
    pub fn server_name(&self) -> &str {
        let h = if let Some(rest) = self.host.strip_prefix('[') {
            rest.split(']').next().unwrap_or(rest)
        } else {
            self.host
                .rsplit_once(':')
                .map_or(self.host.as_str(), |(h, _)| h)
        };
        h
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host, self.path)
    }
}

/// Whether `ip` is a loopback address: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Parse a target URL. Only `ws://` or `wss://` and only loopback hosts (127.0.0.0/8, `[::1]`,
/// `localhost`): this tool never sends load anywhere else, and it never resolves names.
pub fn parse_url(url: &str) -> Result<WsUrl, String> {
    let (rest, tls) = if let Some(r) = url.strip_prefix("ws://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (r, true)
    } else {
        return Err(format!("{url}: the target must be a ws:// or wss:// URL"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    if authority.contains('@') {
        return Err(format!("{url}: user info in the URL is not supported"));
    }
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let end = after
            .find(']')
            .ok_or_else(|| format!("{url}: unclosed '[' in host"))?;
        let host = &after[..end];
        let port = match &after[end + 1..] {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{url}: bad port"))?,
            ),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        None if tls => 443,
        None => 80,
        Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
    };
    if port == 0 {
        return Err(format!("{url}: port 0"));
    }
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| {
            format!(
                "{url}: host {host:?} is not an IP literal or localhost (names are not resolved)"
            )
        })?
    };
    if !is_loopback(ip) {
        return Err(format!(
            "{url}: refusing a non-loopback target {ip}; only 127.0.0.0/8, ::1 and localhost are allowed"
        ));
    }
    Ok(WsUrl {
        addr: SocketAddr::new(ip, port),
        host: authority.to_string(),
        path,
        tls,
    })
}

/// Most source addresses a range may name.
pub const MAX_SOURCES: usize = 1024;

/// Parse a source address list: `127.0.0.1-127.0.0.8` (inclusive range), `127.0.0.2` or a comma
/// list of either. Every address must be loopback and of the same family as the target.
pub fn parse_sources(spec: &str, target: IpAddr) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: IpAddr = a
            .parse()
            .map_err(|_| format!("source {a:?} is not an IP address"))?;
        let b: IpAddr = b
            .parse()
            .map_err(|_| format!("source {b:?} is not an IP address"))?;
        for ip in [a, b] {
            if !is_loopback(ip) {
                return Err(format!("source {ip} is not a loopback address"));
            }
            if ip.is_ipv4() != target.is_ipv4() {
                return Err(format!("source {ip} is not of the target's address family"));
            }
        }
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a {
                    return Err(format!("source range {part}: end before start"));
                }
                if (b - a) as usize >= MAX_SOURCES {
                    return Err(format!(
                        "source range {part}: more than {MAX_SOURCES} addresses"
                    ));
                }
                out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
            }
            (IpAddr::V6(a), IpAddr::V6(b)) if a == b => out.push(IpAddr::V6(a)),
            (IpAddr::V6(_), IpAddr::V6(_)) => {
                return Err(format!(
                    "source range {part}: IPv6 has a single loopback address"
                ))
            }
            _ => return Err(format!("source range {part}: mixed address families")),
        }
    }
    if out.is_empty() {
        return Err("empty source list".into());
    }
    if out.len() > MAX_SOURCES {
        return Err(format!("more than {MAX_SOURCES} source addresses"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V6_LOOPBACK: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    #[test]
    fn parses_loopback_urls() {
        let u = parse_url("ws://127.0.0.1:9001/chat?room=a").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(u.host, "127.0.0.1:9001");
        assert_eq!(u.path, "/chat?room=a");
        assert_eq!(u.to_string(), "ws://127.0.0.1:9001/chat?room=a");

        let u = parse_url("ws://localhost").unwrap();
        assert_eq!(u.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(u.path, "/");

        let u = parse_url("ws://[::1]:8080").unwrap();
        assert_eq!(u.addr, "[::1]:8080".parse().unwrap());
        assert_eq!(u.host, "[::1]:8080");

        let u = parse_url("ws://127.3.4.5:1?x=1").unwrap();
        assert_eq!(u.path, "/?x=1");
        assert!(parse_url("ws://LocalHost:5/").is_ok());
    }

    #[test]
    fn wss_urls() {
        let u = parse_url("wss://localhost:9443/chat").unwrap();
        assert!(u.tls);
        assert_eq!(u.addr.port(), 9443);
        assert_eq!(u.server_name(), "localhost");
        assert_eq!(u.to_string(), "wss://localhost:9443/chat");
        let u = parse_url("wss://127.0.0.1/").unwrap();
        assert_eq!((u.addr.port(), u.server_name()), (443, "127.0.0.1"));
        assert_eq!(parse_url("wss://[::1]:9/").unwrap().server_name(), "::1");
        assert!(!parse_url("ws://127.0.0.1/").unwrap().tls);
        assert!(parse_url("wss://10.0.0.1/").is_err());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "ws://10.0.0.1:9001/",
            "ws://192.168.1.1/",
            "ws://8.8.8.8/",
            "ws://example.com/",
            "ws://[2001:db8::1]/",
            "ws://0.0.0.0:9001/",
            "http://127.0.0.1/",
            "127.0.0.1:9001",
            "ws://127.0.0.1:0/",
            "ws://127.0.0.1:99999/",
            "ws://127.0.0.1:x/",
            "ws://user@127.0.0.1/",
            "ws:///path",
            "ws://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} should be refused");
        }
        let err = parse_url("ws://10.1.2.3/").unwrap_err();
        assert!(err.contains("non-loopback"), "{err}");
    }

    #[test]
    fn ipv4_mapped_loopback_is_loopback() {
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn source_ranges() {
        let t: IpAddr = "127.0.0.1".parse().unwrap();
        let s = parse_sources("127.0.0.1-127.0.0.8", t).unwrap();
        assert_eq!(s.len(), 8);
        assert_eq!(s[7], "127.0.0.8".parse::<IpAddr>().unwrap());
        let s = parse_sources("127.0.0.2, 127.0.1.250-127.0.2.1", t).unwrap();
        assert_eq!(s.len(), 1 + 8);
        assert_eq!(
            parse_sources("::1", V6_LOOPBACK).unwrap(),
            vec![V6_LOOPBACK]
        );
        assert!(parse_sources("127.0.0.8-127.0.0.1", t).is_err());
        assert!(parse_sources("10.0.0.1", t).is_err());
        assert!(parse_sources("127.0.0.1-10.0.0.1", t).is_err());
        assert!(parse_sources("::1", t).is_err());
        assert!(parse_sources("127.0.0.0-127.1.0.0", t).is_err());
        assert!(parse_sources("", t).is_err());
        assert!(parse_sources("nope", t).is_err());
    }
}
