//! Judging leases without trusting anyone's wall clock.
//!
//! A claimed ticket's content is its lease: a renewal counter that the agent holding it
//! rewrites every [`renew_interval`] (a quarter of the lease). Another agent judges the lease
//! expired when it has seen the same content for at least the lease period, measured on its
//! own monotonic [`Clock`], adding up the time between its reads with each gap counted as at
//! most a third of the lease. Wall clocks of different hosts are never compared, so:
//!
//! - a clock that jumps (the observer's own, forward: a suspended VM, a test) adds at most a
//!   third of the lease per read, so a live lease, renewed every quarter lease, is never seen
//!   unchanged long enough to look expired;
//! - a clock that goes back adds nothing for that read, and the next reads go on adding, so a
//!   dead lease still expires after a few more reads (a dead lease is never live forever);
//! - a new observer (an agent that just started) needs a full lease period of its own
//!   observations before it returns anything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the holder of a lease renews it: a quarter of the lease.
pub fn renew_interval(lease: Duration) -> Duration {
    lease / 4
}

/// A monotonic clock: the time since some fixed origin. Injectable for tests.
pub trait Clock: Send {
    /// The time since the clock's origin.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock ([`Instant`]).
#[derive(Debug)]
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// What an observer last saw of one ticket.
#[derive(Debug)]
struct Seen {
    content: Vec<u8>,
    /// Clock reading at the last read.
    last_read: Duration,
    /// Time the content has been seen unchanged (each gap between reads capped).
    unchanged: Duration,
}

/// An observer of other agents' leases.
pub struct LeaseWatch {
    lease: Duration,
    clock: Box<dyn Clock>,
    seen: HashMap<String, Seen>,
}

impl std::fmt::Debug for LeaseWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseWatch")
            .field("lease", &self.lease)
            .field("watched", &self.seen.len())
            .finish()
    }
}

impl LeaseWatch {
    /// An observer for leases of `lease`, on the process's monotonic clock.
    pub fn new(lease: Duration) -> Self {
        LeaseWatch::with_clock(lease, Box::new(MonotonicClock::default()))
    }

    /// An observer on a given clock.
    pub fn with_clock(lease: Duration, clock: Box<dyn Clock>) -> Self {
        LeaseWatch {
            lease,
            clock,
            seen: HashMap::new(),
        }
    }

    /// The lease period.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Records a read of ticket `name` with `content`; true when the lease has expired.
    pub fn observe(&mut self, name: &str, content: &[u8]) -> bool {
        let now = self.clock.now();
        let cap = self.lease / 3;
        match self.seen.get_mut(name) {
            Some(seen) if seen.content == content => {
                let gap = now.saturating_sub(seen.last_read).min(cap);
                seen.unchanged += gap;
                seen.last_read = now;
                seen.unchanged >= self.lease
            }
            Some(seen) => {
                seen.content = content.to_vec();
                seen.last_read = now;
                seen.unchanged = Duration::ZERO;
                false
            }
            None => {
                self.seen.insert(
                    name.to_owned(),
                    Seen {
                        content: content.to_vec(),
                        last_read: now,
                        unchanged: Duration::ZERO,
                    },
                );
                false
            }
        }
    }

    /// Forgets every ticket not in `present` (tickets that moved on).
    pub fn retain(&mut self, present: &dyn Fn(&str) -> bool) {
        self.seen.retain(|name, _| present(name));
    }

    /// Forgets one ticket.
    pub fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A clock the test moves by hand.
    #[derive(Clone, Default)]
    struct Manual(Arc<Mutex<Duration>>);

    impl Manual {
        fn set(&self, t: Duration) {
            *self.0.lock().unwrap() = t;
        }
    }

    impl Clock for Manual {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn unchanged_for_a_lease_expires() {
        let clock = Manual::default();
        let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
        let mut expired = false;
        for second in (0..=60).step_by(10) {
            clock.set(Duration::from_secs(second));
            expired = watch.observe("t", b"1");
        }
        assert!(expired);
    }

    #[test]
    fn renewed_lease_never_expires() {
        let clock = Manual::default();
        let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
        for second in 0..600u64 {
            clock.set(Duration::from_secs(second));
            let counter = second / 15;
            assert!(!watch.observe("t", counter.to_string().as_bytes()));
        }
    }

    #[test]
    fn forward_jump_does_not_expire_a_live_lease() {
        let clock = Manual::default();
        let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
        assert!(!watch.observe("t", b"7"));
        // The observer's clock leaps ten hours between two reads a second apart in real time.
        clock.set(Duration::from_secs(36_000));
        assert!(!watch.observe("t", b"7"));
        clock.set(Duration::from_secs(36_001));
        assert!(!watch.observe("t", b"7"));
        // The holder renews (every 15 s): seen again as alive.
        clock.set(Duration::from_secs(36_010));
        assert!(!watch.observe("t", b"8"));
    }

    #[test]
    fn backward_jump_does_not_keep_a_dead_lease_alive() {
        let clock = Manual::default();
        let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
        clock.set(Duration::from_secs(36_000));
        assert!(!watch.observe("t", b"3"));
        clock.set(Duration::from_secs(5));
        assert!(!watch.observe("t", b"3"));
        let mut expired = false;
        for step in 1..=10u64 {
            clock.set(Duration::from_secs(5 + step * 10));
            expired |= watch.observe("t", b"3");
        }
        assert!(
            expired,
            "a dead lease still expires after the clock went back"
        );
    }
}
