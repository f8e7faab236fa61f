//! The queue on its own (library level): order, exclusive claims, leases, retries, cancel and
//! requeue, malformed documents, crash leftovers.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wandb_launch::item::{Item, Priority, State};
use wandb_launch::job::JobRequest;
use wandb_launch::lease::{Clock, LeaseWatch};
use wandb_launch::queue::{Cancelled, Location, Queue};

/// A clock the test moves by hand.
#[derive(Clone, Default)]
struct Manual(Arc<Mutex<Duration>>);

impl Manual {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for Manual {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

const LEASE: Duration = Duration::from_secs(60);

fn item(priority: Priority, max_retries: u32) -> Item {
    let mut request = JobRequest::default();
    request.command = vec!["true".into()];
    request.priority = priority;
    request.max_retries = Some(max_retries);
    request.into_item().unwrap()
}

fn queue(root: &Path) -> Queue {
    Queue::open(root, "q").unwrap()
}

#[test]
fn claims_follow_priority_then_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let order = [
        Priority::Low,
        Priority::Medium,
        Priority::Critical,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];
    let items: Vec<Item> = order.iter().map(|&p| item(p, 5)).collect();
    for it in &items {
        q.add(it).unwrap();
    }
    let claims = q.claim("agent1", 10).unwrap();
    let got: Vec<&str> = claims.iter().map(|c| c.id()).collect();
    let want: Vec<&str> = [2, 5, 4, 1, 3, 0]
        .iter()
        .map(|&i| items[i].id.as_str())
        .collect();
    assert_eq!(got, want);
    assert!(claims.iter().all(|c| c.item.is_ok()));
}

#[test]
fn concurrent_claimers_never_share_an_item() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let mut ids = HashSet::new();
    for _ in 0..200 {
        let it = item(Priority::Medium, 5);
        ids.insert(it.id.clone());
        q.add(&it).unwrap();
    }
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let claims = q.claim(&format!("agent{t}"), 3).unwrap();
                    if claims.is_empty() {
                        break got;
                    }
                    got.extend(claims.into_iter().map(|c| c.id().to_owned()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), 200, "an item was claimed twice or lost");
    assert_eq!(unique, ids);
}

#[test]
fn an_expired_lease_is_returned_once_by_competing_agents() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let it = item(Priority::Medium, 5);
    q.add(&it).unwrap();
    let claim = q.claim("dead", 1).unwrap().pop().unwrap();
    assert_eq!(claim.ticket.attempt, 0);
    // Two observers, each on its own clock; the holder never renews again.
    let (c1, c2) = (Manual::default(), Manual::default());
    let mut w1 = LeaseWatch::with_clock(LEASE, Box::new(c1.clone()));
    let mut w2 = LeaseWatch::with_clock(LEASE, Box::new(c2.clone()));
    let mut returned = Vec::new();
    for _ in 0..8 {
        returned.extend(q.reap(&mut w1, "a1").unwrap());
        returned.extend(q.reap(&mut w2, "a2").unwrap());
        c1.advance(Duration::from_secs(20));
        c2.advance(Duration::from_secs(20));
    }
    assert_eq!(returned.len(), 1, "{returned:?}");
    assert!(!returned[0].failed);
    let pending = q.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].attempt, pending[0].expiries), (1, 1));
    let record = q.attempt(&it.id, 0).unwrap().unwrap();
    assert_eq!(record.state, Some(State::Expired));
    assert!(record.reason.unwrap().contains("lease expired"));
    // The old holder's renewal finds its ticket gone and does not bring it back.
    let mut claim = claim;
    assert!(!q.renew(&mut claim).unwrap());
    assert_eq!(q.list_claimed().unwrap(), 0);
}

#[test]
fn a_renewed_lease_survives_a_clock_jump() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    q.add(&item(Priority::Medium, 5)).unwrap();
    let mut claim = q.claim("live", 1).unwrap().pop().unwrap();
    let clock = Manual::default();
    let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
    for round in 0..40 {
        // The observer's clock leaps ten hours now and then; the holder renews every 15 s.
        clock.advance(if round % 7 == 3 {
            Duration::from_secs(36_000)
        } else {
            Duration::from_secs(5)
        });
        if round % 3 == 0 {
            assert!(q.renew(&mut claim).unwrap());
        }
        assert!(
            q.reap(&mut watch, "observer").unwrap().is_empty(),
            "round {round}"
        );
    }
    assert_eq!(q.list_claimed().unwrap(), 1);
}

