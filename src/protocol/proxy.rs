//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy, AWS NLB and nginx send it
//! in front of the first byte of a proxied TCP connection: it carries the client's address.
//! Parsed incrementally from the bytes received so far, like the handshake: [`parse`] says
//! [`Proxy::Partial`] until the header is whole.
//!
//! Specification: HAProxy's `proxy-protocol.txt`. Version 1 is one line of at most 107 bytes
//! (`PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, or `PROXY UNKNOWN ...\r\n`); version 2
//! starts with a 12-byte signature, then version/command, family/protocol and a 16-bit length of
//! the addresses and TLVs that follow. A `LOCAL` command (health checks from the proxy itself)
//! and the `UNKNOWN`/`UNSPEC` families carry no client address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest version 1 line, CRLF included.
pub const V1_MAX: usize = 107;
/// Longest version 2 header accepted: the 16-byte fixed part and up to 512 bytes of addresses
/// and TLVs (the specification allows 64 KiB; proxies send far less).
pub const V2_MAX: usize = 16 + 512;

/// What the bytes received so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// Not a whole header yet: read more.
    Partial,
    /// A whole header of `len` bytes: the client's address (`None` for `LOCAL` connections and
    /// unknown families, whose own peer address stands), then the connection's own bytes.
    Complete {
        /// The original client's address and port.
        source: Option<SocketAddr>,
        /// Bytes of the header, to skip.
        len: usize,
    },
}

/// Why a PROXY header was refused: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither `PROXY ` nor the version 2 signature.
    NotProxy,
    /// A version 1 line that is malformed or longer than 107 bytes.
    BadV1,
    /// A version 2 header with an unknown version or command, a length too short for its
    /// family's addresses, or longer than [`V2_MAX`].
    BadV2,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyError::NotProxy => "no PROXY protocol header",
            ProxyError::BadV1 => "malformed PROXY protocol v1 header",
            ProxyError::BadV2 => "malformed PROXY protocol v2 header",
        })
    }
}

impl std::error::Error for ProxyError {}

/// Parse the PROXY header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Proxy, ProxyError> {
    let sig = &V2_SIGNATURE[..buf.len().min(12)];
    if buf.len() < 12 && buf == sig {
        return Ok(Proxy::Partial); // could still be either version
    }
    if buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    let v1 = b"PROXY ";
    if buf.len() < v1.len() {
        return if v1.starts_with(buf) {
            Ok(Proxy::Partial)
        } else {
            Err(ProxyError::NotProxy)
        };
    }
    if !buf.starts_with(v1) {
        return Err(ProxyError::NotProxy);
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Proxy, ProxyError> {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::BadV1)
        } else {
            Ok(Proxy::Partial)
        };
    };
    let len = end + 2;
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| ProxyError::BadV1)?;
    let mut parts = line.split(' ');
    let family = parts.next().ok_or(ProxyError::BadV1)?;
    if family == "UNKNOWN" {
        // The rest of the line is to be ignored.
        return Ok(Proxy::Complete { source: None, len });
    }
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(ProxyError::BadV1);
    };
    let (src, _dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            src.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
            dst.parse::<Ipv4Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
            dst.parse::<Ipv6Addr>()
                .map_err(|_| ProxyError::BadV1)?
                .into(),
        ),
        _ => return Err(ProxyError::BadV1),
    };
    let port = |p: &str| {
        // Decimal, no sign or leading zero (except "0").
        if p.is_empty() || p.len() > 5 || (p.len() > 1 && p.starts_with('0')) {
            return Err(ProxyError::BadV1);
        }
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyError::BadV1);
        }
        p.parse::<u16>().map_err(|_| ProxyError::BadV1)
    };
    let sport = port(sport)?;
    port(dport)?;
    Ok(Proxy::Complete {
        source: Some(SocketAddr::new(src, sport)),
        len,
    })
}

fn parse_v2(buf: &[u8]) -> Result<Proxy, ProxyError> {
    let Some(&[ver_cmd, fam, hi, lo]) = buf.get(12..16) else {
        return Ok(Proxy::Partial);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadV2);
    }
    let local = match ver_cmd & 0x0F {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::BadV2),
    };
    let addr_len = usize::from(u16::from_be_bytes([hi, lo]));
    let len = 16 + addr_len;
    if len > V2_MAX {
        return Err(ProxyError::BadV2);
    }
    let Some(addrs) = buf.get(16..len) else {
        return Ok(Proxy::Partial);
    };
    if local {
        return Ok(Proxy::Complete { source: None, len });
    }
    // The high nibble is the address family, the low one the transport (1 = stream).
    let source = match fam >> 4 {
        0x1 => {
            let a = addrs.get(..12).ok_or(ProxyError::BadV2)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        0x2 => {
            let a = addrs.get(..36).ok_or(ProxyError::BadV2)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port))
        }
        // UNSPEC, or AF_UNIX (no IP to report): the connection's own address stands.
        0x0 | 0x3 => None,
        _ => return Err(ProxyError::BadV2),
    };
    Ok(Proxy::Complete { source, len })
}

