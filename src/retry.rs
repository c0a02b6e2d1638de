//! Bounded retries with exponential backoff and full jitter.
//!
//! At first boot the network, DNS, IMDS or Vault may not be ready for a
//! while. Transient failures are retried until one deadline for the whole
//! run passes. Permanent ones end the run at once: a rejected login, a nonce
//! mismatch, bad input, a TLS verification failure.

use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::log::Log;

/// The retry settings of one run, and its deadline.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Upper bound of the first delay; each attempt doubles it.
    pub min_backoff: Duration,
    /// Cap on the delay bound.
    pub max_backoff: Duration,
    /// When the run stops retrying; `None` means a single attempt.
    pub deadline: Option<Instant>,
}

impl Retry {
    /// Starts the clock: retries may go on for `max_wait` from now, and a
    /// zero `max_wait` means one attempt only.
    pub fn start(min_backoff: Duration, max_backoff: Duration, max_wait: Duration) -> Retry {
        let deadline = (!max_wait.is_zero()).then(|| Instant::now() + max_wait);
        Retry {
            min_backoff,
            max_backoff: max_backoff.max(min_backoff),
            deadline,
        }
    }

    /// Returns a policy with no retries, for tests and one-shot callers.
    pub fn once() -> Retry {
        Retry {
            min_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            deadline: None,
        }
    }

    /// Returns the time left before the deadline, zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        })
    }

    /// Runs `operation` until it succeeds, fails permanently, or the next
    /// delay would end after the deadline.
    ///
    /// Each retry logs one line: what failed, the attempt, the delay.
    ///
    /// # Errors
    ///
    /// The last error, with the number of attempts added when there was
    /// more than one.
    pub fn run<T>(
        &self,
        what: &str,
        log: Log,
        mut operation: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let mut attempt: u32 = 1;
        loop {
            let err = match operation() {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !err.transient {
                return Err(err);
            }
            let delay = self.delay(attempt);
            if self
                .deadline
                .is_none_or(|deadline| Instant::now() + delay > deadline)
            {
                return Err(give_up(err, attempt));
            }
            log.warn(format!(
                "{what}: attempt {attempt} failed, retrying in {:.1}s: {}",
                delay.as_secs_f64(),
                err.message
            ));
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    /// Returns a delay drawn uniformly from zero to
    /// `min(max_backoff, min_backoff * 2^(attempt-1))` ("full jitter"),
    /// which spreads the retries of a fleet booting at once.
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let bound = self
            .min_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let mut bytes = [0u8; 8];
        // A failed random source only loses the jitter, not the retry.
        let fraction = match SystemRandom::new().fill(&mut bytes) {
            Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 1.0,
        };
        bound.mul_f64(fraction)
    }
}

fn give_up(mut err: Error, attempts: u32) -> Error {
    if attempts > 1 {
        err.message = format!("{} (gave up after {attempts} attempts)", err.message);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Status;
    use std::cell::Cell;

    const QUIET: Log = Log { verbose: false };

    fn fast(max_wait: Duration) -> Retry {
        Retry::start(Duration::from_millis(1), Duration::from_millis(4), max_wait)
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let result = fast(Duration::from_secs(5)).run("test", QUIET, || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(Error::transient(Status::VaultUnavailable, "refused"))
            } else {
                Ok(7)
            }
        });
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let calls = Cell::new(0);
        let err = fast(Duration::from_secs(5))
            .run("test", QUIET, || -> Result<()> {
                calls.set(calls.get() + 1);
                Err(Error::new(Status::NonceMismatch, "client nonce mismatch"))
            })
            .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert_eq!(err.status, Status::NonceMismatch);
    }

    #[test]
    fn zero_max_wait_means_one_attempt() {
        let calls = Cell::new(0);
        let err = fast(Duration::ZERO)
            .run("test", QUIET, || -> Result<()> {
                calls.set(calls.get() + 1);
                Err(Error::transient(Status::VaultUnavailable, "refused"))
            })
            .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert_eq!(err.message, "refused");
    }

    #[test]
    fn deadline_ends_retries_with_attempt_count() {
        let start = Instant::now();
        // Delays of 10 to 20 ms within 100 ms keep the warning lines few.
        let retry = Retry::start(
            Duration::from_millis(10),
            Duration::from_millis(20),
            Duration::from_millis(100),
        );
        let err = retry
            .run("test", QUIET, || -> Result<()> {
                Err(Error::transient(Status::ImdsUnavailable, "timed out"))
            })
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(err.status, Status::ImdsUnavailable);
        assert!(err.message.contains("gave up after"), "{}", err.message);
    }

    #[test]
    fn delays_stay_within_the_cap() {
        let retry = Retry::start(
            Duration::from_millis(100),
            Duration::from_millis(400),
            Duration::from_secs(1),
        );
        for attempt in 1..40 {
            assert!(retry.delay(attempt) <= Duration::from_millis(400));
        }
        assert!(retry.delay(1) <= Duration::from_millis(100));
    }
}
