//! Limits by network, not by address: one IPv4 address (/32) or one IPv6 /64 is one
//! [`Prefix`], because whoever has one IPv6 address usually has the whole /64. And the token
//! buckets that rate-limit per key (peer or prefix).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// The network a remote address belongs to: an IPv4 /32 or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix(IpAddr);

impl Prefix {
    /// The prefix of `ip`.
    pub fn of_ip(ip: IpAddr) -> Prefix {
        match ip {
            IpAddr::V4(v4) => Prefix(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Prefix(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Prefix(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }

    /// The prefix of the first IP address in `addr`, if it has one. A relayed address has
    /// the relay's own IP first, so relayed connections to us count against that relay.
    pub fn of(addr: &Multiaddr) -> Option<Prefix> {
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(Prefix::of_ip(ip.into())),
            Protocol::Ip6(ip) => Some(Prefix::of_ip(ip.into())),
            _ => None,
        })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => write!(f, "{ip}/32"),
            IpAddr::V6(ip) => write!(f, "{ip}/64"),
        }
    }
}

/// A token bucket per key: `per_minute` requests in a burst, refilled at `per_minute` a
/// minute. Full buckets are forgotten now and then, so many one-off keys cost no memory.
pub struct Buckets<K> {
    per_minute: u32,
    buckets: HashMap<K, (f64, Instant)>,
    checks: u32,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    /// Allows `per_minute` a minute per key (0 allows nothing).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: HashMap::new(),
            checks: 0,
        }
    }

    fn refill(per_minute: u32, tokens: f64, since: Instant, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(since).as_secs_f64();
        let capacity = f64::from(per_minute);
        (tokens + elapsed * capacity / 60.0).min(capacity)
    }

    /// Would one more request from `key` now be allowed? Does not spend a token.
    pub fn would_allow(&self, key: K, now: Instant) -> bool {
        match self.buckets.get(&key) {
            Some(&(tokens, at)) => Self::refill(self.per_minute, tokens, at, now) >= 1.0,
            None => self.per_minute > 0,
        }
    }

    /// Spends a token of `key`'s if it has one; `false` means refuse.
    pub fn try_take(&mut self, key: K, now: Instant) -> bool {
        self.checks = self.checks.wrapping_add(1);
        if self.checks.is_multiple_of(1024) {
            self.forget_full(now);
        }
        let per_minute = self.per_minute;
        let (tokens, at) = self
            .buckets
            .entry(key)
            .or_insert((f64::from(per_minute), now));
        let available = Self::refill(per_minute, *tokens, *at, now);
        *at = now;
        if available >= 1.0 {
            *tokens = available - 1.0;
            true
        } else {
            *tokens = available;
            false
        }
    }

    fn forget_full(&mut self, now: Instant) {
        let per_minute = self.per_minute;
        let capacity = f64::from(per_minute);
        self.buckets
            .retain(|_, (tokens, at)| Self::refill(per_minute, *tokens, *at, now) < capacity);
    }

    /// How many keys are remembered (for tests).
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.buckets.len()
    }
}

/// A `relay::RateLimiter` by prefix: `per_minute` new reservations (or circuits) a minute
/// from one network.
pub fn relay_limiter(per_minute: u32) -> Box<dyn libp2p::relay::RateLimiter> {
    let mut buckets = Buckets::<Prefix>::new(per_minute);
    // libp2p's `web_time::Instant` is `std::time::Instant` off the web.
    Box::new(
        move |_peer: libp2p::PeerId, addr: &Multiaddr, now: Instant| {
            Prefix::of(addr).is_none_or(|p| buckets.try_take(p, now))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ipv6_addresses_in_one_64_are_one_prefix_and_ipv4_addresses_are_each_their_own() {
        let a = Prefix::of(&"/ip6/2001:db8:1:2:aaaa::1/tcp/1".parse().expect("addr"));
        let b = Prefix::of(
            &"/ip6/2001:db8:1:2:bbbb::9/udp/2/quic-v1"
                .parse()
                .expect("addr"),
        );
        let c = Prefix::of(&"/ip6/2001:db8:1:3::1/tcp/1".parse().expect("addr"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let d = Prefix::of(&"/ip4/10.0.0.1/tcp/1".parse().expect("addr"));
        let e = Prefix::of(&"/ip4/10.0.0.2/tcp/1".parse().expect("addr"));
        assert_ne!(d, e);
        assert_eq!(
            Prefix::of(&"/ip6/::ffff:10.0.0.1/tcp/1".parse().expect("addr")),
            d
        );
        assert_eq!(
            Prefix::of(&"/dns4/example.org/tcp/1".parse().expect("addr")),
            None
        );
    }

    #[test]
    fn a_bucket_allows_a_burst_then_refills_over_the_minute() {
        let t0 = Instant::now();
        let mut buckets = Buckets::new(6);
        let allowed = (0..10).filter(|_| buckets.try_take(1u8, t0)).count();
        assert_eq!(allowed, 6);
        assert!(!buckets.try_take(1, t0 + Duration::from_secs(9)));
        assert!(buckets.try_take(1, t0 + Duration::from_secs(10)));
        assert!(buckets.try_take(2, t0), "another key has its own bucket");
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut buckets = Buckets::new(60);
        for key in 0..2000u32 {
            buckets.try_take(key, t0);
        }
        let later = t0 + Duration::from_secs(120);
        for _ in 0..1024 {
            buckets.try_take(u32::MAX, later);
        }
        assert!(buckets.remembered() < 10, "{}", buckets.remembered());
    }
}
