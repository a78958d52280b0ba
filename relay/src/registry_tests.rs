use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn limits() -> RegistryLimits {
    RegistryLimits {
        ttl: Duration::from_secs(300),
        per_peer: 2,
        per_prefix: 4,
        total: 100,
        queries_per_peer_per_minute: 1000,
        queries_per_prefix_per_minute: 1000,
    }
}

fn net(n: u8) -> Option<Prefix> {
    Some(Prefix::of_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))))
}

fn register(code: &str) -> CodeRequest {
    CodeRequest::Register {
        code: code.into(),
        addrs: addrs_to_wire(&["/ip4/10.0.0.1/tcp/4001".parse().expect("addr")]),
    }
}

fn lookup(code: &str) -> CodeRequest {
    CodeRequest::Lookup { code: code.into() }
}

fn found_peer(answer: &CodeResponse) -> Option<PeerId> {
    match answer {
        CodeResponse::Found { peer, .. } => PeerId::from_bytes(peer).ok(),
        _ => None,
    }
}

#[test]
fn the_first_registration_wins_and_a_second_peer_is_refused() {
    let mut r = Registry::new(limits());
    let (host, thief, joiner) = (PeerId::random(), PeerId::random(), PeerId::random());
    let now = Instant::now();
    let (answer, _) = r.handle(host, net(1), register("ABC234"), now);
    assert_eq!(answer, CodeResponse::Registered { ttl_secs: 300 });
    let (answer, outcome) = r.handle(thief, net(2), register("abc234"), now);
    assert_eq!(
        answer,
        CodeResponse::Refused {
            reason: Refusal::Taken
        }
    );
    assert_eq!(outcome, Outcome::Refused);
    let (answer, _) = r.handle(joiner, net(3), lookup("ABC234"), now);
    assert_eq!(found_peer(&answer), Some(host));
}

#[test]
fn only_the_owner_refreshes_or_drops_a_code() {
    let mut r = Registry::new(limits());
    let (host, thief) = (PeerId::random(), PeerId::random());
    let t0 = Instant::now();
    r.handle(host, net(1), register("ABC234"), t0);
    // The owner refreshes at 200 s: the code lives until 500 s.
    let t1 = t0 + Duration::from_secs(200);
    let (answer, _) = r.handle(host, net(1), register("ABC234"), t1);
    assert_eq!(answer, CodeResponse::Registered { ttl_secs: 300 });
    let (answer, _) = r.handle(
        thief,
        net(2),
        CodeRequest::Unregister {
            code: "ABC234".into(),
        },
        t1,
    );
    assert_eq!(
        answer,
        CodeResponse::Unregistered,
        "no hint whose code it is"
    );
    let t2 = t0 + Duration::from_secs(400);
    let (answer, _) = r.handle(thief, net(2), lookup("ABC234"), t2);
    assert_eq!(
        found_peer(&answer),
        Some(host),
        "the thief's unregister did nothing"
    );
    r.handle(
        host,
        net(1),
        CodeRequest::Unregister {
            code: "ABC234".into(),
        },
        t2,
    );
    let (answer, _) = r.handle(thief, net(2), lookup("ABC234"), t2);
    assert_eq!(answer, CodeResponse::NotFound);
    assert_eq!(r.len(), 0);
}

#[test]
fn a_code_expires_after_its_ttl_and_is_then_free() {
    let mut r = Registry::new(limits());
    let (host, other) = (PeerId::random(), PeerId::random());
    let t0 = Instant::now();
    r.handle(host, net(1), register("ABC234"), t0);
    let late = t0 + Duration::from_secs(300);
    assert_eq!(
        r.handle(other, net(2), lookup("ABC234"), late).0,
        CodeResponse::NotFound
    );
    let (answer, _) = r.handle(other, net(2), register("ABC234"), late);
    assert_eq!(answer, CodeResponse::Registered { ttl_secs: 300 });
    r.purge(late + Duration::from_secs(300));
    assert_eq!(r.len(), 0);
}

