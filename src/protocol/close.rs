//! Close frame rules (RFC 6455 §5.5.1, §7.4): which codes may appear on the wire, and parsing and
//! encoding of close payloads.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::error::ProtocolError;

/// Longest close reason that fits a control frame (125 − 2 bytes of code).
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may be carried by a close frame: 1000–1003, 1007–1011 (RFC 6455 §7.4.1) and
/// 3000–4999 (registered and private use). 1004–1006 and 1015 are reserved and never sent; 1012–1014
/// are treated as invalid, as the Autobahn TestSuite expects.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// Whether a server may close with `code`: the codes of [`is_valid_code`] and 1012–1014
/// (service restart, try again later, bad gateway: registered with IANA for servers). Clients
/// accept them; a server still refuses them from clients (the Autobahn TestSuite's rule).
pub fn is_valid_code_from_server(code: u16) -> bool {
    is_valid_code(code) || matches!(code, 1012..=1014)
}

/// Parse a received close payload: `Ok(None)` for an empty payload, the code and reason otherwise.
/// `from_server`: the peer is a server (we are the client), which may also use 1012–1014.
pub fn parse_payload(
    payload: &[u8],
    from_server: bool,
) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let valid = if from_server {
                is_valid_code_from_server(code)
            } else {
                is_valid_code(code)
            };
            if !valid {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code: CloseCode(code),
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Encode a close payload: the code, then the reason cut to at most [`MAX_REASON_LEN`] bytes on a
/// character boundary. Codes that must not be sent (1005, 1006, 1015) produce an empty payload.
pub fn encode_payload(code: CloseCode, reason: &str) -> Bytes {
    if matches!(code.0, 1005 | 1006 | 1015) || code.0 < 1000 {
        return Bytes::new();
    }
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut buf = BytesMut::with_capacity(2 + end);
    buf.put_u16(code.0);
    buf.put_slice(&reason.as_bytes()[..end]);
    buf.freeze()
}

/// A close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message (or close reason) was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy violation (rate limit, slow consumer, auth).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a frame or message exceeded a configured size limit.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting; clients should reconnect (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (the server is overloaded; IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for CloseCode {
    fn from(c: u16) -> Self {
        CloseCode(c)
    }
}

/// Why a connection closed: the code and the reason text.
///
/// A handler's `on_close` receives the peer's close frame, or
/// [`CloseCode::NO_STATUS`] when the peer's close frame had no code, or [`CloseCode::ABNORMAL`]
/// (1006) when the connection ended without a close handshake (reset, dead peer, timeout); the
/// reason then says why (e.g. `"timeout"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason (at most 123 bytes on the wire).
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_code(c), "{c}");
        }
        for c in [
            0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000,
        ] {
            assert!(!is_valid_code(c), "{c}");
        }
    }

    #[test]
    fn parse_rules() {
        assert_eq!(parse_payload(b"", false), Ok(None));
        assert_eq!(
            parse_payload(b"\x03", false),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            parse_payload(b"\x03\xe8", false),
            Ok(Some(CloseFrame::new(CloseCode::NORMAL, "")))
        );
        assert_eq!(
            parse_payload(b"\x03\xedx", false),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_payload(b"\x03\xe8\xff", false),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            parse_payload(b"\x03\xe8bye", false)
                .unwrap()
                .unwrap()
                .reason,
            "bye".to_string()
        );
    }

    #[test]
    fn encode_truncates_on_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let p = encode_payload(CloseCode::NORMAL, &long);
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert!(encode_payload(CloseCode::ABNORMAL, "x").is_empty());
    }

    #[test]
    fn servers_may_send_1012_to_1014() {
        for c in [1012u16, 1013, 1014] {
            let p = c.to_be_bytes();
            assert_eq!(parse_payload(&p, true).unwrap().unwrap().code, CloseCode(c));
            assert_eq!(
                parse_payload(&p, false),
                Err(ProtocolError::InvalidCloseCode(c))
            );
        }
        assert!(parse_payload(&1015u16.to_be_bytes(), true).is_err());
    }
}
