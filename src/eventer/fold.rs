//! Dedup and aggregation for chat sinks (pure; time is passed in).
//!
//! Repeats of one (involved object, reason, message) within the window are folded: the
//! first occurrence goes out at once, later ones (a `count++` update of the same Event or a
//! new Event with the same key) are counted and sent as one follow-up ("×12 in 10m") when
//! the window ends. A Normal Event on an object with folded Warnings is a recovery: pending
//! follow-ups of that object go out first, then the recovery itself, never folded; and the
//! object's fold state is cleared, so the next problem alerts at once again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::{object_name, occurrences};
use super::Item;

/// What a chat sink sends.
#[derive(Debug, Clone)]
pub enum Message {
    /// One Event.
    Event(Arc<Item>),
    /// `times` more occurrences of the latest Event's key within `window`.
    Repeat {
        item: Arc<Item>,
        times: u64,
        window: Duration,
    },
    /// Messages the quota did not allow, folded into one (DingTalk).
    Summary(super::quota::Summary),
}

impl Message {
    /// The Event this message is about (for latency and templates).
    pub fn item(&self) -> Option<&Arc<Item>> {
        match self {
            Message::Event(i) | Message::Repeat { item: i, .. } => Some(i),
            Message::Summary(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    object: String,
    reason: String,
    message: String,
}

#[derive(Debug)]
struct Entry {
    start: Instant,
    warning: bool,
    pending: u64,
    latest: Arc<Item>,
    /// (uid, count) of the latest Event seen, to count `count++` deltas.
    last_uid: String,
    last_count: i32,
}

/// The fold state of one sink.
#[derive(Debug)]
pub struct Fold {
    window: Duration,
    max_entries: usize,
    entries: HashMap<Key, Entry>,
}

fn key(item: &Item) -> Key {
    let e = &item.event;
    Key {
        object: object_name(e),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
    }
}

impl Fold {
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Fold {
            window,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn flush(e: &mut Entry, now: Instant, out: &mut Vec<Message>) {
        if e.pending > 0 {
            out.push(Message::Repeat {
                item: e.latest.clone(),
                times: e.pending,
                window: now.saturating_duration_since(e.start),
            });
            e.pending = 0;
        }
    }

    /// A Normal Event on `object`: flush and clear the object's Warning entries. Returns
    /// whether there were any (the Event is then a recovery). Called for every Normal
    /// Event, before the sink's filters, so a filtered-out recovery still resets folding.
    pub fn recovery(&mut self, item: &Item, now: Instant, out: &mut Vec<Message>) -> bool {
        let object = object_name(&item.event);
        let keys: Vec<Key> = self
            .entries
            .iter()
            .filter(|(k, e)| e.warning && k.object == object)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            if let Some(mut e) = self.entries.remove(k) {
                Self::flush(&mut e, now, out);
            }
        }
        !keys.is_empty()
    }

    /// One Event that passed the filters: what to send now.
    pub fn offer(&mut self, item: Arc<Item>, now: Instant, out: &mut Vec<Message>) {
        let warning = item.event.type_.as_deref() == Some("Warning");
        if !warning && self.recovery(&item, now, out) {
            out.push(Message::Event(item));
            return;
        }
        let k = key(&item);
        let uid = item.event.metadata.uid.clone().unwrap_or_default();
        let count = occurrences(&item.event);
        if let Some(e) = self.entries.get_mut(&k) {
            if now.saturating_duration_since(e.start) < self.window {
                let delta = if e.last_uid == uid {
                    u64::try_from(count - e.last_count).unwrap_or(0)
                } else {
                    u64::try_from(count).unwrap_or(1).max(1)
                };
                if count >= e.last_count || e.last_uid != uid {
                    e.last_uid = uid;
                    e.last_count = count;
                }
                if delta > 0 {
                    e.pending += delta;
                    // Counted into a follow-up: its delivery progress ends here (a
                    // restart loses a pending follow-up, never re-sends the Event).
                    e.latest = Arc::new(item.detached());
                }
                return;
            }
            Self::flush(e, now, out);
            self.entries.remove(&k);
        }
        if self.entries.len() >= self.max_entries {
            self.evict(now, out);
        }
        self.entries.insert(
            k,
            Entry {
                start: now,
                warning,
                pending: 0,
                latest: Arc::new(item.detached()),
                last_uid: uid,
                last_count: count,
            },
        );
        out.push(Message::Event(item));
    }

    /// Windows that ended: follow-ups for their repeats. Entries with repeats start a new
    /// window (a steady stream gives one follow-up per window); quiet ones are forgotten.
    pub fn due(&mut self, now: Instant, out: &mut Vec<Message>) {
        let window = self.window;
        self.entries.retain(|_, e| {
            if now.saturating_duration_since(e.start) < window {
                return true;
            }
            if e.pending == 0 {
                return false;
            }
            Self::flush(e, now, out);
            e.start = now;
            true
        });
    }

    /// When the next window ends, if any entry has repeats waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.pending > 0)
            .map(|e| e.start + self.window)
            .min()
    }

    /// Make room: flush and drop the oldest entry.
    fn evict(&mut self, now: Instant, out: &mut Vec<Message>) {
        if let Some(k) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.start)
            .map(|(k, _)| k.clone())
        {
            if let Some(mut e) = self.entries.remove(&k) {
                Self::flush(&mut e, now, out);
            }
        }
    }
}

/// "10m", "45s", "1h5m": a short human form of a window.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs().max(1);
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 && h == 0 {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Event;

    fn item(uid: &str, type_: &str, reason: &str, count: i32) -> Arc<Item> {
        let mut e = Event::default();
        e.metadata.uid = Some(uid.into());
        e.type_ = Some(type_.into());
        e.reason = Some(reason.into());
        e.message = Some("m".into());
        e.count = Some(count);
        e.involved_object.kind = Some("Node".into());
        e.involved_object.name = Some("n1".into());
        Arc::new(Item::new(e))
    }

    fn kinds(v: &[Message]) -> Vec<String> {
        v.iter()
            .map(|m| match m {
                Message::Event(i) => format!("E:{}", i.event.reason.as_deref().unwrap_or("")),
                Message::Repeat { times, .. } => format!("R:{times}"),
                Message::Summary(_) => "S".into(),
            })
            .collect()
    }

    #[test]
    fn count_updates_fold_into_one_follow_up() {
        let t0 = Instant::now();
        let w = Duration::from_secs(600);
        let mut f = Fold::new(w, 100);
        let mut out = Vec::new();
        f.offer(item("u1", "Warning", "OOMKilling", 1), t0, &mut out);
        assert_eq!(kinds(&out), ["E:OOMKilling"]);
        out.clear();
        for c in 2..=12 {
            f.offer(
                item("u1", "Warning", "OOMKilling", c),
                t0 + Duration::from_secs(c as u64),
                &mut out,
            );
        }
        // a MODIFIED without a new occurrence is no repeat
        f.offer(
            item("u1", "Warning", "OOMKilling", 12),
            t0 + Duration::from_secs(20),
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(f.next_deadline(), Some(t0 + w));
        f.due(t0 + Duration::from_secs(599), &mut out);
        assert!(out.is_empty());
        f.due(t0 + w, &mut out);
        assert_eq!(kinds(&out), ["R:11"]);
        out.clear();
        // the next window: quiet, so the entry is forgotten and the next one alerts at once
        f.due(t0 + 2 * w, &mut out);
        assert!(out.is_empty() && f.is_empty());
        f.offer(
            item("u1", "Warning", "OOMKilling", 13),
            t0 + 2 * w,
            &mut out,
        );
        assert_eq!(kinds(&out), ["E:OOMKilling"]);
    }

    #[test]
    fn recoveries_are_never_suppressed() {
        let t0 = Instant::now();
        let mut f = Fold::new(Duration::from_secs(600), 100);
        let mut out = Vec::new();
        f.offer(
            item("u1", "Warning", "NodeHasInodesPressure", 1),
            t0,
            &mut out,
        );
        f.offer(
            item("u1", "Warning", "NodeHasInodesPressure", 3),
            t0,
            &mut out,
        );
        f.offer(
            item("u2", "Normal", "NodeHasNoInodesPressure", 1),
            t0,
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            [
                "E:NodeHasInodesPressure",
                "R:2",
                "E:NodeHasNoInodesPressure"
            ]
        );
        out.clear();
        // the problem again, within the old window: alerts at once
        f.offer(
            item("u3", "Warning", "NodeHasInodesPressure", 1),
            t0,
            &mut out,
        );
        assert_eq!(kinds(&out), ["E:NodeHasInodesPressure"]);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut f = Fold::new(Duration::from_secs(600), 3);
        let mut out = Vec::new();
        for i in 0..10 {
            f.offer(
                item(&format!("u{i}"), "Warning", &format!("R{i}"), 1),
                t0 + Duration::from_millis(i),
                &mut out,
            );
        }
        assert_eq!(f.len(), 3);
        assert_eq!(out.len(), 10);
        assert_eq!(short_duration(Duration::from_secs(600)), "10m");
        assert_eq!(short_duration(Duration::from_secs(3725)), "1h2m");
    }
}
