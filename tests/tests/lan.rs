//! LAN discovery by mDNS, between two network namespaces this test creates (a veth pair),
//! so multicast never leaves the test's own little network. Needs root and iproute2.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

/// Two namespaces joined by a veth pair, removed on drop.
struct LanPair {
    names: [String; 2],
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 (`ip`) is needed for this test");
    assert!(
        output.status.success(),
        "ip {} failed (this test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl LanPair {
    fn new() -> Self {
        let tag = format!("{}", std::process::id() % 100_000);
        let names = [format!("wnlan{tag}a"), format!("wnlan{tag}b")];
        let pair = LanPair {
            names: names.clone(),
        };
        let [a, b] = &names;
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&[
            "link",
            "add",
            &format!("v{tag}a"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("v{tag}b"),
        ]);
        for (ns, dev, addr) in [
            (a, format!("v{tag}a"), "10.203.7.1/24"),
            (b, format!("v{tag}b"), "10.203.7.2/24"),
        ] {
            ip(&["link", "set", &dev, "netns", ns]);
            ip(&["-n", ns, "addr", "add", addr, "dev", &dev]);
            ip(&["-n", ns, "link", "set", &dev, "up", "multicast", "on"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", &dev]);
        }
        pair
    }
}

impl Drop for LanPair {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn two_peers_on_one_lan_find_each_other_by_mdns_without_a_relay() {
    let lan = LanPair::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut host = Headless::start_in_netns(
        &lan.names[0],
        &dir.path().join("host"),
        &["--listen", "/ip4/10.203.7.1/tcp/0"],
    );
    host.ok("session.create", json!({"name": "Kitchen"}));
    let invite = host.ok("session.invite", json!(null));
    let url = invite["url"]
        .as_str()
        .expect("a LAN link without a relay")
        .to_owned();
    assert!(!url.contains("relay="), "{url}");
    assert!(
        invite["short_code"].is_null(),
        "no relay, no code: {invite}"
    );
    assert!(
        invite["warning"]
            .as_str()
            .expect("warning")
            .contains("local network")
    );

    let mut guest = Headless::start_in_netns(
        &lan.names[1],
        &dir.path().join("guest"),
        &["--listen", "/ip4/10.203.7.2/tcp/0"],
    );
    let guest_id = guest.ok("identity", json!(null))["peer_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // mDNS needs a moment to find the host; the join retries by itself until it does or
    // times out, so one call is enough.
    let started = Instant::now();
    let reply = guest.call("session.join", json!({"invite": url}));
    assert_eq!(reply["ok"], json!(true), "{reply}");
    eprintln!("joined over the LAN in {:?}", started.elapsed());
    let state = guest.ok("session.state", json!(null));
    let host_view = state["participants"]
        .as_array()
        .expect("ps")
        .iter()
        .find(|p| p["role"] == json!("host"))
        .cloned()
        .expect("host");
    assert_eq!(host_view["connection"], json!("lan"), "{state}");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let state = host.ok("session.state", json!(null));
        let seen = state["participants"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["peer_id"] == json!(guest_id)).cloned());
        if seen
            .as_ref()
            .is_some_and(|p| p["connection"] == json!("lan"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host never saw the guest on the LAN: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
