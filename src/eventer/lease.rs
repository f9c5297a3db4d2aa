//! Leader election and the progress record, on one `coordination.k8s.io/v1` Lease.
//!
//! Our own small loop on kube's `Api<Lease>` rather than a crate: every write is a
//! `replace` guarded by the resourceVersion read before it (a 409 Conflict means another
//! replica wrote first), the progress record rides along in an annotation of the same
//! writes, and the few rules fit in this file. (kube-runtime has no leader election; the
//! crates that add one either take a Lease per call with server-side apply, which cannot
//! detect a lost race, or bring their own runtime assumptions.)
//!
//! Rules (client-go's): a candidate takes the Lease when it has no holder or when its
//! record has not changed for `leaseDurationSeconds` as measured on the candidate's own
//! clock (so clock skew between nodes does not matter); the holder renews every
//! `retry`; a holder that cannot renew for `renew_deadline`, or finds another holder in
//! the Lease, has lost and stops delivering (the process exits, its Pod restarts as a
//! standby). On a clean stop the holder writes its last record and releases the Lease,
//! so the other replica takes over at its next look.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::Api;

use super::progress::{Record, RecordError};

/// The annotation that holds the progress record.
pub const PROGRESS_ANNOTATION: &str = "nodeprobe.io/eventer-progress";

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
    /// Without election the Lease is taken whoever holds it (one replica only) and only
    /// carries the record.
    pub elect: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("Lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Lease {namespace}/{name}: held by {holder:?} now")]
    Stolen {
        namespace: String,
        name: String,
        holder: String,
    },
    #[error("Lease {namespace}/{name}: not renewed for {deadline:?}")]
    Expired {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
}

fn holder(l: &Lease) -> &str {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or("")
}

/// The record stored in a Lease, if any (a broken one is an error, logged by the caller).
pub fn record_of(l: &Lease) -> Result<Option<Record>, RecordError> {
    match l
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROGRESS_ANNOTATION))
    {
        None => Ok(None),
        Some(s) => Record::parse(s).map(Some),
    }
}

/// What a candidate remembers of the Lease it watches.
#[derive(Debug, Default)]
pub struct Observed {
    key: Option<(String, Option<String>, Option<i32>)>,
    since: Option<Instant>,
}

impl Observed {
    /// Note the Lease as read now; whether its holder's term has run out (pure given `now`).
    pub fn expired(&mut self, l: &Lease, now: Instant, default: Duration) -> bool {
        let spec = l.spec.clone().unwrap_or_default();
        let h = spec.holder_identity.clone().unwrap_or_default();
        if h.is_empty() {
            return true;
        }
        let key = (
            h,
            spec.renew_time.map(|t| t.0.to_string()),
            spec.lease_transitions,
        );
        if self.key.as_ref() != Some(&key) {
            self.key = Some(key);
            self.since = Some(now);
        }
        let d = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(default);
        self.since
            .is_some_and(|s| now.saturating_duration_since(s) >= d)
    }
}

