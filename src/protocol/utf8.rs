//! Incremental UTF-8 validation across fragments (RFC 6455 §8.1).
//!
//! A text message may be split into fragments at any byte, including inside a code point. The
//! validator keeps at most three bytes of an incomplete sequence between calls, so each fragment is
//! checked as it arrives (fail fast) with the standard library's fast validator doing the bulk.

use bytes::BytesMut;

/// Validation state carried between fragments: the bytes of an incomplete trailing code point.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Whether an incomplete code point is waiting for the next fragment.
    pub fn is_incomplete(&self) -> bool {
        self.pending_len != 0
    }

    /// Check the next chunk of the message. Fails as soon as the bytes seen so far cannot be a
    /// prefix of valid UTF-8.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            // Complete the pending code point byte by byte.
            while self.pending_len < 4 && !input.is_empty() {
                self.pending[self.pending_len as usize] = input[0];
                self.pending_len += 1;
                input = &input[1..];
                let cand = &self.pending[..self.pending_len as usize];
                match std::str::from_utf8(cand) {
                    Ok(_) => {
                        self.pending_len = 0;
                        break;
                    }
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {}
                }
            }
            if self.pending_len > 0 {
                return Ok(()); // still incomplete and input exhausted
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.error_len().is_some() {
                    return Err(InvalidUtf8);
                }
                let tail = &input[e.valid_up_to()..];
                // An incomplete sequence is at most 3 bytes (from_utf8 reports longer as invalid).
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Validate `fresh`, the next bytes of a streamed text message, and return the text in it
    /// that is complete: a code point left incomplete by the previous call is completed at its
    /// front (only then are the bytes copied), and one left incomplete at its end is kept back
    /// for the next call (it is in the validator). Every returned chunk is valid UTF-8 on its
    /// own; [`Utf8Validator::finish`] at the end of the message says whether anything was left.
    pub fn complete_text(&mut self, mut fresh: BytesMut) -> Result<BytesMut, InvalidUtf8> {
        let carried = usize::from(self.pending_len);
        let carry = self.pending;
        self.feed(&fresh)?;
        // What is kept back now never exceeds what was carried plus what came.
        let complete = (carried + fresh.len()).saturating_sub(usize::from(self.pending_len));
        if carried == 0 {
            fresh.truncate(complete);
            return Ok(fresh);
        }
        if complete == 0 {
            return Ok(BytesMut::new());
        }
        let mut out = BytesMut::with_capacity(complete);
        out.extend_from_slice(&carry[..carried]);
        out.extend_from_slice(&fresh[..complete - carried]);
        Ok(out)
    }

    /// Bytes of an incomplete code point held back (0 to 3).
    pub fn held_back(&self) -> usize {
        usize::from(self.pending_len)
    }

    /// The message ended: valid only if no code point is left incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.is_incomplete();
        *self = Utf8Validator::new();
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

/// Validate a complete message at once.
pub fn validate(input: &[u8]) -> Result<(), InvalidUtf8> {
    std::str::from_utf8(input)
        .map(|_| ())
        .map_err(|_| InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_text_comes_out_in_whole_code_points() {
        let text = "aé€😀 ok ß€😀".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                let mut v = Utf8Validator::new();
                let mut joined = Vec::new();
                for piece in [&text[..a], &text[a..b], &text[b..]] {
                    let out = v.complete_text(BytesMut::from(piece)).unwrap();
                    assert!(std::str::from_utf8(&out).is_ok(), "split {a}/{b}: {out:?}");
                    joined.extend_from_slice(&out);
                }
                assert_eq!(v.held_back(), 0);
                assert!(v.finish().is_ok());
                assert_eq!(joined, text, "split {a}/{b}");
            }
        }
        // Invalid bytes fail at once, an incomplete end at `finish`.
        let mut v = Utf8Validator::new();
        assert!(v.complete_text(BytesMut::from(&b"ok \xff"[..])).is_err());
        let mut v = Utf8Validator::new();
        let out = v
            .complete_text(BytesMut::from(&b"ok \xe2\x82"[..]))
            .unwrap();
        assert_eq!(&out[..], b"ok ");
        assert_eq!(v.held_back(), 2);
        assert!(v.finish().is_err());
    }

    fn split_everywhere(input: &[u8]) -> bool {
        let whole = std::str::from_utf8(input).is_ok();
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let mut v = Utf8Validator::new();
                let r = v
                    .feed(&input[..a])
                    .and_then(|_| v.feed(&input[a..b]))
                    .and_then(|_| v.feed(&input[b..]))
                    .and_then(|_| v.finish());
                assert_eq!(r.is_ok(), whole, "split {a},{b} of {input:?}");
            }
        }
        whole
    }

    #[test]
    fn splits_agree_with_std() {
        let samples: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "a€b𝄞c".as_bytes(),
            b"\xf0\x90\x80", // truncated 4-byte
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
            b"\xf4\x90\x80\x80", // > U+10FFFF
            b"\xc0\xaf",     // overlong
            b"hello\xff",
            b"",
        ];
        for s in samples {
            split_everywhere(s);
        }
    }

    #[test]
    fn fails_fast() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ok").is_ok());
        assert!(v.feed(b"\xed\xa0").is_err()); // surrogate prefix is already invalid
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf0").is_ok());
        assert!(v.feed(b"\x90").is_ok());
        assert!(v.feed(b"\x80").is_ok());
        assert!(v.is_incomplete());
        assert!(v.feed(b"\x80").is_ok());
        assert!(v.finish().is_ok());
    }

    #[test]
    fn pseudo_random_agrees_with_std() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..12 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = x as u8;
                // Bias towards multi-byte lead and continuation bytes.
                buf.push(if b & 1 == 0 { 0x80 | (b >> 2) } else { b });
            }
            split_everywhere(&buf);
        }
    }
}
