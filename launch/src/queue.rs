//! The queue on a file system: one folder per queue, tickets moved between sub-folders by
//! atomic renames, item documents written atomically. `launch/QUEUE.md` is the specification
//! (layout, state machine, guarantees); this module implements it.
//!
//! Every move of a ticket is one `rename(2)` inside the queue folder, which is atomic on a
//! local file system and on NFS, Lustre and GPFS (within one file system). Of several agents
//! renaming the same ticket, one succeeds and the others get `ENOENT`: that single winner is
//! what makes a claim, a return of an expired item, a cancel and a requeue exclusive. No file
//! locks are used (they are unreliable over NFS).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil::{
    create_empty, list_names, read_if_present, rename_if_present, sync_dir, write_atomic,
};
use crate::item::{Attempt, DEFAULT_MAX_RETRIES, Item, Priority, State};
use crate::lease::LeaseWatch;
use crate::wrapper::read_exit_file;

/// Sub-folder of waiting tickets.
pub const PENDING: &str = "pending";
/// Sub-folder of claimed tickets (each one also its lease).
pub const CLAIMED: &str = "claimed";
/// Sub-folder of tickets of ended items.
pub const DONE: &str = "done";
/// Sub-folder of item documents, attempt records and job logs.
pub const ITEMS: &str = "items";
/// Sub-folder of cancel requests for claimed items.
pub const CANCEL: &str = "cancel";

/// A queue: the folder `<root>/<name>`.
#[derive(Clone, Debug)]
pub struct Queue {
    name: String,
    dir: PathBuf,
}

/// A ticket's identity, as its name in `pending/` and `claimed/` spells it:
/// `<priority digit>-<sequence, 20 digits>-<item id>.<attempt>.<expiries>` (plus `.<agent
/// token>` in `claimed/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The item's priority.
    pub priority: Priority,
    /// Order within the priority (microseconds since the epoch at `add`, made unique).
    pub seq: u64,
    /// The item id.
    pub id: String,
    /// The attempt this ticket is for (0 first; one more at every claim that ended unfinished).
    pub attempt: u32,
    /// How many times the item's lease has expired.
    pub expiries: u32,
}

impl Ticket {
    /// The ticket's name in `pending/`.
    pub fn pending_name(&self) -> String {
        format!(
            "{}-{:020}-{}.{}.{}",
            self.priority.digit(),
            self.seq,
            self.id,
            self.attempt,
            self.expiries
        )
    }

    /// The ticket's name in `claimed/` when agent `token` holds it.
    pub fn claimed_name(&self, token: &str) -> String {
        format!("{}.{token}", self.pending_name())
    }

    /// The ticket's name in `done/` in final state `state`.
    pub fn done_name(&self, state: State) -> String {
        format!("{}.{}.{}", self.id, self.attempt, state.name())
    }

    /// Parses a `pending/` name.
    pub fn parse_pending(name: &str) -> Option<Ticket> {
        let (head, rest) = name.split_once('.')?;
        let mut parts = head.splitn(3, '-');
        let priority = Priority::from_digit(parts.next()?.parse().ok()?)?;
        let seq = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        let (attempt, expiries) = rest.split_once('.')?;
        if !valid_id(id) {
            return None;
        }
        Some(Ticket {
            priority,
            seq,
            id: id.to_owned(),
            attempt: attempt.parse().ok()?,
            expiries: expiries.parse().ok()?,
        })
    }

    /// Parses a `claimed/` name into the ticket and the holder's token.
    pub fn parse_claimed(name: &str) -> Option<(Ticket, String)> {
        let (pending, token) = name.rsplit_once('.')?;
        Some((Ticket::parse_pending(pending)?, token.to_owned()))
    }
}

/// Parses a `done/` name: `<id>.<attempt>.<state>`.
fn parse_done(name: &str) -> Option<(String, u32, State)> {
    let mut parts = name.split('.');
    let id = parts.next()?;
    let attempt = parts.next()?.parse().ok()?;
    let state = State::from_done_name(parts.next()?)?;
    (valid_id(id) && parts.next().is_none()).then(|| (id.to_owned(), attempt, state))
}

/// Whether `id` can be an item id (`[a-z0-9]`, 1 to 64 characters).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `name` can name a queue (`[A-Za-z0-9_.-]`, not starting with a dot).
pub fn valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A ticket an agent holds.
#[derive(Debug)]
pub struct Claim {
    /// The ticket.
    pub ticket: Ticket,
    /// The holder's token.
    token: String,
    /// The last renewal counter written.
    counter: u64,
    /// The item document, or why it cannot be read (the agent then fails the item).
    pub item: Result<Item>,
}