#[test]
fn past_max_retries_the_item_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let it = item(Priority::Medium, 1);
    q.add(&it).unwrap();
    let clock = Manual::default();
    let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
    let mut outcomes = Vec::new();
    for _attempt in 0..2 {
        let claims = q.claim("flaky", 1).unwrap();
        assert_eq!(claims.len(), 1);
        for _ in 0..5 {
            outcomes.extend(q.reap(&mut watch, "observer").unwrap());
            clock.advance(Duration::from_secs(20));
        }
    }
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(!outcomes[0].failed && outcomes[1].failed);
    assert_eq!(
        q.locate(&it.id).unwrap(),
        Location::Done(format!("{}.1.failed", it.id), State::Failed)
    );
    let status = q.status(&it.id).unwrap();
    assert_eq!(status.state, State::Failed);
    let reason = status.record.unwrap().reason.unwrap();
    assert!(reason.contains("no retries left"), "{reason}");
}

#[test]
fn cancel_then_requeue() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let waiting = item(Priority::Medium, 5);
    let running = item(Priority::Low, 5);
    q.add(&waiting).unwrap();
    q.add(&running).unwrap();
    assert_eq!(q.cancel(&waiting.id).unwrap(), Cancelled::Now);
    assert_eq!(q.status(&waiting.id).unwrap().state, State::Cancelled);
    let claim = q.claim("a", 1).unwrap().pop().unwrap();
    assert_eq!(claim.id(), running.id);
    assert_eq!(q.cancel(&running.id).unwrap(), Cancelled::Requested);
    assert!(q.cancel_requested(&running.id));
    // An item waiting or claimed cannot be requeued; an ended one can, as its next attempt.
    assert!(q.requeue(&running.id).is_err());
    q.requeue(&waiting.id).unwrap();
    let pending = q.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id.as_str(), pending[0].attempt),
        (waiting.id.as_str(), 1)
    );
    let err = q.cancel("nosuchitem").unwrap_err().to_string();
    assert!(err.contains("nosuchitem"), "{err}");
}

#[test]
fn malformed_and_missing_documents_name_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let truncated = item(Priority::Critical, 5);
    let missing = item(Priority::High, 5);
    let good = item(Priority::Low, 5);
    for it in [&truncated, &missing, &good] {
        q.add(it).unwrap();
    }
    let path = q.item_path(&truncated.id);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(q.item_path(&missing.id)).unwrap();
    let claims = q.claim("a", 3).unwrap();
    assert_eq!(claims.len(), 3);
    let e0 = claims[0].item.as_ref().unwrap_err().to_string();
    assert!(
        e0.contains(&truncated.id) && e0.contains("not a valid item"),
        "{e0}"
    );
    let e1 = claims[1].item.as_ref().unwrap_err().to_string();
    assert!(e1.contains(&missing.id) && e1.contains("missing"), "{e1}");
    assert_eq!(claims[2].item.as_ref().unwrap(), &good);
}

#[test]
fn leftovers_of_a_crash_are_never_taken_for_items() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    // A temp file of an interrupted write, in every folder, and a document whose ticket was
    // never created (a crash between the two steps of add).
    for sub in ["pending", "claimed", "done", "items"] {
        std::fs::write(q.dir().join(sub).join(".x.json.abc.tmp"), b"{\"id\":").unwrap();
    }
    let orphan = item(Priority::Medium, 5);
    std::fs::write(
        q.item_path(&orphan.id),
        serde_json::to_vec(&orphan).unwrap(),
    )
    .unwrap();
    assert!(q.list().unwrap().is_empty());
    assert!(q.claim("a", 5).unwrap().is_empty());
    let it = item(Priority::Medium, 5);
    q.add(&it).unwrap();
    let ids: Vec<String> = q.list().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, [it.id]);
}

#[test]
fn a_job_that_ended_before_its_agent_died_is_recorded_not_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(dir.path());
    let ok = item(Priority::High, 5);
    let bad = item(Priority::Low, 5);
    q.add(&ok).unwrap();
    q.add(&bad).unwrap();
    assert_eq!(q.claim("dead", 2).unwrap().len(), 2);
    // What the job wrapper wrote before the agent could record the ends.
    let exit = |id: &str| wandb_launch::local::exit_path(&q.log_path(id, 0));
    std::fs::write(exit(&ok.id), br#"{"exit_code":0,"signal":null}"#).unwrap();
    std::fs::write(exit(&bad.id), br#"{"exit_code":null,"signal":9}"#).unwrap();
    let clock = Manual::default();
    let mut watch = LeaseWatch::with_clock(LEASE, Box::new(clock.clone()));
    for _ in 0..5 {
        q.reap(&mut watch, "observer").unwrap();
        clock.advance(Duration::from_secs(20));
    }
    assert!(
        q.pending().unwrap().is_empty(),
        "nothing goes back to the queue"
    );
    let ok_status = q.status(&ok.id).unwrap();
    assert_eq!(ok_status.state, State::Finished);
    assert_eq!(ok_status.record.unwrap().exit_code, Some(0));
    let bad_status = q.status(&bad.id).unwrap();
    assert_eq!(bad_status.state, State::Failed);
    assert_eq!(bad_status.record.unwrap().signal, Some(9));
}
