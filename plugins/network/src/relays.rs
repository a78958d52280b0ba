//! The relay manager's decisions, kept free of I/O so they can be tested alone: which relay
//! is active, when to try it again, when to fall back to the next one, and what each relay's
//! status is.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::backoff;

/// Failed attempts on one relay before moving to the next in the list.
pub const FAILURES_BEFORE_FALLBACK: u32 = 5;

/// One relay's status, as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Dialling it, or waiting for its answer to the reservation.
    Connecting,
    /// It holds a slot for us: others reach us through it.
    Reserved,
    /// The last attempt failed, and why.
    Failed(String),
    /// Not in use (another relay is active).
    Disconnected,
}

/// What the swarm should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Dial this relay and reserve a slot on it.
    Dial(String),
    /// Nothing until this moment.
    WaitUntil(Instant),
    /// Nothing at all: there are no relays.
    Idle,
}

/// Which relay is active, its failures and backoff, and every relay's status.
#[derive(Debug, Default)]
pub struct RelayManager {
    relays: Vec<(String, Status)>,
    active: usize,
    failures: u32,
    retry_at: Option<Instant>,
    in_flight: bool,
}

impl RelayManager {
    /// Replaces the relay list, keeping the state of relays that stay.
    pub fn set_relays(&mut self, addrs: Vec<String>) {
        let current = self.active_addr().map(str::to_owned);
        let old = std::mem::take(&mut self.relays);
        self.relays = addrs
            .into_iter()
            .map(|addr| {
                let status = old
                    .iter()
                    .find(|(a, _)| *a == addr)
                    .map_or(Status::Disconnected, |(_, s)| s.clone());
                (addr, status)
            })
            .collect();
        match current.and_then(|c| self.relays.iter().position(|(a, _)| *a == c)) {
            Some(i) => self.active = i,
            None => {
                self.active = 0;
                self.failures = 0;
                self.retry_at = None;
                self.in_flight = false;
            }
        }
    }

    /// The relay being tried or held now.
    pub fn active_addr(&self) -> Option<&str> {
        self.relays.get(self.active).map(|(a, _)| a.as_str())
    }

    /// Every relay with its status, in the user's order.
    pub fn statuses(&self) -> Vec<(String, Status)> {
        self.relays.clone()
    }

    /// The reserved relay, if any: the one invites go through.
    pub fn reserved(&self) -> Option<&str> {
        self.relays
            .iter()
            .find(|(_, s)| *s == Status::Reserved)
            .map(|(a, _)| a.as_str())
    }

    /// What to do now.
    pub fn next_step(&mut self, now: Instant) -> Step {
        let Some(addr) = self.active_addr().map(str::to_owned) else {
            return Step::Idle;
        };
        if self.in_flight || self.relays[self.active].1 == Status::Reserved {
            return Step::WaitUntil(now + Duration::from_secs(3600));
        }
        match self.retry_at {
            Some(at) if at > now => Step::WaitUntil(at),
            _ => {
                self.in_flight = true;
                self.retry_at = None;
                self.relays[self.active].1 = Status::Connecting;
                Step::Dial(addr)
            }
        }
    }

    /// The reservation on `addr` was accepted.
    pub fn reserved_on(&mut self, addr: &str) {
        if let Some(i) = self.index(addr) {
            self.relays[i].1 = Status::Reserved;
            if i == self.active {
                self.failures = 0;
                self.in_flight = false;
            }
        }
    }

    /// The attempt on, or the link to, `addr` failed or closed.
    pub fn failed(&mut self, addr: &str, reason: String, now: Instant, rng: &mut impl Rng) {
        let Some(i) = self.index(addr) else { return };
        // One attempt fails once, however many swarm events report it.
        if i == self.active && !self.in_flight && matches!(self.relays[i].1, Status::Failed(_)) {
            return;
        }
        if i != self.active {
            self.relays[i].1 = Status::Disconnected;
            return;
        }
        self.relays[i].1 = Status::Failed(reason);
        self.in_flight = false;
        self.failures += 1;
        if self.failures >= FAILURES_BEFORE_FALLBACK && self.relays.len() > 1 {
            // Leave this one marked failed, with its reason, and try the next, wrapping.
            self.active = (self.active + 1) % self.relays.len();
            self.failures = 0;
            self.retry_at = None;
        } else {
            self.retry_at = Some(now + backoff::delay(self.failures - 1, rng));
        }
    }