pub struct Elector {
    api: Api<Lease>,
    pub s: LeaseSettings,
    /// The Lease as last written by us.
    held: Option<Lease>,
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl Elector {
    pub fn new(api: Api<Lease>, s: LeaseSettings) -> Elector {
        Elector { api, s, held: None }
    }

    fn err(&self, e: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.s.namespace.clone(),
            name: self.s.name.clone(),
            source: e,
        }
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.s.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.s.duration.as_secs().max(1)).unwrap_or(15),
            ),
            acquire_time: Some(acquired.unwrap_or_else(now_micro)),
            renew_time: Some(now_micro()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt to become the holder: `Ok(Some(record))` when we hold it now.
    pub async fn try_acquire(
        &mut self,
        observed: &mut Observed,
    ) -> Result<Option<Option<Record>>, LeaseError> {
        let cur = self
            .api
            .get_opt(&self.s.name)
            .await
            .map_err(|e| self.err(e))?;
        let Some(cur) = cur else {
            let l = Lease {
                metadata: ObjectMeta {
                    name: Some(self.s.name.clone()),
                    namespace: Some(self.s.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &l).await {
                Ok(made) => {
                    self.held = Some(made);
                    Ok(Some(None))
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
                Err(e) => Err(self.err(e)),
            };
        };
        let mine = holder(&cur) == self.s.identity;
        if self.s.elect && !mine && !observed.expired(&cur, Instant::now(), self.s.duration) {
            return Ok(None);
        }
        let record = match record_of(&cur) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{e}; starting without it (only new Events)");
                None
            }
        };
        let spec = cur.spec.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let mut next = cur.clone();
        next.spec = Some(self.spec(transitions, if mine { spec.acquire_time } else { None }));
        match self
            .api
            .replace(&self.s.name, &PostParams::default(), &next)
            .await
        {
            Ok(made) => {
                self.held = Some(made);
                Ok(Some(record))
            }
            // Someone else wrote between our read and our write: not ours this time.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Renew (and store `record`). `Ok(false)`: a conflict, try again after a fresh read.
    pub async fn renew(&mut self, record: Option<&Record>) -> Result<bool, LeaseError> {
        let Some(mut next) = self.held.clone() else {
            return Ok(false);
        };
        let spec = next.spec.clone().unwrap_or_default();
        next.spec = Some(LeaseSpec {
            renew_time: Some(now_micro()),
            ..spec
        });
        if let Some(r) = record {
            next.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(PROGRESS_ANNOTATION.into(), r.to_json());
        }
        match self
            .api
            .replace(&self.s.name, &PostParams::default(), &next)
            .await
        {
            Ok(made) => {
                self.held = Some(made);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Re-read: still ours (someone touched it) or taken.
                let cur = self.api.get(&self.s.name).await.map_err(|e| self.err(e))?;
                let h = holder(&cur).to_string();
                if h != self.s.identity && self.s.elect {
                    return Err(LeaseError::Stolen {
                        namespace: self.s.namespace.clone(),
                        name: self.s.name.clone(),
                        holder: h,
                    });
                }
                if h != self.s.identity {
                    // Without election we take it back.
                    let mut c = cur;
                    c.spec = Some(self.spec(0, None));
                    self.held = Some(c);
                } else {
                    self.held = Some(cur);
                }
                Ok(false)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Hold the Lease until `stop`: renew every `retry` with the record `record()` gives.
    /// Returns `Ok(())` on stop (after releasing the Lease), an error when lost.
    pub async fn hold(
        &mut self,
        record: impl Fn() -> Record,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), LeaseError> {
        let mut last_ok = Instant::now();
        // After a conflict on a Lease still ours: write again at once (fresh resourceVersion).
        let mut again = false;
        let mut conflicts_in_a_row = 0u32;
        let expired = |s: &LeaseSettings| LeaseError::Expired {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            deadline: s.renew_deadline,
        };
        loop {
            // A leader must stop before its term could run out elsewhere: nothing waits
            // past the renew deadline (the client's own retries of a 503 included).
            let deadline = self.s.renew_deadline;
            let left = |last_ok: Instant| deadline.saturating_sub(last_ok.elapsed());
            let pause = if again {
                Duration::ZERO
            } else if self.s.elect {
                self.s.retry.min(left(last_ok))
            } else {
                self.s.retry
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return Ok(()),
            }
            if self.s.elect && left(last_ok).is_zero() {
                return Err(expired(&self.s));
            }
            let budget = if self.s.elect {
                self.s.retry.max(Duration::from_secs(1)).min(left(last_ok))
            } else {
                self.s.retry.max(Duration::from_secs(2))
            };
            let r = record();
            match tokio::time::timeout(budget, self.renew(Some(&r))).await {
                Ok(Ok(true)) => {
                    last_ok = Instant::now();
                    again = false;
                    conflicts_in_a_row = 0;
                }
                Ok(Ok(false)) => {
                    // at most 3 at once, then the normal pace
                    conflicts_in_a_row += 1;
                    again = !conflicts_in_a_row.is_multiple_of(4);
                }
                Ok(Err(e @ LeaseError::Stolen { .. })) => return Err(e),
                Ok(Err(e)) => {
                    again = false;
                    tracing::warn!("renewing the Lease: {e}")
                }
                Err(_) => {
                    again = false;
                    tracing::warn!("renewing the Lease: no answer within {budget:?}")
                }
            }
            if self.s.elect && left(last_ok).is_zero() {
                return Err(expired(&self.s));
            }
        }
    }

    /// Store the last record and let the Lease go (the other replica takes it at its next
    /// look).
    pub async fn release(&mut self, record: &Record) -> Result<(), LeaseError> {
        for _ in 0..3 {
            if self.renew(Some(record)).await? {
                break;
            }
        }
        if !self.s.elect {
            return Ok(());
        }
        let Some(mut next) = self.held.clone() else {
            return Ok(());
        };
        if let Some(spec) = next.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
        }
        self.api
            .replace(&self.s.name, &PostParams::default(), &next)
            .await
            .map_err(|e| self.err(e))?;
        self.held = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renew: &str, dur: i32) -> Lease {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "l", "namespace": "ns",
                         "annotations": {PROGRESS_ANNOTATION: "{\"resourceVersion\":\"42\",\"done\":[\"44\"]}"}},
            "spec": {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": dur}
        }))
        .unwrap()
    }

    #[test]
    fn expiry_is_measured_on_our_clock() {
        let mut o = Observed::default();
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        let a = lease("a", "2026-12-05T07:00:00.000000Z", 15);
        assert!(!o.expired(&a, t0, d));
        assert!(!o.expired(&a, t0 + Duration::from_secs(14), d));
        // renewed: the clock starts again
        let a2 = lease("a", "2026-12-05T07:00:02.000000Z", 15);
        assert!(!o.expired(&a2, t0 + Duration::from_secs(14), d));
        assert!(!o.expired(&a2, t0 + Duration::from_secs(28), d));
        assert!(o.expired(&a2, t0 + Duration::from_secs(29), d));
        assert!(o.expired(&lease("", "2026-12-05T07:00:02.000000Z", 15), t0, d));
        assert_eq!(
            record_of(&a).unwrap(),
            Some(Record {
                resource_version: 42,
                done: vec![44]
            })
        );
    }
}
