//! Invites are typed, pasted, and handed over by the desktop from any web page: no text
//! may make their parsers (or the log redaction) panic. Random text, and valid links
//! mutated; `WHATNEXT_FUZZ_CASES` sets the count (see docs/security.md, "Fuzzing").

use std::str::FromStr;

use proptest::prelude::*;
use whatnext_core::invite::{Invite, InviteUrl, REDACTED, ShortCode, redact_secrets};
use whatnext_core::prelude::*;

use crate::mutate::{fuzz_config, mutate, mutation};

const HOST: &str = "12D3KooWCgGdKwhBMXUEgtzxRHtBoRH5VxnqUcNYdXMV7V6ptq9a";

fn parse_everything(text: &str) {
    let _ = InviteUrl::from_str(text);
    let _ = ShortCode::from_str(text);
    let _ = Invite::from_str(text);
    let _ = redact_secrets(text);
}

/// A valid link with a random session, relay and secret.
fn valid_link() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9 %&=?/._~-]{0,24}",
        proptest::option::of(Just(
            "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWCgGdKwhBMXUEgtzxRHtBoRH5VxnqUcNYdXMV7V6ptq9a"
                .to_owned(),
        )),
        proptest::option::of("[a-z2-9]{1,22}"),
    )
        .prop_filter("a session", |(s, _, _)| !s.is_empty())
        .prop_map(|(session, relay, key)| {
            InviteUrl {
                host: PeerId::new(HOST),
                relay,
                session: SessionId(session),
                key,
            }
            .to_string()
        })
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn fuzz_any_text_is_parsed_or_refused_never_a_panic(text in ".{0,200}") {
        parse_everything(&text);
        parse_everything(&format!("whtnxt://connect/{text}"));
        parse_everything(&format!("whtnxt://connect/{HOST}?{text}"));
    }

    #[test]
    fn fuzz_mutated_links_are_parsed_or_refused_never_a_panic(
        link in valid_link(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = mutate(link.into_bytes(), &mutations);
        parse_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_a_valid_link_round_trips_and_its_secret_never_survives_redaction(link in valid_link()) {
        let parsed = InviteUrl::from_str(&link).expect("a link we wrote parses");
        prop_assert_eq!(parsed.to_string(), link.clone());
        let redacted = redact_secrets(&link);
        if let Some(key) = &parsed.key {
            prop_assert!(redacted.ends_with(&format!("&key={REDACTED}")), "{}", redacted);
            prop_assert!(!redacted.contains(&format!("key={key}")), "{}", redacted);
        }
    }
}