    fn index(&self, addr: &str) -> Option<usize> {
        self.relays.iter().position(|(a, _)| a == addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(addrs: &[&str]) -> RelayManager {
        let mut m = RelayManager::default();
        m.set_relays(addrs.iter().map(|s| s.to_string()).collect());
        m
    }

    #[test]
    fn no_relays_means_nothing_to_do() {
        assert_eq!(manager(&[]).next_step(Instant::now()), Step::Idle);
    }

    #[test]
    fn the_first_relay_is_dialled_and_reserved() {
        let mut m = manager(&["a", "b"]);
        let now = Instant::now();
        assert_eq!(m.next_step(now), Step::Dial("a".into()));
        assert_eq!(m.statuses()[0].1, Status::Connecting);
        m.reserved_on("a");
        assert_eq!(m.reserved(), Some("a"));
        assert!(matches!(m.next_step(now), Step::WaitUntil(_)));
    }

    #[test]
    fn failures_back_off_then_fall_back_to_the_next_relay_and_wrap() {
        let mut rng = rand::thread_rng();
        let mut m = manager(&["a", "b"]);
        let mut now = Instant::now();
        for attempt in 0..FAILURES_BEFORE_FALLBACK {
            assert_eq!(
                m.next_step(now),
                Step::Dial("a".into()),
                "attempt {attempt}"
            );
            m.failed("a", "refused".into(), now, &mut rng);
            if attempt + 1 < FAILURES_BEFORE_FALLBACK {
                let Step::WaitUntil(at) = m.next_step(now) else {
                    panic!("should wait")
                };
                let wait = at - now;
                assert!(
                    wait <= backoff::ceiling(attempt)
                        && wait >= backoff::ceiling(attempt).mul_f64(0.75)
                );
                now = at;
            }
        }
        assert_eq!(m.statuses()[0].1, Status::Failed("refused".into()));
        assert_eq!(m.next_step(now), Step::Dial("b".into()));
        for _ in 0..FAILURES_BEFORE_FALLBACK {
            m.failed("b", "down".into(), now, &mut rng);
            now += backoff::CAP;
            let _ = m.next_step(now);
        }
        assert_eq!(
            m.active_addr(),
            Some("a"),
            "wraps around to the first relay"
        );
    }

    #[test]
    fn a_lost_reservation_is_retried_after_backoff() {
        let mut rng = rand::thread_rng();
        let mut m = manager(&["a"]);
        let now = Instant::now();
        m.next_step(now);
        m.reserved_on("a");
        m.failed("a", "connection closed".into(), now, &mut rng);
        assert_eq!(
            m.statuses()[0].1,
            Status::Failed("connection closed".into())
        );
        let Step::WaitUntil(at) = m.next_step(now) else {
            panic!("should wait")
        };
        assert!(at - now <= backoff::ceiling(0));
        assert_eq!(m.next_step(at), Step::Dial("a".into()));
    }

    #[test]
    fn editing_the_list_keeps_the_state_of_relays_that_stay() {
        let mut m = manager(&["a"]);
        m.next_step(Instant::now());
        m.reserved_on("a");
        m.set_relays(vec!["z".into(), "a".into()]);
        assert_eq!(m.reserved(), Some("a"));
        assert_eq!(m.active_addr(), Some("a"));
        m.set_relays(vec!["z".into()]);
        assert_eq!(m.active_addr(), Some("z"));
        assert_eq!(m.statuses(), vec![("z".to_string(), Status::Disconnected)]);
    }
}