impl Claim {
    /// The item id.
    pub fn id(&self) -> &str {
        &self.ticket.id
    }
}

/// Where an item's ticket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// In `pending/`, under this name.
    Pending(String),
    /// In `claimed/`, under this name.
    Claimed(String),
    /// In `done/`, under this name, in this final state.
    Done(String, State),
}

/// An item returned to the queue (or failed) because its lease expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaped {
    /// The item id.
    pub id: String,
    /// The attempt whose lease expired.
    pub attempt: u32,
    /// True when it had no retries left and failed.
    pub failed: bool,
}

/// What `cancel` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The item was waiting: it is cancelled.
    Now,
    /// The item is claimed: its agent was asked to stop the job (it will end `cancelled`).
    Requested,
}

/// One item as `list` and `show` see it.
#[derive(Clone, Debug, Serialize)]
pub struct ItemStatus {
    /// The item id.
    pub id: String,
    /// Its state: from where its ticket is, and for a claimed item from its attempt record.
    pub state: State,
    /// Its priority.
    pub priority: Option<Priority>,
    /// The current (or last) attempt.
    pub attempt: u32,
    /// How many times its lease expired.
    pub expiries: u32,
    /// The item document.
    pub item: Option<Item>,
    /// Why the item document could not be read.
    pub problem: Option<String>,
    /// The record of the current (or last) attempt.
    pub record: Option<Attempt>,
}

/// Last sequence number handed out by this process (so that items added in one microsecond
/// keep their order).
static LAST_SEQ: AtomicU64 = AtomicU64::new(0);

fn next_seq() -> u64 {
    let now = u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0);
    let mut last = LAST_SEQ.load(Ordering::Relaxed);
    loop {
        let seq = now.max(last + 1);
        match LAST_SEQ.compare_exchange(last, seq, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return seq,
            Err(actual) => last = actual,
        }
    }
}

/// Now, in RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

