//! Reconnect delays: 1 s × 2^n capped at 30 s, drawn at random in [0.75 d, d] so that many
//! peers cut off by the same outage do not all come back in the same instant.

use std::time::Duration;

use rand::Rng;

/// The first retry's ceiling.
pub const BASE: Duration = Duration::from_secs(1);
/// No delay is longer than this.
pub const CAP: Duration = Duration::from_secs(30);

/// The upper bound of the delay after `failures` consecutive failures (0 = first retry).
pub fn ceiling(failures: u32) -> Duration {
    let factor = 1u64.checked_shl(failures.min(16)).unwrap_or(u64::MAX);
    BASE.saturating_mul(factor.min(u32::MAX as u64) as u32)
        .min(CAP)
}

/// The delay to wait after `failures` consecutive failures.
pub fn delay(failures: u32, rng: &mut impl Rng) -> Duration {
    let d = ceiling(failures);
    d.mul_f64(rng.gen_range(0.75..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_one_second_up_to_thirty() {
        let secs: Vec<u64> = (0..8).map(|n| ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(ceiling(1_000), CAP);
    }

    #[test]
    fn delays_fall_in_three_quarters_to_all_of_the_ceiling() {
        let mut rng = rand::thread_rng();
        for n in 0..10 {
            for _ in 0..200 {
                let d = delay(n, &mut rng);
                let c = ceiling(n);
                assert!(d <= c && d >= c.mul_f64(0.75), "{d:?} vs {c:?}");
            }
        }
    }
}
