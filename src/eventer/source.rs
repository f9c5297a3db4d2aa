//! The source: every core/v1 Event in the cluster through kube's `runtime::watcher` (list,
//! then watch with bookmarks; a 410 Gone or a broken watch re-lists or resumes, with
//! client-go's backoff).
//!
//! What was handed to the sinks is remembered by (uid, count) in [`Delivered`], so a
//! re-list never sends an Event twice, while Events the API still holds that arrived during
//! a gap — new uids, or higher counts — are delivered. The first list delivers only Events
//! that happened at or after `since` (default: the start of the process, as kube-eventer,
//! which delivers nothing old). Issue 11 persists `since` and the delivered set (a
//! checkpoint of how far delivery got) to deliver across restarts: both are plain data here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;

use super::event::{filter_namespace, last_seen, occurrences};
use super::metrics::EventerMetrics;
use super::progress::{rv_number, Progress, Record};
use super::Item;

/// Entries kept at most (a cluster holds far fewer Events: they expire after an hour).
pub const MAX_DELIVERED: usize = 500_000;

/// The Events already forwarded: uid → count, with the generation of the list that last saw
/// it (a complete re-list forgets Events the API no longer holds).
#[derive(Debug, Default)]
pub struct Delivered {
    map: HashMap<u64, (i32, u32)>,
    generation: u32,
    full_warned: bool,
}

/// What to do with one Event from the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// Already delivered with this count.
    Seen,
    /// Happened before `since` (first list only): remembered, not delivered.
    Old,
}

fn uid_key(uid: &str) -> u64 {
    // FNV-1a: stable, cheap; 64 bits make a collision among a cluster's Events negligible.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in uid.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl Delivered {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A new complete list starts.
    pub fn begin_list(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// The list ended: forget Events it did not contain (deleted while we were away).
    pub fn end_list(&mut self) {
        let g = self.generation;
        self.map.retain(|_, (_, seen)| *seen == g);
    }

    /// Decide for one Event. `since`: on the first list, Events older than it are
    /// remembered without being delivered.
    pub fn judge(&mut self, ev: &Event, since: Option<Timestamp>) -> Verdict {
        let uid = ev.metadata.uid.as_deref().unwrap_or("");
        let key = uid_key(uid);
        let count = occurrences(ev);
        let g = self.generation;
        if let Some((c, seen)) = self.map.get_mut(&key) {
            *seen = g;
            if count <= *c {
                return Verdict::Seen;
            }
            *c = count;
            return Verdict::Deliver;
        }
        if self.map.len() >= MAX_DELIVERED {
            if !self.full_warned {
                tracing::warn!(
                    "more than {MAX_DELIVERED} Events remembered; re-lists may re-send some"
                );
                self.full_warned = true;
            }
        } else {
            self.map.insert(key, (count, g));
        }
        match (since, last_seen(ev)) {
            (Some(s), Some(t)) if t < s => Verdict::Old,
            _ => Verdict::Deliver,
        }
    }

    pub fn forget(&mut self, ev: &Event) {
        self.map
            .remove(&uid_key(ev.metadata.uid.as_deref().unwrap_or("")));
    }
}

/// Watch settings.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// The first list delivers Events from this time on.
    pub since: Option<Timestamp>,
    /// Server-side watch timeout (seconds): a healthy watch is renewed this often.
    pub watch_timeout: u32,
    /// A stored progress record: the first list delivers every Event change it does not
    /// cover (instead of applying `since`).
    pub resume: Option<Record>,
    /// Where delivery progress is tracked (tokens travel with the Events).
    pub progress: Option<Arc<Progress>>,
}

/// Run until `shutdown`: every Event to deliver goes to `out`.
pub async fn run(
    client: Client,
    settings: SourceSettings,
    metrics: Arc<EventerMetrics>,
    mut out: impl FnMut(Arc<Item>),
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Event> = Api::all(client);
    let config = watcher::Config::default().timeout(settings.watch_timeout);
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut delivered = Delivered::default();
    let mut first_list = true;
    let mut in_list = false;
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = shutdown.changed() => return,
        };
        let Some(next) = next else { return };
        match next {
            Err(e) => {
                metrics.watch_error();
                tracing::warn!("event watch: {e}");
            }
            Ok(ev) => {
                metrics.watch_ok();
                match ev {
                    WatchEvent::Init => {
                        in_list = true;
                        delivered.begin_list();
                    }
                    WatchEvent::InitApply(e) => {
                        let (since, resume) = match (first_list, &settings.resume) {
                            (true, Some(r)) => (None, Some(r)),
                            (true, None) => (settings.since, None),
                            _ => (None, None),
                        };
                        let cx = Cx {
                            since,
                            resume,
                            progress: settings.progress.as_ref(),
                        };
                        consider(e, &mut delivered, cx, &metrics, &mut out);
                    }
                    WatchEvent::InitDone => {
                        in_list = false;
                        delivered.end_list();
                        metrics.relists.inc();
                        if first_list {
                            tracing::info!("listed {} events; watching", delivered.len());
                        } else {
                            tracing::info!("re-listed {} events", delivered.len());
                        }
                        first_list = false;
                        metrics.ready.store(true, Ordering::Relaxed);
                    }
                    WatchEvent::Apply(e) => {
                        let cx = Cx {
                            since: None,
                            resume: None,
                            progress: settings.progress.as_ref(),
                        };
                        consider(e, &mut delivered, cx, &metrics, &mut out)
                    }
                    WatchEvent::Delete(e) => delivered.forget(&e),
                }
                metrics
                    .delivered_set
                    .store(delivered.len() as u64, Ordering::Relaxed);
            }
        }
        let _ = in_list;
    }
}

