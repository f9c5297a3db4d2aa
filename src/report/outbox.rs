//! Events on their way to the API server: a bounded queue in write order in which a count
//! update folds into the pending write of the same Event (the latest count wins, nothing is
//! lost to a full channel), mirrored to a spool file in the state directory.
//!
//! The spool makes log findings survive a crash (at-least-once): a log monitor moves its
//! position past a line only once [`Outbox::ack_when_durable`] confirms that what the line
//! produced is in the spool (or delivered). The spool is written by its own thread (a hung
//! state directory never stops the agent's runtime), atomically (temporary file and rename;
//! no fsync: it survives the agent being killed, not the node losing power), and read back
//! at start: the Events pending when the agent died are written then. Their names are kept,
//! so one that did reach the API server before the crash is found (409) and only has its
//! count brought up to date, never duplicated.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use probes::findings::Ack;

use crate::state::EventOut;

/// One pending Event write.
#[derive(Debug, Clone)]
struct Pending {
    ev: EventOut,
    /// Bumped when a count update folds in: a write of an older version does not finish it.
    version: u64,
    attempts: u32,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<String>,
    pending: HashMap<String, Pending>,
    /// Bumped on every change.
    generation: u64,
    /// The generation the spool holds.
    persisted: u64,
    /// Confirmations waiting for the spool to reach a generation.
    acks: Vec<(u64, Ack)>,
    stop: bool,
}

/// What [`Outbox::front`] hands the writer.
#[derive(Debug, Clone)]
pub struct Next {
    pub ev: EventOut,
    pub version: u64,
    pub attempts: u32,
}

/// Counters of the spool, for metrics and `/healthz`.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Failed spool writes.
    pub errors: AtomicU64,
    /// Since when (ms on `probes::logs::monotonic_ms`) a write is under way; 0: none.
    writing_since_ms: AtomicU64,
}

impl SpoolStats {
    /// How long the spool write under way has taken.
    pub fn writing_for(&self) -> Option<std::time::Duration> {
        match self.writing_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(std::time::Duration::from_millis(
                probes::logs::monotonic_ms().saturating_sub(since),
            )),
        }
    }
}

