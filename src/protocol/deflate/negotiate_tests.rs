//! Unit tests of `protocol/deflate/negotiate.rs`.

use super::*;
use crate::protocol::test_rng::Rng;

fn opts() -> DeflateOptions {
    DeflateOptions::default()
}

fn response(offers: &[&str], options: &DeflateOptions) -> Option<String> {
    negotiate(offers, options).map(|n| n.response().to_owned())
}

// ---- negotiation ------------------------------------------------------------------------

#[test]
fn plain_offer_is_accepted_with_defaults() {
    let n = negotiate(&["permessage-deflate"], &opts()).unwrap();
    assert_eq!(n.response(), "permessage-deflate");
    assert!(!n.server_no_context_takeover && !n.client_no_context_takeover);
    assert_eq!(
        (n.server_max_window_bits, n.client_max_window_bits),
        (15, 15)
    );
}

#[test]
fn no_offer_or_other_extensions_mean_no_extension() {
    assert_eq!(negotiate(&[], &opts()), None);
    assert_eq!(negotiate(&[""], &opts()), None);
    assert_eq!(
        negotiate(&["x-webkit-deflate-frame", "foo; bar=1"], &opts()),
        None
    );
    assert_eq!(negotiate(&["permessage-deflat"], &opts()), None);
}

#[test]
fn rfc7692_examples() {
    // §5.2 / §7.1: the first offer wins; the server answers within it.
    let offers = [
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                   permessage-deflate; client_max_window_bits",
    ];
    let n = negotiate(&offers, &opts()).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_max_window_bits=10"
    );
    assert_eq!(
        (n.server_max_window_bits, n.client_max_window_bits),
        (10, 15)
    );

    // §7.1.1: no context takeover in both directions.
    let offers = ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"];
    let n = negotiate(&offers, &opts()).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert!(n.server_no_context_takeover && n.client_no_context_takeover);
}

#[test]
fn several_offers_and_header_values() {
    let offers = [
        "foo, bar; baz=1",
        "permessage-deflate; server_max_window_bits=12, foo",
    ];
    let n = negotiate(&offers, &opts()).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_max_window_bits=12"
    );
    // Empty list elements are allowed.
    let n = negotiate(&[" , ,permessage-deflate ,"], &opts()).unwrap();
    assert_eq!(n.response(), "permessage-deflate");
}