/// How to judge one Event.
struct Cx<'a> {
    since: Option<Timestamp>,
    resume: Option<&'a Record>,
    progress: Option<&'a Arc<Progress>>,
}

fn consider(
    mut ev: Event,
    delivered: &mut Delivered,
    cx: Cx<'_>,
    metrics: &EventerMetrics,
    out: &mut impl FnMut(Arc<Item>),
) {
    let received = Instant::now();
    // managedFields are most of an Event's size and no sink shows them: not kept in queues.
    ev.metadata.managed_fields = None;
    metrics.event_seen(
        ev.type_.as_deref().unwrap_or(""),
        ev.reason.as_deref().unwrap_or(""),
        filter_namespace(&ev),
        ev.involved_object.kind.as_deref().unwrap_or(""),
    );
    let rv = rv_number(ev.metadata.resource_version.as_deref());
    let mut verdict = delivered.judge(&ev, cx.since);
    if let (Some(r), Some(rv), Verdict::Deliver) = (cx.resume, rv, verdict) {
        if r.covers(rv) {
            // Delivered before the restart (the record says so).
            verdict = Verdict::Seen;
        }
    }
    match (verdict, cx.progress, rv) {
        (Verdict::Deliver, Some(p), Some(rv)) => {
            let token = Some(Arc::new(p.hand(rv)));
            return out(Arc::new(Item {
                event: ev,
                received,
                token,
            }));
        }
        (_, Some(p), Some(rv)) => p.seen(rv),
        _ => {}
    }
    match verdict {
        Verdict::Deliver => out(Arc::new(Item {
            event: ev,
            received,
            token: None,
        })),
        Verdict::Seen => metrics.skipped("delivered"),
        Verdict::Old => metrics.skipped("before_start"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(uid: &str, count: i32, at: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": uid, "name": uid, "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "n"},
            "count": count, "lastTimestamp": at
        }))
        .unwrap()
    }

    #[test]
    fn relists_never_resend_and_gaps_are_delivered() {
        let since: Timestamp = "2026-11-30T08:00:00Z".parse().unwrap();
        let mut d = Delivered::default();
        d.begin_list();
        assert_eq!(
            d.judge(&ev("old", 1, "2026-11-30T07:00:00Z"), Some(since)),
            Verdict::Old
        );
        assert_eq!(
            d.judge(&ev("new", 1, "2026-11-30T08:00:01Z"), Some(since)),
            Verdict::Deliver
        );
        d.end_list();
        // watch: a count++ of an old Event is news; a MODIFIED without a new count is not
        assert_eq!(
            d.judge(&ev("old", 2, "2026-11-30T08:01:00Z"), None),
            Verdict::Deliver
        );
        assert_eq!(
            d.judge(&ev("old", 2, "2026-11-30T08:01:00Z"), None),
            Verdict::Seen
        );
        // re-list after a gap: what we had is not re-sent; what came meanwhile is
        d.begin_list();
        assert_eq!(
            d.judge(&ev("old", 2, "2026-11-30T08:01:00Z"), None),
            Verdict::Seen
        );
        assert_eq!(
            d.judge(&ev("new", 3, "2026-11-30T08:02:00Z"), None),
            Verdict::Deliver
        );
        assert_eq!(
            d.judge(&ev("gap", 1, "2026-11-30T08:02:00Z"), None),
            Verdict::Deliver
        );
        d.end_list();
        assert_eq!(d.len(), 3);
        // an Event deleted from the API is forgotten at the next complete list
        d.begin_list();
        d.judge(&ev("gap", 1, "2026-11-30T08:02:00Z"), None);
        d.end_list();
        assert_eq!(d.len(), 1);
    }
}