impl Queue {
    /// Opens queue `name` under `root`, creating its folders if needed.
    pub fn open(root: &Path, name: &str) -> Result<Queue> {
        if !valid_queue_name(name) {
            return Err(Error::invalid(
                None,
                "--queue",
                format!("{name:?} is not a queue name (letters, digits, `_`, `.`, `-`)"),
            ));
        }
        let dir = root.join(name);
        for sub in [PENDING, CLAIMED, DONE, ITEMS, CANCEL] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| Error::io(&path, "create queue folder", e))?;
        }
        Ok(Queue {
            name: name.to_owned(),
            dir,
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sub(&self, sub: &str) -> PathBuf {
        self.dir.join(sub)
    }

    /// The item document's path.
    pub fn item_path(&self, id: &str) -> PathBuf {
        self.sub(ITEMS).join(format!("{id}.json"))
    }

    /// The attempt record's path.
    pub fn attempt_path(&self, id: &str, attempt: u32) -> PathBuf {
        self.sub(ITEMS).join(format!("{id}.{attempt}.json"))
    }

    /// The job log of an attempt (stdout and stderr), beside the item.
    pub fn log_path(&self, id: &str, attempt: u32) -> PathBuf {
        self.sub(ITEMS).join(format!("{id}.{attempt}.log"))
    }

    /// Adds an item: its document first (atomically, durably), then its ticket in `pending/`.
    /// A crash in between leaves a document without a ticket, which nothing runs.
    pub fn add(&self, item: &Item) -> Result<()> {
        if !valid_id(&item.id) {
            return Err(Error::invalid(
                Some(&item.id),
                "id",
                "not an item id ([a-z0-9])",
            ));
        }
        let path = self.item_path(&item.id);
        let bytes = serde_json::to_vec_pretty(item).map_err(|e| Error::ItemJson {
            item: item.id.clone(),
            path: path.clone(),
            source: e,
        })?;
        write_atomic(&path, &bytes)?;
        let ticket = Ticket {
            priority: item.priority,
            seq: next_seq(),
            id: item.id.clone(),
            attempt: 0,
            expiries: 0,
        };
        create_empty(&self.sub(PENDING).join(ticket.pending_name()))
    }

    /// Reads an item document.
    pub fn item(&self, id: &str) -> Result<Item> {
        let path = self.item_path(id);
        let bytes = read_if_present(&path)?.ok_or_else(|| Error::ItemMissing {
            item: id.to_owned(),
            path: path.clone(),
        })?;
        let item: Item = serde_json::from_slice(&bytes).map_err(|e| Error::ItemJson {
            item: id.to_owned(),
            path: path.clone(),
            source: e,
        })?;
        if item.id != id {
            return Err(Error::invalid(
                Some(id),
                "id",
                format!("{}: the document is item {:?}", path.display(), item.id),
            ));
        }
        Ok(item)
    }

    /// Reads an attempt record (`None` when there is none).
    pub fn attempt(&self, id: &str, attempt: u32) -> Result<Option<Attempt>> {
        let path = self.attempt_path(id, attempt);
        match read_if_present(&path)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::ItemJson {
                    item: id.to_owned(),
                    path,
                    source: e,
                }),
        }
    }

    /// The attempt record, or a new empty one.
    fn attempt_or_new(&self, id: &str, attempt: u32) -> Attempt {
        self.attempt(id, attempt)
            .ok()
            .flatten()
            .unwrap_or_else(|| Attempt {
                item: id.to_owned(),
                attempt,
                ..Attempt::default()
            })
    }

    /// Writes an attempt record (atomically).
    pub fn write_attempt(&self, record: &Attempt) -> Result<()> {
        let path = self.attempt_path(&record.item, record.attempt);
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::ItemJson {
            item: record.item.clone(),
            path: path.clone(),
            source: e,
        })?;
        write_atomic(&path, &bytes)
    }

    /// The waiting tickets, in the order agents take them (priority, then FIFO).
    pub fn pending(&self) -> Result<Vec<Ticket>> {
        let mut tickets: Vec<Ticket> = list_names(&self.sub(PENDING))?
            .iter()
            .filter_map(|name| Ticket::parse_pending(name))
            .collect();
        tickets.sort_by(|a, b| (a.priority, a.seq, &a.id).cmp(&(b.priority, b.seq, &b.id)));
        Ok(tickets)
    }

    /// How many tickets are claimed (by any agent).
    pub fn list_claimed(&self) -> Result<usize> {
        Ok(list_names(&self.sub(CLAIMED))?
            .iter()
            .filter(|name| Ticket::parse_claimed(name).is_some())
            .count())
    }

    /// Claims up to `max` waiting items for agent `token`, first in queue order. Each claim is
    /// one rename `pending/<t>` -> `claimed/<t>.<token>`; a ticket another agent took first is
    /// skipped. The lease is written at once (counter 1).
    pub fn claim(&self, token: &str, max: usize) -> Result<Vec<Claim>> {
        let mut claims = Vec::new();
        if max == 0 {
            return Ok(claims);
        }
        for ticket in self.pending()? {
            let from = self.sub(PENDING).join(ticket.pending_name());
            let to = self.sub(CLAIMED).join(ticket.claimed_name(token));
            if !rename_if_present(&from, &to)? {
                continue;
            }
            let item = self.item(&ticket.id);
            let mut claim = Claim {
                ticket,
                token: token.to_owned(),
                counter: 0,
                item,
            };
            self.renew(&mut claim)?;
            claims.push(claim);
            if claims.len() == max {
                break;
            }
        }
        Ok(claims)
    }

    fn claimed_path(&self, claim: &Claim) -> PathBuf {
        self.sub(CLAIMED)
            .join(claim.ticket.claimed_name(&claim.token))
    }

    /// Renews a lease: writes the next counter into the claimed ticket, in place (the ticket
    /// is opened without creating it, so a ticket that was moved away is never brought back).
    /// `Ok(false)` when the ticket is gone: the claim was lost (the lease expired and another
    /// agent returned the item).
    pub fn renew(&self, claim: &mut Claim) -> Result<bool> {
        let path = self.claimed_path(claim);
        claim.counter += 1;
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&path, "renew lease", e)),
        };
        file.write_all_at(format!("{:020}\n", claim.counter).as_bytes(), 0)
            .map_err(|e| Error::io(&path, "renew lease", e))?;
        Ok(true)
    }

    /// Ends a claim in a final state: `claimed/<t>.<token>` -> `done/<id>.<attempt>.<state>`.
    /// `Ok(false)` when the claim had been lost.
    pub fn finish(&self, claim: &Claim, state: State) -> Result<bool> {
        let to = self.sub(DONE).join(claim.ticket.done_name(state));
        let moved = rename_if_present(&self.claimed_path(claim), &to)?;
        if moved {
            sync_dir(&self.sub(DONE))?;
            if state == State::Cancelled {
                let _ = fs::remove_file(self.sub(CANCEL).join(&claim.ticket.id));
            }
        }
        Ok(moved)
    }

    /// Gives a claimed item back unfinished (the agent is stopping): its ticket goes back to
    /// `pending/` in its old place, for the next attempt. Does not count as a lease expiry.
    pub fn release(&self, claim: &Claim) -> Result<bool> {
        let next = Ticket {
            attempt: claim.ticket.attempt + 1,
            ..claim.ticket.clone()
        };
        let to = self.sub(PENDING).join(next.pending_name());
        let moved = rename_if_present(&self.claimed_path(claim), &to)?;
        if moved {
            sync_dir(&self.sub(PENDING))?;
        }
        Ok(moved)
    }

    /// Whether `cancel` asked for item `id` to stop.
    pub fn cancel_requested(&self, id: &str) -> bool {
        self.sub(CANCEL).join(id).exists()
    }

    /// Looks at every claimed ticket not held by `own_token`; those whose lease `watch` finds
    /// expired go back to `pending/` (next attempt, one more expiry) or, past the item's
    /// `max_retries`, to `done/` as failed. Each return is one rename, so of several agents
    /// doing this at once exactly one returns a given ticket.
    pub fn reap(&self, watch: &mut LeaseWatch, own_token: &str) -> Result<Vec<Reaped>> {
        let names = list_names(&self.sub(CLAIMED))?;
        let mut reaped = Vec::new();
        for name in &names {
            let Some((ticket, token)) = Ticket::parse_claimed(name) else {
                continue;
            };
            if token == own_token {
                continue;
            }
            let path = self.sub(CLAIMED).join(name);
            let Some(content) = read_if_present(&path)? else {
                continue;
            };
            if !watch.observe(name, &content) {
                continue;
            }
            watch.forget(name);
            // A job that ended just before its agent died: record its end, do not run it again.
            let exit_file = crate::local::exit_path(&self.log_path(&ticket.id, ticket.attempt));
            if let Some(exit) = read_exit_file(&exit_file) {
                let outcome = exit.outcome();
                let state = if outcome.success() {
                    State::Finished
                } else {
                    State::Failed
                };
                let to = self.sub(DONE).join(ticket.done_name(state));
                if !rename_if_present(&path, &to)? {
                    continue;
                }
                let mut record = self.attempt_or_new(&ticket.id, ticket.attempt);
                record.state = Some(state);
                record.exit_code = exit.exit_code;
                record.signal = exit.signal;
                record.ended_at.get_or_insert_with(now_rfc3339);
                record.reason = Some(format!(
                    "agent {token} stopped renewing the lease after the job ended; its end was read from {}",
                    exit_file.display()
                ));
                self.write_attempt(&record)?;
                reaped.push(Reaped {
                    id: ticket.id,
                    attempt: ticket.attempt,
                    failed: state == State::Failed,
                });
                continue;
            }
            let max_retries = self
                .item(&ticket.id)
                .map_or(DEFAULT_MAX_RETRIES, |item| item.max_retries);
            let expiries = ticket.expiries + 1;
            let failed = expiries > max_retries;
            let to = if failed {
                self.sub(DONE).join(ticket.done_name(State::Failed))
            } else {
                let next = Ticket {
                    attempt: ticket.attempt + 1,
                    expiries,
                    ..ticket.clone()
                };
                self.sub(PENDING).join(next.pending_name())
            };
            if !rename_if_present(&path, &to)? {
                continue;
            }
            let mut record = self.attempt_or_new(&ticket.id, ticket.attempt);
            record.state = Some(if failed {
                State::Failed
            } else {
                State::Expired
            });
            record.ended_at.get_or_insert_with(now_rfc3339);
            record.reason = Some(format!(
                "lease expired: agent {token} stopped renewing it (expiry {expiries}, max_retries {max_retries}){}",
                if failed {
                    "; no retries left"
                } else {
                    "; back in the queue"
                }
            ));
            self.write_attempt(&record)?;
            reaped.push(Reaped {
                id: ticket.id,
                attempt: ticket.attempt,
                failed,
            });
        }
        watch.retain(&|name| names.iter().any(|n| n == name));
        Ok(reaped)
    }

    /// Where item `id`'s ticket is.
    pub fn locate(&self, id: &str) -> Result<Location> {
        if !valid_id(id) {
            return Err(Error::NoSuchItem {
                queue: self.name.clone(),
                item: id.to_owned(),
            });
        }
        for name in list_names(&self.sub(PENDING))? {
            if Ticket::parse_pending(&name).is_some_and(|t| t.id == id) {
                return Ok(Location::Pending(name));
            }
        }
        for name in list_names(&self.sub(CLAIMED))? {
            if Ticket::parse_claimed(&name).is_some_and(|(t, _)| t.id == id) {
                return Ok(Location::Claimed(name));
            }
        }
        let mut best: Option<(u32, String, State)> = None;
        for name in list_names(&self.sub(DONE))? {
            if let Some((done_id, attempt, state)) = parse_done(&name)
                && done_id == id
                && best.as_ref().is_none_or(|(a, _, _)| attempt >= *a)
            {
                best = Some((attempt, name, state));
            }
        }
        match best {
            Some((_, name, state)) => Ok(Location::Done(name, state)),
            None => Err(Error::NoSuchItem {
                queue: self.name.clone(),
                item: id.to_owned(),
            }),
        }
    }

    /// Cancels item `id`: a waiting item at once (one rename to `done/`), a claimed one by
    /// asking its agent (a marker in `cancel/`).
    pub fn cancel(&self, id: &str) -> Result<Cancelled> {
        for _ in 0..3 {
            match self.locate(id)? {
                Location::Pending(name) => {
                    let Some(ticket) = Ticket::parse_pending(&name) else {
                        break;
                    };
                    let from = self.sub(PENDING).join(&name);
                    let to = self.sub(DONE).join(ticket.done_name(State::Cancelled));
                    if rename_if_present(&from, &to)? {
                        sync_dir(&self.sub(DONE))?;
                        self.write_attempt(&Attempt {
                            item: id.to_owned(),
                            attempt: ticket.attempt,
                            state: Some(State::Cancelled),
                            ended_at: Some(now_rfc3339()),
                            reason: Some("cancelled before it ran".into()),
                            ..Attempt::default()
                        })?;
                        return Ok(Cancelled::Now);
                    }
                    // Claimed meanwhile: look again.
                }
                Location::Claimed(_) => {
                    let marker = self.sub(CANCEL).join(id);
                    fs::write(&marker, b"").map_err(|e| Error::io(&marker, "request cancel", e))?;
                    return Ok(Cancelled::Requested);
                }
                Location::Done(_, state) => {
                    return Err(Error::WrongState {
                        item: id.to_owned(),
                        action: "cancel",
                        state: state.name().to_owned(),
                    });
                }
            }
        }
        Err(Error::WrongState {
            item: id.to_owned(),
            action: "cancel",
            state: "changing (try again)".to_owned(),
        })
    }

    /// Puts an ended item (finished, failed, cancelled) back in the queue for a new attempt, at
    /// the back of its priority.
    pub fn requeue(&self, id: &str) -> Result<()> {
        match self.locate(id)? {
            Location::Done(name, _) => {
                let Some((_, attempt, _)) = parse_done(&name) else {
                    return Err(Error::NoSuchItem {
                        queue: self.name.clone(),
                        item: id.to_owned(),
                    });
                };
                let priority = self
                    .item(id)
                    .map_or(Priority::default(), |item| item.priority);
                let ticket = Ticket {
                    priority,
                    seq: next_seq(),
                    id: id.to_owned(),
                    attempt: attempt + 1,
                    expiries: 0,
                };
                let _ = fs::remove_file(self.sub(CANCEL).join(id));
                let from = self.sub(DONE).join(&name);
                let to = self.sub(PENDING).join(ticket.pending_name());
                if rename_if_present(&from, &to)? {
                    sync_dir(&self.sub(PENDING))?;
                    Ok(())
                } else {
                    Err(Error::WrongState {
                        item: id.to_owned(),
                        action: "requeue",
                        state: "changing (try again)".to_owned(),
                    })
                }
            }
            Location::Pending(_) => Err(Error::WrongState {
                item: id.to_owned(),
                action: "requeue",
                state: "pending".to_owned(),
            }),
            Location::Claimed(_) => Err(Error::WrongState {
                item: id.to_owned(),
                action: "requeue",
                state: "claimed (cancel it first)".to_owned(),
            }),
        }
    }

    /// The status of item `id`.
    pub fn status(&self, id: &str) -> Result<ItemStatus> {
        let location = self.locate(id)?;
        Ok(self.status_at(id, &location))
    }

    fn status_at(&self, id: &str, location: &Location) -> ItemStatus {
        let (state, attempt, expiries, priority) = match location {
            Location::Pending(name) => {
                let t = Ticket::parse_pending(name);
                (
                    State::Pending,
                    t.as_ref().map_or(0, |t| t.attempt),
                    t.as_ref().map_or(0, |t| t.expiries),
                    t.map(|t| t.priority),
                )
            }
            Location::Claimed(name) => {
                let t = Ticket::parse_claimed(name).map(|(t, _)| t);
                (
                    State::Claimed,
                    t.as_ref().map_or(0, |t| t.attempt),
                    t.as_ref().map_or(0, |t| t.expiries),
                    t.map(|t| t.priority),
                )
            }
            Location::Done(name, state) => {
                let attempt = parse_done(name).map_or(0, |(_, a, _)| a);
                (*state, attempt, 0, None)
            }
        };
        let (item, problem) = match self.item(id) {
            Ok(item) => (Some(item), None),
            Err(e) => (None, Some(e.to_string())),
        };
        // A pending item after an earlier attempt shows that attempt's record.
        let record = self.attempt(id, attempt).ok().flatten().or_else(|| {
            attempt
                .checked_sub(1)
                .and_then(|a| self.attempt(id, a).ok().flatten())
        });
        // An attempt recorded without its run folder (ended by a reaper): look for it now.
        let record = record.map(|mut record| {
            if record.run_dirs.is_empty()
                && let Some(item) = &item
                && record.state.is_some_and(State::is_final)
            {
                let agent_dir = std::env::var_os("WANDB_DIR").map(PathBuf::from);
                let dir = crate::env::job_wandb_dir(item, agent_dir.as_deref());
                record.run_dirs = crate::runlink::find_run_dirs(&dir, &item.run_id);
            }
            record
        });
        let state = match (state, record.as_ref().and_then(|r| r.state)) {
            (State::Claimed, Some(State::Running)) => State::Running,
            (state, _) => state,
        };
        ItemStatus {
            id: id.to_owned(),
            state,
            priority: priority.or(item.as_ref().map(|i| i.priority)),
            attempt,
            expiries,
            item,
            problem,
            record,
        }
    }

    /// Every item with a ticket: waiting ones in queue order, then claimed, then ended ones
    /// (oldest first).
    pub fn list(&self) -> Result<Vec<ItemStatus>> {
        let mut out = Vec::new();
        for ticket in self.pending()? {
            let name = ticket.pending_name();
            out.push(self.status_at(&ticket.id, &Location::Pending(name)));
        }
        let mut claimed: Vec<(Ticket, String)> = list_names(&self.sub(CLAIMED))?
            .into_iter()
            .filter_map(|name| Ticket::parse_claimed(&name).map(|(t, _)| (t, name)))
            .collect();
        claimed.sort_by_key(|(t, _)| (t.priority, t.seq));
        for (ticket, name) in claimed {
            out.push(self.status_at(&ticket.id, &Location::Claimed(name)));
        }
        let mut done: Vec<ItemStatus> = Vec::new();
        let mut names: Vec<(String, u32, State, String)> = list_names(&self.sub(DONE))?
            .into_iter()
            .filter_map(|name| parse_done(&name).map(|(id, a, s)| (id, a, s, name)))
            .collect();
        // One line per item: its latest attempt.
        names.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        names.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        for (id, _, state, name) in names {
            done.push(self.status_at(&id, &Location::Done(name, state)));
        }
        done.sort_by(|a, b| {
            let created = |s: &ItemStatus| s.item.as_ref().map(|i| i.created.clone());
            created(a).cmp(&created(b)).then_with(|| a.id.cmp(&b.id))
        });
        out.extend(done);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_names_round_trip() {
        let t = Ticket {
            priority: Priority::High,
            seq: 1_700_000_000_000_000,
            id: "abc123".into(),
            attempt: 2,
            expiries: 1,
        };
        assert_eq!(Ticket::parse_pending(&t.pending_name()), Some(t.clone()));
        assert_eq!(
            Ticket::parse_claimed(&t.claimed_name("tok9")),
            Some((t.clone(), "tok9".to_owned()))
        );
        assert_eq!(
            parse_done(&t.done_name(State::Failed)),
            Some(("abc123".to_owned(), 2, State::Failed))
        );
        assert_eq!(Ticket::parse_pending("2-xyz-abc.0.0"), None);
        assert_eq!(
            Ticket::parse_pending("9-00000000000000000001-abc.0.0"),
            None
        );
        assert_eq!(
            Ticket::parse_pending("2-00000000000000000001-a/b.0.0"),
            None
        );
    }
}
