//! The client side of permessage-deflate (RFC 7692): reading the server's answer to our offer.
//! The codec itself is the library's (`volley::protocol::deflate`).

/// What the server's `Sec-WebSocket-Extensions` answer agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after every message: one decompressor per thread can
    /// serve every such connection.
    pub server_no_context_takeover: bool,
    /// We must reset our compressor after every message (we always do anyway).
    pub client_no_context_takeover: bool,
    /// The server's compressor window (15 if not given).
    pub server_max_window_bits: u8,
    /// The largest window our compressor may use (15 if not given).
    pub client_max_window_bits: u8,
}

/// The offer `--deflate` sends: plain permessage-deflate, allowing the server to limit our window.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Parse the accepted extension out of a response's `Sec-WebSocket-Extensions` value; `None` if
/// it does not name permessage-deflate or a parameter is invalid (then the connection cannot
/// read compressed frames and reports them as an error).
pub fn parse_response(value: &str) -> Option<Agreed> {
    let ext = value.split(',').find(|e| {
        e.split(';')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("permessage-deflate"))
    })?;
    let mut a = Agreed {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    for param in ext.split(';').skip(1) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param.trim(), None),
        };
        let bits = |v: Option<&str>| {
            v.and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => a.server_no_context_takeover = true,
            "client_no_context_takeover" => a.client_no_context_takeover = true,
            "server_max_window_bits" => a.server_max_window_bits = bits(value)?,
            "client_max_window_bits" => a.client_max_window_bits = bits(value)?,
            "" => {}
            _ => return None,
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let a = parse_response(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        )
        .unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (15, 15)
        );
        let a = parse_response(
            "x-other, permessage-deflate;server_max_window_bits=10; client_max_window_bits=\"9\"",
        )
        .unwrap();
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (10, 9)
        );
        assert!(!a.server_no_context_takeover);
        assert_eq!(parse_response("x-other"), None);
        assert_eq!(
            parse_response("permessage-deflate; server_max_window_bits=16"),
            None
        );
        assert_eq!(parse_response("permessage-deflate; bogus"), None);
    }
}