#[test]
fn codes_per_peer_and_per_network_are_capped() {
    let mut r = Registry::new(limits());
    let now = Instant::now();
    let peer = PeerId::random();
    for code in ["AAAA22", "AAAA23"] {
        assert!(matches!(
            r.handle(peer, net(1), register(code), now).0,
            CodeResponse::Registered { .. }
        ));
    }
    let too_many = CodeResponse::Refused {
        reason: Refusal::TooManyCodes,
    };
    assert_eq!(r.handle(peer, net(1), register("AAAA24"), now).0, too_many);
    // Fresh peer ids from the same network share its cap of 4.
    let mut registered = 2;
    for i in 0..100 {
        let answer = r
            .handle(
                PeerId::random(),
                net(1),
                register(&format!("BBB{i:03}")),
                now,
            )
            .0;
        if matches!(answer, CodeResponse::Registered { .. }) {
            registered += 1;
        } else {
            assert_eq!(answer, too_many);
        }
    }
    assert_eq!(registered, 4);
    assert!(matches!(
        r.handle(PeerId::random(), net(2), register("CCCC22"), now)
            .0,
        CodeResponse::Registered { .. }
    ));
}

#[test]
fn the_registry_is_full_at_its_total() {
    let mut r = Registry::new(RegistryLimits {
        total: 3,
        ..limits()
    });
    let now = Instant::now();
    for n in 0..3 {
        r.handle(PeerId::random(), net(n), register(&format!("FULL{n}")), now);
    }
    let answer = r.handle(PeerId::random(), net(9), register("FULL9"), now).0;
    assert_eq!(
        answer,
        CodeResponse::Refused {
            reason: Refusal::Full
        }
    );
    // Expired codes make room.
    let later = now + Duration::from_secs(300);
    assert!(matches!(
        r.handle(PeerId::random(), net(9), register("FULL9"), later)
            .0,
        CodeResponse::Registered { .. }
    ));
}

#[test]
fn lookups_are_rate_limited_per_network_even_from_fresh_peer_ids() {
    let mut r = Registry::new(RegistryLimits {
        queries_per_prefix_per_minute: 10,
        ..limits()
    });
    let now = Instant::now();
    let answers: Vec<Outcome> = (0..30)
        .map(|i| {
            r.handle(PeerId::random(), net(1), lookup(&format!("GUESS{i}")), now)
                .1
        })
        .collect();
    assert_eq!(
        answers.iter().filter(|o| **o == Outcome::Served).count(),
        10
    );
    assert!(answers[10..].iter().all(|o| *o == Outcome::RateLimited));
    // Another network is not affected; the first refills over the minute.
    assert_eq!(
        r.handle(PeerId::random(), net(2), lookup("X2"), now).1,
        Outcome::Served
    );
    let later = now + Duration::from_secs(6);
    assert_eq!(
        r.handle(PeerId::random(), net(1), lookup("X2"), later).1,
        Outcome::Served
    );
}

#[test]
fn lookups_are_rate_limited_per_peer() {
    let mut r = Registry::new(RegistryLimits {
        queries_per_peer_per_minute: 5,
        ..limits()
    });
    let now = Instant::now();
    let peer = PeerId::random();
    let served = (0..20)
        .filter(|i| r.handle(peer, net(1), lookup(&format!("G{i}")), now).1 == Outcome::Served)
        .count();
    assert_eq!(served, 5);
    assert_eq!(
        r.handle(PeerId::random(), net(1), lookup("G1"), now).1,
        Outcome::Served
    );
}

#[test]
fn there_is_no_listing_an_empty_or_odd_code_finds_nothing() {
    let mut r = Registry::new(limits());
    let now = Instant::now();
    r.handle(PeerId::random(), net(1), register("ABC234"), now);
    for probe in ["", "*", "ABC23", "ABC2345", "%", "ABC234\0"] {
        let answer = r.handle(PeerId::random(), net(2), lookup(probe), now).0;
        assert!(found_peer(&answer).is_none(), "{probe:?} → {answer:?}");
    }
}

#[test]
fn a_peer_that_leaves_loses_its_codes() {
    let mut r = Registry::new(limits());
    let (host, other) = (PeerId::random(), PeerId::random());
    let now = Instant::now();
    r.handle(host, net(1), register("ABC234"), now);
    r.forget_peer(host);
    assert_eq!(
        r.handle(other, net(2), lookup("ABC234"), now).0,
        CodeResponse::NotFound
    );
    assert!(matches!(
        r.handle(host, net(1), register("AAA222"), now).0,
        CodeResponse::Registered { .. }
    ));
}
