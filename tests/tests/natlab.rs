//! The two-NAT lab (`tests/nat/natlab.sh`) from Rust: namespaces made for one test, removed
//! when it ends, and the relay host's byte counters. Needs root, iproute2 and nftables.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The relay's public address in the lab.
pub const RELAY_IP: &str = "198.18.0.10";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("nat/natlab.sh")
}

/// A running lab; `down` on drop.
pub struct Lab {
    prefix: String,
}

impl Lab {
    /// Builds the lab in its `cone` or `symmetric` variant, under namespaces of its own.
    pub fn up(variant: &str, tag: &str) -> Lab {
        // Namespaces are global: a per-process, per-test prefix keeps parallel labs apart.
        let prefix = format!("wn{}{tag}", std::process::id() % 100_000);
        let lab = Lab { prefix };
        let output = lab
            .command()
            .args(["up", variant])
            .output()
            .expect("bash runs tests/nat/natlab.sh");
        assert!(
            output.status.success(),
            "the NAT lab did not come up (it needs root, iproute2 and nftables): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        lab
    }

    fn command(&self) -> Command {
        let mut command = Command::new("bash");
        command.arg(script()).env("NATLAB", &self.prefix);
        command
    }

    /// The namespace of a lab host: `relay`, `a`, `b`.
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// Bytes the relay host has sent and received on its public interface: every relayed
    /// byte passes here twice (in from one peer, out to the other).
    pub fn relay_bytes(&self) -> u64 {
        let output = Command::new("ip")
            .args([
                "-n",
                &self.ns("relay"),
                "-s",
                "-j",
                "link",
                "show",
                "dev",
                "wan0",
            ])
            .output()
            .expect("ip -s link");
        let links: Value = serde_json::from_slice(&output.stdout).expect("ip -j prints JSON");
        let stats = &links[0]["stats64"];
        let count = |dir: &str| stats[dir]["bytes"].as_u64().expect("byte counter");
        count("rx") + count("tx")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.command().arg("down").status();
    }
}

impl Lab {
    /// The relay's Prometheus text, read inside the relay host from `127.0.0.1:port`.
    pub fn relay_metric(&self, port: u16, name: &str) -> u64 {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
        );
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns("relay"), "bash", "-c", &script])
            .output()
            .expect("read the relay's metrics");
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no {name} in the relay's metrics: {text}"))
    }
}

impl Lab {
    /// Cuts lab host `host` off, as a Wi-Fi gone dead would: its namespace drops every
    /// packet in and out (but its own loopback); no connection is closed, nothing arrives.
    #[allow(dead_code)]
    pub fn cut(&self, host: &str) {
        let rules = "table inet cut {\n\
             chain in { type filter hook input priority -10; policy drop; iif lo accept; }\n\
             chain out { type filter hook output priority -10; policy drop; oif lo accept; }\n\
             }\n";
        let script = format!("nft -f - <<'NFT'\n{rules}NFT\n");
        self.in_ns(host, &script, "cut the network off");
    }

    /// Undoes `cut`.
    #[allow(dead_code)]
    pub fn heal(&self, host: &str) {
        self.in_ns(host, "nft delete table inet cut", "heal the network");
    }

    fn in_ns(&self, host: &str, script: &str, what: &str) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.ns(host), "bash", "-c", script])
            .status()
            .expect("ip netns exec");
        assert!(status.success(), "could not {what} in {host}");
    }
}