/// The queue of Event writes (see the module documentation).
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    /// Wakes the spool thread.
    changed: Condvar,
    /// Wakes the event writer.
    ready: tokio::sync::Notify,
    /// Wakes [`Outbox::drained`].
    emptied: tokio::sync::Notify,
    max: usize,
    spool: Option<PathBuf>,
    pub spool_stats: SpoolStats,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Outbox {
    /// A queue of at most `max` Events, spooled to `spool` when given (then loaded from it
    /// and kept by a thread of its own until [`Outbox::close`]).
    pub fn new(max: usize, spool: Option<PathBuf>) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            ready: tokio::sync::Notify::new(),
            emptied: tokio::sync::Notify::new(),
            max,
            spool,
            spool_stats: SpoolStats::default(),
        });
        if let Some(path) = outbox.spool.clone() {
            let restored = read_spool(&path);
            if !restored.is_empty() {
                tracing::info!(events = restored.len(), spool = %path.display(),
                    "writing the events a previous run had not delivered");
            }
            for ev in restored {
                outbox.push(ev);
            }
            let o = Arc::clone(&outbox);
            let started = std::thread::Builder::new()
                .name("event-spool".into())
                .spawn(move || o.keep_spool(&path));
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start the event spool thread; events are not spooled");
            }
        }
        outbox
    }

    /// Queue an Event write, folding a count update into a pending write of the same Event.
    /// Returns the write dropped to make room (the oldest), if any.
    pub fn push(&self, ev: EventOut) -> Option<EventOut> {
        let mut g = lock(&self.inner);
        g.generation += 1;
        let dropped = if let Some(p) = g.pending.get_mut(&ev.name) {
            // keep "create" if the create has not gone out yet
            let update = p.ev.update && ev.update;
            p.ev = EventOut { update, ..ev };
            p.version += 1;
            None
        } else {
            let mut dropped = None;
            if g.queue.len() >= self.max {
                if let Some(old) = g.queue.pop_front() {
                    dropped = g.pending.remove(&old).map(|p| p.ev);
                }
            }
            g.queue.push_back(ev.name.clone());
            g.pending.insert(
                ev.name.clone(),
                Pending {
                    ev,
                    version: 0,
                    attempts: 0,
                },
            );
            dropped
        };
        drop(g);
        self.changed.notify_all();
        self.ready.notify_one();
        dropped
    }

    /// The oldest pending write.
    pub fn front(&self) -> Option<Next> {
        let g = lock(&self.inner);
        let name = g.queue.front()?;
        g.pending.get(name).map(|p| Next {
            ev: p.ev.clone(),
            version: p.version,
            attempts: p.attempts,
        })
    }

    /// Wait until something is queued.
    pub async fn wait(&self) {
        loop {
            let notified = self.ready.notified();
            if !lock(&self.inner).queue.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Wait until nothing is queued.
    pub async fn drained(&self) {
        loop {
            let notified = self.emptied.notified();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn after_change(&self, g: MutexGuard<'_, Inner>) {
        let empty = g.queue.is_empty();
        drop(g);
        self.changed.notify_all();
        if empty {
            self.emptied.notify_waiters();
        }
    }

    /// The write of `next` went through: done, unless a count update folded in meanwhile
    /// (then that update is still to be written, as a patch).
    pub fn written(&self, next: &Next) {
        let mut g = lock(&self.inner);
        let name = &next.ev.name;
        match g.pending.get_mut(name) {
            Some(p) if p.version == next.version => {
                g.pending.remove(name);
                g.queue.retain(|n| n != name);
            }
            Some(p) => {
                p.ev.update = true;
                p.attempts = 0;
            }
            None => {}
        }
        g.generation += 1;
        self.after_change(g);
    }

    /// The write of `next` failed: count the attempt; `give_up` drops it.
    pub fn failed(&self, next: &Next, give_up: bool) {
        let mut g = lock(&self.inner);
        let name = &next.ev.name;
        if give_up {
            g.pending.remove(name);
            g.queue.retain(|n| n != name);
            g.generation += 1;
            self.after_change(g);
        } else if let Some(p) = g.pending.get_mut(name) {
            p.attempts += 1;
        }
    }

    /// Writes pending.
    pub fn len(&self) -> usize {
        lock(&self.inner).queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether pending writes survive the agent (a spool is kept).
    pub fn spooled(&self) -> bool {
        self.spool.is_some()
    }

    /// Confirm `ack` once everything queued so far is in the spool (at once without one).
    pub fn ack_when_durable(&self, ack: Ack) {
        let mut g = lock(&self.inner);
        if self.spool.is_none() || g.persisted >= g.generation || g.stop {
            drop(g);
            ack.done();
            return;
        }
        let generation = g.generation;
        g.acks.push((generation, ack));
    }

    /// Stop the spool thread after its last write (pending writes stay in the spool).
    pub fn close(&self) {
        lock(&self.inner).stop = true;
        self.changed.notify_all();
    }

    /// The spool thread: write the queue whenever it changed, then confirm the waiting acks.
    fn keep_spool(&self, path: &Path) {
        let mut warned = false;
        loop {
            let (generation, events) = {
                let mut g = lock(&self.inner);
                while g.persisted == g.generation && !g.stop {
                    g = self.changed.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                if g.persisted == g.generation && g.stop {
                    return;
                }
                let events: Vec<&EventOut> = g
                    .queue
                    .iter()
                    .filter_map(|n| g.pending.get(n).map(|p| &p.ev))
                    .collect();
                (g.generation, serde_json::to_vec(&events))
            };
            self.spool_stats
                .writing_since_ms
                .store(probes::logs::monotonic_ms(), Ordering::Relaxed);
            let written = events
                .map_err(std::io::Error::other)
                .and_then(|bytes| write_atomically(path, &bytes));
            self.spool_stats
                .writing_since_ms
                .store(0, Ordering::Relaxed);
            if let Err(e) = written {
                // Not durable, but not lost either while the agent runs: go on (counted).
                self.spool_stats.errors.fetch_add(1, Ordering::Relaxed);
                if !warned {
                    warned = true;
                    tracing::warn!(spool = %path.display(), error = %e,
                        "cannot write the event spool; undelivered events would not survive a restart (logged once)");
                }
            }
            let done: Vec<Ack> = {
                let mut g = lock(&self.inner);
                g.persisted = generation;
                let (done, wait) = std::mem::take(&mut g.acks)
                    .into_iter()
                    .partition(|(gen, _)| *gen <= generation);
                g.acks = wait;
                done.into_iter().map(|(_, a)| a).collect()
            };
            for a in done {
                a.done();
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The spooled events; none when there is no spool or it cannot be read (logged).
fn read_spool(path: &Path) -> Vec<EventOut> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(spool = %path.display(), error = %e, "ignoring a corrupt event spool");
            Vec::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!(spool = %path.display(), error = %e, "cannot read the event spool");
            Vec::new()
        }
    }
}

/// File name of the spool in the state directory.
pub const SPOOL_FILE: &str = "events-spool.json";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EventType;
    use std::time::{Duration, SystemTime};

    fn ev(name: &str, count: u32, update: bool) -> EventOut {
        EventOut {
            name: name.into(),
            update,
            type_: EventType::Warning,
            source: "kernel-monitor".into(),
            reason: "TaskHung".into(),
            message: format!("message of {name}"),
            count,
            first: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
            last: SystemTime::UNIX_EPOCH + Duration::from_secs(2),
            oom: None,
        }
    }

    #[test]
    fn updates_fold_and_the_oldest_create_makes_room() {
        let o = Outbox::new(2, None);
        assert!(o.push(ev("a", 1, false)).is_none());
        assert!(o.push(ev("a", 5, true)).is_none());
        let n = o.front().unwrap();
        assert_eq!(
            (n.ev.count, n.ev.update),
            (5, false),
            "still a create, with the newest count"
        );
        assert!(o.push(ev("b", 1, false)).is_none());
        assert_eq!(o.push(ev("c", 1, false)).unwrap().name, "a");
        assert_eq!(o.len(), 2);
    }

    #[test]
    fn a_count_update_during_a_write_is_written_after_it() {
        let o = Outbox::new(10, None);
        o.push(ev("a", 1, false));
        let n = o.front().unwrap();
        o.push(ev("a", 2, true)); // while the create is on its way
        o.written(&n);
        let again = o.front().unwrap();
        assert_eq!((again.ev.count, again.ev.update), (2, true));
        o.written(&again);
        assert!(o.is_empty());
    }

    #[tokio::test]
    async fn drained_returns_once_the_last_write_went_through() {
        let o = Outbox::new(10, None);
        o.drained().await; // empty: at once
        o.push(ev("a", 1, false));
        let writer = {
            let o = Arc::clone(&o);
            tokio::spawn(async move {
                o.wait().await;
                let n = o.front().unwrap();
                o.written(&n);
            })
        };
        o.drained().await;
        assert!(o.is_empty());
        writer.await.unwrap();
    }

    #[test]
    fn the_spool_survives_and_acks_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(SPOOL_FILE);
        let o = Outbox::new(10, Some(path.clone()));
        o.push(ev("a", 1, false));
        o.push(ev("b", 3, true));
        let (ack, wait) = Ack::new();
        o.ack_when_durable(ack);
        assert_eq!(wait.wait(Duration::from_secs(10)), Some(true));
        // the spool holds both, in order: a new outbox (the next run) starts with them
        o.close();
        let next = Outbox::new(10, Some(path.clone()));
        let first = next.front().unwrap();
        assert_eq!((first.ev.name.as_str(), first.ev.update), ("a", false));
        next.written(&first);
        assert_eq!(next.front().unwrap().ev.count, 3);
        // delivered ones leave the spool
        let n = next.front().unwrap();
        next.written(&n);
        let (ack, wait) = Ack::new();
        next.ack_when_durable(ack);
        assert_eq!(wait.wait(Duration::from_secs(10)), Some(true));
        next.close();
        assert!(Outbox::new(10, Some(path)).is_empty());
    }

    #[test]
    fn an_unwritable_spool_is_counted_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let o = Outbox::new(10, Some(file.join("sub").join(SPOOL_FILE)));
        o.push(ev("a", 1, false));
        let (ack, wait) = Ack::new();
        o.ack_when_durable(ack);
        assert_eq!(wait.wait(Duration::from_secs(10)), Some(true));
        assert_eq!(o.spool_stats.errors.load(Ordering::Relaxed), 1);
        o.close();
    }
}