/// The hops of `X-Forwarded-For` header values (every such header of a request, in order),
/// left (original client) to right (the proxy nearest to us); `None` for an element that is not
/// an IP address (with or without a port or brackets).
pub fn x_forwarded_for<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|e| node_ip(e.trim()))
        .collect()
}

/// The `for=` hops of `Forwarded` header values (RFC 7239), left to right; `None` for an
/// element without `for=` or whose node is `unknown`, obfuscated (`_hidden`) or malformed.
pub fn forwarded_for<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                if !k.trim().eq_ignore_ascii_case("for") {
                    return None;
                }
                node_ip(v.trim().trim_matches('"'))
            })
        })
        .collect()
}

/// An IP address from `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1` or `[2001:db8::1]:80`.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (ip, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_rng::Rng;

    fn v2(cmd: u8, fam: u8, addrs: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        v.extend_from_slice(addrs);
        v
    }

    fn complete(buf: &[u8]) -> (Option<SocketAddr>, usize) {
        match parse(buf) {
            Ok(Proxy::Complete { source, len }) => (source, len),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let (src, len) = complete(line);
        assert_eq!(src, Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(&line[len..len + 3], b"GET");
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n";
        assert_eq!(
            complete(line),
            (Some("[2001:db8::1]:4000".parse().unwrap()), line.len())
        );
        assert_eq!(complete(b"PROXY UNKNOWN whatever\r\n"), (None, 24));
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (None, 15));
    }

    #[test]
    fn v1_errors() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 056324 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 +1 443\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.1 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProxyError::BadV1),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // No CRLF within 107 bytes.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(120, b'1');
        assert_eq!(parse(&long), Err(ProxyError::BadV1));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXZ"), Err(ProxyError::NotProxy));
    }

    #[test]
    fn v2_ipv4_ipv6_local() {
        let mut a4 = vec![192, 0, 2, 1, 198, 51, 100, 1];
        a4.extend_from_slice(&56324u16.to_be_bytes());
        a4.extend_from_slice(&443u16.to_be_bytes());
        let h = v2(1, 0x11, &a4);
        assert_eq!(complete(&h), (Some("192.0.2.1:56324".parse().unwrap()), 28));
        let mut a6 = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        a6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        a6.extend_from_slice(&4000u16.to_be_bytes());
        a6.extend_from_slice(&80u16.to_be_bytes());
        // With a TLV after the addresses: skipped with the header.
        a6.extend_from_slice(&[0x04, 0, 1, 0xAA]);
        let h = v2(1, 0x21, &a6);
        assert_eq!(
            complete(&h),
            (Some("[2001:db8::1]:4000".parse().unwrap()), h.len())
        );
        assert_eq!(complete(&v2(0, 0x00, &[])), (None, 16));
        assert_eq!(complete(&v2(1, 0x00, &[])), (None, 16));
    }

    #[test]
    fn v2_errors() {
        assert_eq!(parse(&v2(1, 0x11, &[1, 2, 3])), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(2, 0x11, &[0; 12])), Err(ProxyError::BadV2));
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x31;
        assert_eq!(parse(&wrong_version), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x11, &[0; 600])), Err(ProxyError::BadV2));
        assert_eq!(parse(&v2(1, 0x51, &[0; 12])), Err(ProxyError::BadV2));
    }

    #[test]
    fn every_prefix_is_partial() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
        let mut a4 = vec![192, 0, 2, 1, 198, 51, 100, 1];
        a4.extend_from_slice(&[0, 1, 0, 2]);
        let bin = v2(1, 0x11, &a4);
        for whole in [&line[..], &bin[..]] {
            for cut in 0..whole.len() {
                assert_eq!(parse(&whole[..cut]), Ok(Proxy::Partial), "cut at {cut}");
            }
            assert!(matches!(parse(whole), Ok(Proxy::Complete { .. })));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n";
        for round in 0..20_000 {
            let mut buf = if round % 2 == 0 {
                let mut b = vec![0u8; rng.below(200)];
                rng.fill(&mut b);
                b
            } else if round % 4 == 1 {
                line.to_vec()
            } else {
                v2(1, 0x21, &[7u8; 36])
            };
            if !buf.is_empty() && round % 2 == 1 {
                let i = rng.below(buf.len());
                buf[i] = rng.next() as u8;
                buf.truncate(rng.below(buf.len() + 1));
            }
            if let Ok(Proxy::Complete { len, .. }) = parse(&buf) {
                assert!(len <= buf.len());
            }
        }
    }

    #[test]
    fn forwarded_headers() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            x_forwarded_for(["203.0.113.7, 10.0.0.1", "10.0.0.2"]),
            vec![ip("203.0.113.7"), ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(
            x_forwarded_for(["[2001:db8::1]:4711, 1.2.3.4:80, junk, 2001:db8::2"]),
            vec![ip("2001:db8::1"), ip("1.2.3.4"), None, ip("2001:db8::2")]
        );
        assert_eq!(
            forwarded_for([
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                "For=\"[2001:db8:cafe::17]:4711\", for=unknown, proto=https"
            ]),
            vec![ip("192.0.2.60"), ip("2001:db8:cafe::17"), None, None]
        );
    }
}
