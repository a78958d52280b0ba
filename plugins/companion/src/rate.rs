//! Per-address rate limits for the phone page: a token bucket per IP address, one for any
//! request and a stricter one for actions (name, add, react). See docs/security.md.

use std::collections::HashMap;
use std::net::IpAddr;

/// Any request (page, search, events) from one address: a burst of this many…
pub const REQUEST_BURST: f64 = 40.0;
/// …refilled at this many per second.
pub const REQUESTS_PER_SECOND: f64 = 10.0;
/// Actions (setting a name, adding a track, reacting) from one address: a burst of this many…
pub const ACTION_BURST: f64 = 10.0;
/// …refilled at this many per second (30 a minute).
pub const ACTIONS_PER_SECOND: f64 = 0.5;
/// Addresses remembered at most; past it, full buckets (idle addresses) are forgotten.
const MAX_ADDRESSES: usize = 1024;

/// What a request costs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Reading: the page, its events, a search.
    Read,
    /// Changing the session: a name, a track, a reaction.
    Action,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    requests: f64,
    actions: f64,
    at_ms: u64,
}

/// The buckets of every address seen recently.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// Takes a request of `cost` from `ip` at `now_ms`; `false` when over the limit.
    pub fn allow(&mut self, ip: IpAddr, cost: Cost, now_ms: u64) -> bool {
        if self.buckets.len() >= MAX_ADDRESSES && !self.buckets.contains_key(&ip) {
            self.forget_idle(now_ms);
        }
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            requests: REQUEST_BURST,
            actions: ACTION_BURST,
            at_ms: now_ms,
        });
        let seconds = now_ms.saturating_sub(bucket.at_ms) as f64 / 1000.0;
        bucket.at_ms = now_ms;
        bucket.requests = (bucket.requests + seconds * REQUESTS_PER_SECOND).min(REQUEST_BURST);
        bucket.actions = (bucket.actions + seconds * ACTIONS_PER_SECOND).min(ACTION_BURST);
        if bucket.requests < 1.0 || (cost == Cost::Action && bucket.actions < 1.0) {
            return false;
        }
        bucket.requests -= 1.0;
        if cost == Cost::Action {
            bucket.actions -= 1.0;
        }
        true
    }

    fn forget_idle(&mut self, now_ms: u64) {
        // Full by now means idle long enough that forgetting it gives nothing away.
        let refill_ms =
            (REQUEST_BURST / REQUESTS_PER_SECOND).max(ACTION_BURST / ACTIONS_PER_SECOND) * 1000.0;
        self.buckets
            .retain(|_, b| (now_ms.saturating_sub(b.at_ms) as f64) < refill_ms);
        if self.buckets.len() >= MAX_ADDRESSES {
            // Everyone is busy: start over rather than grow without bound.
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 9));

    #[test]
    fn actions_past_the_burst_are_refused_until_the_bucket_refills() {
        let mut limiter = RateLimiter::default();
        for _ in 0..ACTION_BURST as usize {
            assert!(limiter.allow(IP, Cost::Action, 0));
        }
        assert!(!limiter.allow(IP, Cost::Action, 0));
        // Reading still works: only the action bucket is empty.
        assert!(limiter.allow(IP, Cost::Read, 0));
        assert!(
            limiter.allow(IP, Cost::Action, 2_000),
            "one action back after 2 s"
        );
        assert!(!limiter.allow(IP, Cost::Action, 2_000));
    }

    #[test]
    fn reads_past_the_burst_are_refused_and_other_addresses_are_not_affected() {
        let mut limiter = RateLimiter::default();
        for _ in 0..REQUEST_BURST as usize {
            assert!(limiter.allow(IP, Cost::Read, 0));
        }
        assert!(!limiter.allow(IP, Cost::Read, 0));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 10));
        assert!(limiter.allow(other, Cost::Read, 0));
    }

    #[test]
    fn the_table_of_addresses_stays_bounded() {
        let mut limiter = RateLimiter::default();
        for i in 0..(MAX_ADDRESSES as u32 * 3) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.allow(ip, Cost::Read, 0);
        }
        assert!(limiter.buckets.len() <= MAX_ADDRESSES);
    }
}