#[test]
fn whitespace_case_and_quoted_values() {
    let offers = [
        "  Permessage-Deflate\t;  Server_Max_Window_Bits = \"10\" ; client_max_window_bits=\"9\"  ",
    ];
    let n = negotiate(&offers, &opts()).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_max_window_bits=10"
    );
    assert_eq!(
        (n.server_max_window_bits, n.client_max_window_bits),
        (10, 9)
    );
    // A quoted-pair is unescaped before the value is checked.
    let n = negotiate(
        &[r#"permessage-deflate; server_max_window_bits="1\1""#],
        &opts(),
    );
    assert_eq!(n.unwrap().server_max_window_bits, 11);
    // A comma inside quotes does not end the element.
    let offers = [r#"foo; x="a,b", permessage-deflate"#];
    assert_eq!(response(&offers, &opts()).unwrap(), "permessage-deflate");
}

#[test]
fn invalid_values_decline_the_offer_and_the_next_is_accepted() {
    for bad in [
        "server_max_window_bits=7",
        "server_max_window_bits=16",
        "server_max_window_bits=08",
        "server_max_window_bits=010",
        "server_max_window_bits=abc",
        "server_max_window_bits=-9",
        "server_max_window_bits=\"\"",
        "server_max_window_bits",
        "server_max_window_bits=",
        "client_max_window_bits=7",
        "client_max_window_bits=16",
        "client_max_window_bits=\"1 0\"",
        "server_no_context_takeover=1",
        "client_no_context_takeover=\"\"",
    ] {
        let offer =
            format!("permessage-deflate; {bad}, permessage-deflate; server_max_window_bits=11");
        let n = negotiate(&[&offer], &opts()).unwrap_or_else(|| panic!("{bad}"));
        assert_eq!(n.server_max_window_bits, 11, "{bad}");
    }
}

#[test]
fn unknown_and_duplicate_params_decline() {
    for bad in [
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
    ] {
        assert_eq!(negotiate(&[bad], &opts()), None, "{bad}");
        let with_fallback = [bad, "permessage-deflate"];
        assert_eq!(
            response(&with_fallback, &opts()).unwrap(),
            "permessage-deflate"
        );
    }
}

#[test]
fn malformed_syntax_declines_and_resyncs() {
    for bad in [
        "permessage-deflate;",
        "permessage-deflate; ;",
        "permessage-deflate; =10",
        "permessage-deflate server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"1\u{1}0\"",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate; server_max_window_bits=é",
        "permessage-deflate; server_max_window_bits=\"\\",
        "\"permessage-deflate\"",
        "é",
    ] {
        assert_eq!(negotiate(&[bad], &opts()), None, "{bad:?}");
        let n = negotiate(
            &[bad, "permessage-deflate; server_max_window_bits=12"],
            &opts(),
        );
        assert_eq!(n.unwrap().server_max_window_bits, 12, "{bad:?}");
    }
    // Inside one value, the next element after a malformed one is still read.
    let n = negotiate(&["permessage-deflate; x y, permessage-deflate"], &opts()).unwrap();
    assert_eq!(n.response(), "permessage-deflate");
}

#[test]
fn client_max_window_bits_with_and_without_value() {
    let mut limited = opts();
    limited.client_max_window_bits = 10;
    // Not offered: never in the response, the client may use 15.
    let n = negotiate(&["permessage-deflate"], &limited).unwrap();
    assert_eq!(
        (n.response(), n.client_max_window_bits),
        ("permessage-deflate", 15)
    );
    // Offered without a value: we may limit it.
    let n = negotiate(&["permessage-deflate; client_max_window_bits"], &limited).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; client_max_window_bits=10"
    );
    assert_eq!(n.client_max_window_bits, 10);
    let n = negotiate(&["permessage-deflate; client_max_window_bits"], &opts()).unwrap();
    assert_eq!(
        (n.response(), n.client_max_window_bits),
        ("permessage-deflate", 15)
    );
    // Offered with a value: it binds the client; we only answer to lower it.
    let n = negotiate(&["permessage-deflate; client_max_window_bits=12"], &limited).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; client_max_window_bits=10"
    );
    let n = negotiate(&["permessage-deflate; client_max_window_bits=9"], &limited).unwrap();
    assert_eq!(
        (n.response(), n.client_max_window_bits),
        ("permessage-deflate", 9)
    );
    let n = negotiate(&["permessage-deflate; client_max_window_bits=8"], &opts()).unwrap();
    assert_eq!(n.client_max_window_bits, 8);
    // We never ask a client for 8 bits: zlib-based clients cannot compress with it.
    let mut eight = opts();
    eight.client_max_window_bits = 8;
    let n = negotiate(&["permessage-deflate; client_max_window_bits"], &eight).unwrap();
    assert_eq!(n.response(), "permessage-deflate; client_max_window_bits=9");
}

#[test]
fn server_max_window_bits_rules() {
    let mut small = opts();
    small.server_max_window_bits = 10;
    // Unoffered: we may still announce our smaller window (§7.1.2.1).
    let n = negotiate(&["permessage-deflate"], &small).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_max_window_bits=10"
    );
    // Offered: always answered, with the smaller of the two.
    let n = negotiate(&["permessage-deflate; server_max_window_bits=12"], &small).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_max_window_bits=10"
    );
    let n = negotiate(&["permessage-deflate; server_max_window_bits=9"], &small).unwrap();
    assert_eq!(n.response(), "permessage-deflate; server_max_window_bits=9");
    let n = negotiate(&["permessage-deflate; server_max_window_bits=15"], &opts()).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_max_window_bits=15"
    );
    // 8 is accepted (Autobahn 13.3/13.5 offer it); the compressor then uses 9.
    let n = negotiate(&["permessage-deflate; server_max_window_bits=8"], &opts()).unwrap();
    assert_eq!(n.response(), "permessage-deflate; server_max_window_bits=8");
    assert_eq!(n.compressor(&opts()).config().window_bits, 8);
}

