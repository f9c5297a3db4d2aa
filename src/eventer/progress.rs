//! How far delivery got, so a restarted (or newly elected) eventer delivers what happened
//! while none was running and re-sends nothing already delivered.
//!
//! Every change of an Event gets a new `resourceVersion` from etcd and the watch delivers
//! them in that order. The record is a watermark `resourceVersion` W — every Event change
//! at or below W was delivered by every sink (or dropped there, counted), or needed no
//! delivery — plus the changes above W already delivered while older ones were still in
//! flight (at most [`MAX_DONE`]; beyond that they may be sent again: the in-flight window).
//!
//! An Event handed to the sinks carries a [`Token`]; when the last sink is done with it
//! (its last `Arc<Item>` is dropped) the token reports its change as done. Pure data apart
//! from the mutex; the Lease loop (`super::lease`) stores the record in an annotation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Changes above the watermark remembered as delivered (older in-flight ones hold it back).
pub const MAX_DONE: usize = 2000;

/// The persisted record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Every Event change with a resourceVersion at or below this is done.
    pub resource_version: u64,
    /// Changes above it that are done too (sorted).
    pub done: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("progress record {0:?}: not a record of this eventer")]
pub struct RecordError(String);

impl Record {
    /// Whether the Event change `rv` needs no delivery.
    pub fn covers(&self, rv: u64) -> bool {
        rv <= self.resource_version || self.done.binary_search(&rv).is_ok()
    }

    /// `{"resourceVersion":"123","done":["125","130"]}` (strings, as Kubernetes writes
    /// resourceVersions).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "resourceVersion": self.resource_version.to_string(),
            "done": self.done.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        })
        .to_string()
    }

    pub fn parse(s: &str) -> Result<Record, RecordError> {
        let bad = || RecordError(s.chars().take(80).collect());
        let v: serde_json::Value = serde_json::from_str(s).map_err(|_| bad())?;
        let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        let resource_version = num(&v["resourceVersion"]).ok_or_else(bad)?;
        let mut done = match v.get("done") {
            None => Vec::new(),
            Some(d) => d
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| num(x).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?,
        };
        done.retain(|r| *r > resource_version);
        done.sort_unstable();
        done.dedup();
        done.truncate(MAX_DONE);
        Ok(Record {
            resource_version,
            done,
        })
    }
}

/// A resourceVersion as a number (etcd's revisions; anything else has no progress).
pub fn rv_number(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|r| r.parse().ok()).filter(|r| *r > 0)
}

#[derive(Debug, Default)]
struct State {
    /// Handed out and not done yet: rv → tokens.
    inflight: BTreeMap<u64, u32>,
    /// The newest change the source has seen (delivered or not).
    max_seen: u64,
    /// Done while older ones were in flight.
    done: BTreeSet<u64>,
    /// Where a resumed run started: nothing below it is ever reported again.
    floor: u64,
}

/// The tracker shared by the source (which hands out tokens) and the Lease loop.
#[derive(Debug, Default)]
pub struct Progress {
    state: Mutex<State>,
}

/// One Event change on its way to the sinks; done when dropped.
#[derive(Debug)]
pub struct Token {
    rv: u64,
    progress: Arc<Progress>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.progress.finish(self.rv);
    }
}

impl Progress {
    /// Start from a stored record (or from nothing).
    pub fn resume(record: Option<&Record>) -> Arc<Progress> {
        let p = Progress::default();
        if let Some(r) = record {
            let mut s = p.lock();
            s.max_seen = r.resource_version;
            s.floor = r.resource_version;
            s.done = r.done.iter().copied().collect();
        }
        Arc::new(p)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source saw the change `rv` (delivered or not).
    pub fn seen(&self, rv: u64) {
        let mut s = self.lock();
        s.max_seen = s.max_seen.max(rv);
    }

    /// The change `rv` goes to the sinks: done when the token is dropped.
    pub fn hand(self: &Arc<Self>, rv: u64) -> Token {
        let mut s = self.lock();
        s.max_seen = s.max_seen.max(rv);
        *s.inflight.entry(rv).or_default() += 1;
        Token {
            rv,
            progress: self.clone(),
        }
    }

    fn finish(&self, rv: u64) {
        let mut s = self.lock();
        if let Some(n) = s.inflight.get_mut(&rv) {
            *n -= 1;
            if *n == 0 {
                s.inflight.remove(&rv);
                s.done.insert(rv);
            }
        }
    }

    /// Changes handed out and not done.
    pub fn in_flight(&self) -> usize {
        self.lock().inflight.values().map(|n| *n as usize).sum()
    }

    /// The record to store now.
    pub fn record(&self) -> Record {
        let mut s = self.lock();
        let watermark = match s.inflight.keys().next() {
            Some(oldest) => oldest.saturating_sub(1),
            None => s.max_seen,
        }
        .max(s.floor);
        let keep = s.done.split_off(&(watermark + 1));
        s.done = keep;
        while s.done.len() > MAX_DONE {
            // Forgetting a done change only risks sending it again, never losing one.
            let last = s.done.iter().next_back().copied();
            if let Some(l) = last {
                s.done.remove(&l);
            }
        }
        Record {
            resource_version: watermark,
            done: s.done.iter().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_oldest_in_flight_change() {
        let p = Progress::resume(None);
        p.seen(5);
        let a = p.hand(10);
        let b = p.hand(11);
        let c = p.hand(12);
        assert_eq!(p.record().resource_version, 9);
        drop(b);
        drop(c);
        let r = p.record();
        assert_eq!((r.resource_version, r.done.clone()), (9, vec![11, 12]));
        assert!(!r.covers(10) && r.covers(11) && r.covers(9) && !r.covers(13));
        p.seen(20); // seen, needed no delivery
        drop(a);
        let r = p.record();
        assert_eq!((r.resource_version, r.done.len()), (20, 0));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn records_round_trip_and_resume() {
        let r = Record {
            resource_version: 100,
            done: vec![105, 107],
        };
        let s = r.to_json();
        assert_eq!(Record::parse(&s).unwrap(), r);
        assert!(Record::parse("{\"resourceVersion\":12}").is_err());
        assert!(Record::parse("garbage").is_err());
        assert_eq!(
            Record::parse("{\"resourceVersion\":\"7\",\"done\":[\"3\",\"9\",\"9\"]}")
                .unwrap()
                .done,
            vec![9]
        );
        let p = Progress::resume(Some(&r));
        assert_eq!(p.record(), r);
        let t = p.hand(110);
        drop(t);
        assert_eq!(
            p.record(),
            Record {
                resource_version: 110,
                done: vec![]
            }
        );
    }

    #[test]
    fn the_done_list_is_bounded() {
        let p = Progress::resume(None);
        let _held = p.hand(1);
        for rv in 2..(MAX_DONE as u64 + 100) {
            drop(p.hand(rv));
        }
        let r = p.record();
        assert_eq!(r.resource_version, 0);
        assert_eq!(r.done.len(), MAX_DONE);
        assert_eq!(r.done[0], 2);
    }
}
