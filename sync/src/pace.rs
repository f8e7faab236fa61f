//! [`Pace`]: how much sync puts on the link at once, shared by every client of one sync.
//!
//! On a fast link sync is CPU-bound and a few runs per core keep the cores busy; on a slow one
//! (a login node talking to a server across a WAN) each run spends most of its time waiting for
//! replies, and only more runs in flight fill the link. So the number of runs at once follows
//! the link: it starts at the CPU-based number (`jobs`) and rises with the smoothed time a
//! request waits for its reply, up to a cap (`max_jobs`, 32 unless `-j` was given). A reply of
//! 429 or 5xx, or a timeout, sets it back to `jobs` for a while, so backing off still sheds load.
//! A long wait only means a far server when its *fastest* reply takes long too: a near server
//! whose replies are slow because the work waits for a core (the server on the same machine, or
//! sync itself parsing and building bodies) still answers some small request quickly, so the
//! number stays at `jobs` once any reply came in under [`WAIT_PER_EXTRA_RUNS`] (no request to a
//! server 15 ms away returns sooner). A far server gets the rise however busy the processors
//! are: its waits overlap with the parsing of other runs.
//! Whatever the number of runs, at most [`MAX_IN_FLIGHT`] requests are in flight at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Requests in flight at once, over all runs of one sync.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// A run's time waiting for one reply that is worth one more run in flight: with replies taking
/// `n` times this, sync runs `jobs × (1 + n)` runs at once (up to the cap).
const WAIT_PER_EXTRA_RUNS: Duration = Duration::from_millis(15);

/// How long a 429, 5xx or timeout holds the number of runs at `jobs`.
const CONGESTION_HOLD: Duration = Duration::from_secs(10);

/// Shared pacing state of one sync (see the module docs).
#[derive(Debug)]
pub(crate) struct Pace {
    in_flight: Mutex<usize>,
    freed: Condvar,
    /// Smoothed wait for a reply, in microseconds (0 until the first reply).
    wait_micros: AtomicU64,
    /// The shortest wait for a reply so far, in microseconds (`u64::MAX` until the first).
    fastest_micros: AtomicU64,
    /// Until when the number of runs stays at `jobs` after a sign of congestion.
    congested_until: Mutex<Option<Instant>>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            wait_micros: AtomicU64::new(0),
            fastest_micros: AtomicU64::new(u64::MAX),
            congested_until: Mutex::new(None),
        }
    }
}

/// One request's place among the [`MAX_IN_FLIGHT`]; freed on drop.
pub(crate) struct Permit<'a> {
    pace: &'a Pace,
    started: Instant,
}

impl Pace {
    /// Waits for a place among the requests in flight.
    pub(crate) fn acquire(&self) -> Permit<'_> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *in_flight >= MAX_IN_FLIGHT {
            // Bounded: a permit is dropped when its request ends, and every request has a timeout.
            in_flight = self
                .freed
                .wait(in_flight)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *in_flight += 1;
        Permit {
            pace: self,
            started: Instant::now(),
        }
    }

    /// Notes that a request got a reply `wait` after it was sent (to the W&B server itself, or
    /// to another host such as an upload URL's).
    fn replied(&self, wait: Duration, to_server: bool) {
        let sample = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        // An exponential average over about eight replies; races only lose a sample.
        let old = self.wait_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.wait_micros.store(new, Ordering::Relaxed);
        if to_server {
            self.fastest_micros.fetch_min(sample, Ordering::Relaxed);
        }
    }

    /// Notes a sign of congestion (429, 5xx, a timeout).
    pub(crate) fn congested(&self) {
        *self
            .congested_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + CONGESTION_HOLD);
    }

    /// The smoothed wait for a reply.
    pub(crate) fn reply_wait(&self) -> Duration {
        Duration::from_micros(self.wait_micros.load(Ordering::Relaxed))
    }

    /// How many runs to sync at once now: `jobs` on a fast link or after congestion, more the
    /// longer replies take, never more than `max_jobs`.
    pub(crate) fn runs_at_once(&self, jobs: usize, max_jobs: usize) -> usize {
        let jobs = jobs.max(1);
        let max_jobs = max_jobs.max(jobs);
        let congested = self
            .congested_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until);
        let near =
            self.fastest_micros.load(Ordering::Relaxed) < WAIT_PER_EXTRA_RUNS.as_micros() as u64;
        if congested || near {
            return jobs;
        }
        let extra = self.reply_wait().as_micros() / WAIT_PER_EXTRA_RUNS.as_micros().max(1);
        let wanted = jobs.saturating_mul(1 + usize::try_from(extra).unwrap_or(usize::MAX));
        wanted.clamp(jobs, max_jobs)
    }
}

impl Permit<'_> {
    /// The request got a reply (any status): its wait counts towards the pace. Only a reply of
    /// the W&B server itself (`to_server`) can show it is near: uploads go to storage URLs, which
    /// may be nearer than the server.
    pub(crate) fn replied(&self, to_server: bool) {
        self.pace.replied(self.started.elapsed(), to_server);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .pace
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *in_flight = in_flight.saturating_sub(1);
        drop(in_flight);
        self.pace.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_reply_wait() {
        let pace = Pace::default();
        assert_eq!(pace.runs_at_once(4, 32), 4, "no reply yet");
        pace.replied(Duration::from_millis(1), true);
        assert_eq!(pace.runs_at_once(4, 32), 4, "loopback");
        // Slow replies from a server that once answered within a millisecond: a near server
        // slowed by a busy machine, not a far one.
        for _ in 0..64 {
            pace.replied(Duration::from_millis(200), true);
        }
        assert_eq!(pace.runs_at_once(4, 32), 4, "near but slowed");
        // A quick upload to a storage host says nothing of the server's distance.
        let pace = Pace::default();
        pace.replied(Duration::from_millis(2), false);
        for _ in 0..64 {
            pace.replied(Duration::from_millis(150), true);
        }
        assert_eq!(pace.runs_at_once(4, 32), 32, "near storage, far server");
        let pace = Pace::default();
        pace.replied(Duration::from_millis(50), true);
        assert_eq!(pace.runs_at_once(4, 32), 16, "50 ms: 4 x (1 + 3)");
        assert_eq!(pace.runs_at_once(4, 8), 8, "-j caps it");
        let pace = Pace::default();
        pace.replied(Duration::from_millis(150), true);
        assert_eq!(pace.runs_at_once(4, 32), 32, "150 ms: the cap");
        pace.congested();
        assert_eq!(pace.runs_at_once(4, 32), 4, "congestion holds it at jobs");
    }

    #[test]
    fn in_flight_is_bounded() {
        let pace = Pace::default();
        let permits: Vec<Permit<'_>> = (0..MAX_IN_FLIGHT).map(|_| pace.acquire()).collect();
        assert_eq!(
            *pace
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            MAX_IN_FLIGHT
        );
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let permit = pace.acquire();
                permit.replied(true);
            });
            drop(permits);
            waiter
                .join()
                .unwrap_or_else(|_| panic!("the waiter panicked"));
        });
        assert_eq!(
            *pace
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            0
        );
    }
}