#[test]
fn forced_no_context_takeover() {
    let mut forced = opts();
    forced.server_no_context_takeover = true;
    forced.client_no_context_takeover = true;
    let n = negotiate(&["permessage-deflate"], &forced).unwrap();
    assert_eq!(
        n.response(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert!(n.server_no_context_takeover && n.client_no_context_takeover);
    assert!(n.compressor(&forced).config().no_context_takeover);
}

/// Every response parameter is one the offer allowed (§7.1.2.2: `client_max_window_bits`
/// only if offered), values never exceed offered ones, and the response parses back.
#[test]
fn response_stays_within_the_offer() {
    let params = [
        "",
        "; server_no_context_takeover",
        "; client_no_context_takeover",
        "; server_max_window_bits=8",
        "; server_max_window_bits=11",
        "; client_max_window_bits",
        "; client_max_window_bits=10",
    ];
    let mut policies = Vec::new();
    for server_bits in [8, 9, 12, 15] {
        for client_bits in [9, 13, 15] {
            for force in [false, true] {
                let mut o = opts();
                o.server_max_window_bits = server_bits;
                o.client_max_window_bits = client_bits;
                o.server_no_context_takeover = force;
                o.client_no_context_takeover = force;
                policies.push(o);
            }
        }
    }
    for mask in 0u32..(1 << params.len()) {
        let offer: String = std::iter::once(EXTENSION_NAME)
            .chain(
                params
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, p)| *p),
            )
            .collect();
        let duplicate = (mask & 0b11000 == 0b11000) || (mask & 0b1100000 == 0b1100000);
        for o in &policies {
            let Some(n) = negotiate(&[&offer], o) else {
                assert!(duplicate, "{offer} declined");
                continue;
            };
            assert!(!duplicate, "{offer} accepted");
            let resp = n.response();
            if !offer.contains("client_max_window_bits") {
                assert!(
                    !resp.contains("client_max_window_bits"),
                    "{offer} -> {resp}"
                );
                assert_eq!(n.client_max_window_bits, 15);
            }
            if offer.contains("server_max_window_bits=8") {
                assert!(
                    resp.ends_with("server_max_window_bits=8")
                        || resp.contains("server_max_window_bits=8;")
                );
            }
            if offer.contains("client_max_window_bits=10") {
                assert!(n.client_max_window_bits <= 10);
            }
            assert!(n.server_max_window_bits <= o.server_max_window_bits.max(8));
            // The response is itself a valid offer with the same meaning.
            let again = negotiate(&[resp], &opts()).unwrap();
            assert_eq!(
                again.server_no_context_takeover,
                n.server_no_context_takeover
            );
            assert_eq!(
                again.client_no_context_takeover,
                n.client_no_context_takeover
            );
            assert_eq!(again.server_max_window_bits, n.server_max_window_bits);
        }
    }
}

#[test]
fn arbitrary_header_bytes_never_panic() {
    let alphabet: &[&str] = &[
        "permessage-deflate",
        ";",
        ",",
        "=",
        "\"",
        "\\",
        " ",
        "\t",
        "server_max_window_bits",
        "client_max_window_bits",
        "server_no_context_takeover",
        "10",
        "8",
        "x",
        "é",
        "\u{0}",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..rng.below(12) {
            s.push_str(rng.pick(alphabet));
        }
        if let Some(n) = negotiate(&[&s], &opts()) {
            assert!(n.response().starts_with(EXTENSION_NAME));
        }
    }
}

// ---- the client's side -----------------------------------------------------------------

#[test]
fn client_reads_the_servers_response() {
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
    assert_eq!(
        parse_response("permessage-deflate; client_max_window_bits"),
        None
    );
    assert_eq!(
        parse_response("permessage-deflate, permessage-deflate"),
        None
    );
}

#[test]
fn every_server_response_reads_back_as_negotiated() {
    for offer in [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ] {
        for options in [
            opts(),
            DeflateOptions {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 12,
                ..opts()
            },
        ] {
            let n = negotiate(&[offer], &options).unwrap();
            let back = parse_response(n.response()).unwrap();
            assert_eq!(
                (
                    back.server_no_context_takeover,
                    back.client_no_context_takeover,
                    back.server_max_window_bits
                ),
                (
                    n.server_no_context_takeover,
                    n.client_no_context_takeover,
                    n.server_max_window_bits
                ),
                "{offer}"
            );
            // A window the client set in its own offer need not be echoed back.
            if n.response().contains("client_max_window_bits") {
                assert_eq!(back.client_max_window_bits, n.client_max_window_bits);
            }
        }
    }
}
