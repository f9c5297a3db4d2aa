//! The one state keeper: turns probe results and log findings into node conditions and
//! events. Pure logic, no I/O and no clock of its own: every call takes `now`, so tests
//! drive time by hand.
//!
//! Conditions: one state machine per condition type. The status flips only after
//! `failure` consecutive problem/unknown results (or `recovery` consecutive healthy ones);
//! `lastTransitionTime` changes only when the status does. Reason and message change with
//! the status (and the reason of a `True` condition when the problem changes); a new message
//! with the same status and reason is not written (as NPD: it keeps the message of the
//! transition).
//!
//! Events: Warning for problems and transitions to `True`, Normal for recoveries. An
//! identical (source, reason, message, object) within the dedup window bumps the count of
//! one Event instead of creating another. Every write of a Warning event costs a token of
//! the (source, reason) budget (creates and count updates have a bucket each, so a storm of
//! repeats cannot starve a new problem); creates without a token are dropped and counted,
//! count updates without a token wait for one (the count is never lost). Normal (recovery) events are
//! exempt, so problems can never starve them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use probes::findings::{LogFinding, MonitorEvent, OomKill};
use probes::{ConditionSpec, ConditionStatus, Outcome, ProbeRun};
use serde::{Deserialize, Serialize};

/// Consecutive results needed before a condition flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive problem (or unknown) results needed to leave a healthy state.
    pub failure: u32,
    /// Consecutive healthy results needed to leave a problem (or unknown) state.
    pub recovery: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failure: 1,
            recovery: 1,
        }
    }
}

/// Token bucket settings of one (source, reason) event budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Writes allowed at once.
    pub burst: u32,
    /// One token comes back per `refill`.
    pub refill: Duration,
}

/// Settings of the state keeper.
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub default_thresholds: Thresholds,
    /// Per-probe overrides of the thresholds.
    pub probe_thresholds: HashMap<String, Thresholds>,
    /// Identical events within this window update one Event.
    pub dedup_window: Duration,
    pub budget: Budget,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            default_thresholds: Thresholds::default(),
            probe_thresholds: HashMap::new(),
            dedup_window: Duration::from_secs(600),
            budget: Budget {
                burst: 10,
                refill: Duration::from_secs(300),
            },
        }
    }
}

/// A node condition as nodeprobe keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    #[serde(serialize_with = "ser_time")]
    pub transition: SystemTime,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

pub use probes::timefmt::{parse_rfc3339, rfc3339};

/// Go's `%q` of a string (what NPD puts in transition event messages).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The message of a condition-change event, NPD's format.
pub fn transition_message(c: &Condition) -> String {
    format!(
        "Node condition {} is now: {}, reason: {}, message: {}",
        c.type_,
        c.status.as_str(),
        c.reason,
        go_quote(&c.message)
    )
}

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event write the reporter must make (a create, or a count update of an Event it
/// created before under the same `name`). Serialised into the event spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOut {
    /// Client-chosen object name, stable across count updates.
    pub name: String,
    /// False for the first write of this Event, true for count updates.
    pub update: bool,
    pub type_: EventType,
    pub source: String,
    pub reason: String,
    /// Verbatim.
    pub message: String,
    pub count: u32,
    pub first: SystemTime,
    pub last: SystemTime,
    /// An OOM kill the reporter should attribute to its pod.
    pub oom: Option<OomKill>,
}

/// What one call into the state keeper produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub events: Vec<EventOut>,
    /// The condition set changed and must be written.
    pub conditions_changed: bool,
    /// Reasons of problem events emitted (NPD `problem_counter`).
    pub problems: Vec<String>,
    /// (source, reason) of every event dropped by the budget.
    pub dropped: Vec<(String, String)>,
    /// Identical events folded into an existing one.
    pub deduplicated: u64,
}

impl Output {
    fn merge(&mut self, o: Output) {
        self.events.extend(o.events);
        self.conditions_changed |= o.conditions_changed;
        self.problems.extend(o.problems);
        self.dropped.extend(o.dropped);
        self.deduplicated += o.deduplicated;
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    current: Condition,
    source: String,
    /// Candidate status and how many consecutive results asked for it.
    pending: Option<(ConditionStatus, u32)>,
    /// The probe's temporary problem event was sent for the current outage (a stretch of
    /// True, possibly interrupted by Unknown); cleared when the condition turns False.
    announced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct DedupKey {
    source: String,
    reason: String,
    message: String,
    type_: EventType,
}

#[derive(Debug, Clone)]
struct DedupEntry {
    name: String,
    count: u32,
    written_count: u32,
    first: SystemTime,
    last: SystemTime,
    oom: Option<OomKill>,
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: SystemTime,
}

/// The state keeper.
#[derive(Debug)]
pub struct StateKeeper {
    config: StateConfig,
    node: String,
    conditions: BTreeMap<String, Tracked>,
    /// Conditions read from the Node at startup, adopted when their probe first reports.
    seeded: HashMap<String, Condition>,
    dedup: HashMap<DedupKey, DedupEntry>,
    /// Token buckets per (source, reason, is-count-update).
    buckets: HashMap<(String, String, bool), Bucket>,
    seq: u64,
}

impl StateKeeper {
    pub fn new(node: impl Into<String>, config: StateConfig) -> Self {
        StateKeeper {
            config,
            node: node.into(),
            conditions: BTreeMap::new(),
            seeded: HashMap::new(),
            dedup: HashMap::new(),
            buckets: HashMap::new(),
            seq: 0,
        }
    }

    /// Start from conditions already on the Node (a restart keeps status and transition
    /// times, NPD#304). Only call with condition types nodeprobe owns.
    pub fn seed(&mut self, conditions: impl IntoIterator<Item = Condition>) {
        for c in conditions {
            self.seeded.insert(c.type_.clone(), c);
        }
    }

    /// Current conditions, in type order (what the reporter writes).
    pub fn conditions(&self) -> Vec<Condition> {
        self.conditions
            .values()
            .map(|t| t.current.clone())
            .collect()
    }

    fn thresholds(&self, probe: &str) -> Thresholds {
        self.config
            .probe_thresholds
            .get(probe)
            .copied()
            .unwrap_or(self.config.default_thresholds)
    }

    /// Feed one probe run.
    pub fn on_probe_run(&mut self, run: &ProbeRun, now: SystemTime) -> Output {
        let th = self.thresholds(run.probe);
        let source = run.source;
        let mut out = Output::default();
        for f in &run.findings {
            let o = self.on_outcome(source, &f.spec, &f.outcome, th, now);
            out.merge(o);
        }
        out
    }

    fn on_outcome(
        &mut self,
        source: &str,
        spec: &ConditionSpec,
        outcome: &Outcome,
        th: Thresholds,
        now: SystemTime,
    ) -> Output {
        let mut out = Output::default();
        let Some(status) = outcome.status() else {
            return out;
        };
        let (reason, message) = outcome.reason_message(spec);
        let ty = spec.condition.to_string();
        let new = Condition {
            type_: ty.clone(),
            status,
            reason,
            message,
            transition: now,
        };
        if !self.conditions.contains_key(&ty) {
            let initial = match self.seeded.remove(&ty) {
                Some(seeded) => seeded,
                // A problem on the first run still needs `failure` results: start healthy.
                None if status == ConditionStatus::True && th.failure > 1 => Condition {
                    type_: ty.clone(),
                    status: ConditionStatus::False,
                    reason: spec.healthy_reason.to_string(),
                    message: spec.healthy_message.to_string(),
                    transition: now,
                },
                None => {
                    self.conditions.insert(
                        ty.clone(),
                        Tracked {
                            current: new.clone(),
                            source: source.to_string(),
                            pending: None,
                            announced: status == ConditionStatus::True,
                        },
                    );
                    out.conditions_changed = true;
                    if status == ConditionStatus::True {
                        self.transition_events(&new, source, spec.problem_event, now, &mut out);
                    }
                    return out;
                }
            };
            // A condition adopted True from the Node (agent restart) was announced already.
            let announced = initial.status == ConditionStatus::True;
            self.conditions.insert(
                ty.clone(),
                Tracked {
                    current: initial,
                    source: source.to_string(),
                    pending: None,
                    announced,
                },
            );
            out.conditions_changed = true;
        }
        let Some(t) = self.conditions.get_mut(&ty) else {
            return out;
        };
        t.source = source.to_string();
        if t.current.status == status {
            t.pending = None;
            // Same status: a different problem reason is news; a new message alone is not.
            if status == ConditionStatus::True && t.current.reason != new.reason {
                t.current.reason = new.reason.clone();
                t.current.message = new.message.clone();
                out.conditions_changed = true;
                let c = t.current.clone();
                self.transition_events(&c, source, None, now, &mut out);
            }
            return out;
        }
        let needed = if status == ConditionStatus::False {
            th.recovery
        } else {
            th.failure
        }
        .max(1);
        let count = match t.pending {
            Some((s, n)) if s == status => n + 1,
            _ => 1,
        };
        if count < needed {
            t.pending = Some((status, count));
            return out;
        }
        t.pending = None;
        t.current = new.clone();
        // Once per outage: True -> Unknown -> True (a timeout mid-outage) is the same outage.
        let announce = status == ConditionStatus::True && !t.announced;
        match status {
            ConditionStatus::True => t.announced = true,
            ConditionStatus::False => t.announced = false,
            ConditionStatus::Unknown => {}
        }
        out.conditions_changed = true;
        let problem_event = spec.problem_event.filter(|_| announce);
        self.transition_events(&new, source, problem_event, now, &mut out);
        out
    }

    fn transition_events(
        &mut self,
        c: &Condition,
        source: &str,
        problem_event: Option<&'static str>,
        now: SystemTime,
        out: &mut Output,
    ) {
        let type_ = if c.status == ConditionStatus::True {
            EventType::Warning
        } else {
            EventType::Normal
        };
        if c.status == ConditionStatus::True {
            out.problems.push(c.reason.clone());
        }
        self.event(
            source,
            type_,
            &c.reason,
            &transition_message(c),
            None,
            now,
            out,
        );
        if let (ConditionStatus::True, Some(reason)) = (c.status, problem_event) {
            out.problems.push(reason.to_string());
            self.event(
                source,
                EventType::Warning,
                reason,
                &c.message,
                None,
                now,
                out,
            );
        }
    }

    /// Feed one log-monitor finding.
    pub fn on_log_finding(&mut self, f: &LogFinding, now: SystemTime) -> Output {
        let mut out = Output::default();
        match f {
            LogFinding::Event(MonitorEvent {
                source,
                reason,
                message,
                oom,
                ..
            }) => {
                out.problems.push(reason.clone());
                self.event(
                    source,
                    EventType::Warning,
                    reason,
                    message,
                    oom.clone(),
                    now,
                    &mut out,
                );
            }
            LogFinding::Condition(u) => {
                let new = Condition {
                    type_: u.condition.clone(),
                    status: u.status,
                    reason: u.reason.clone(),
                    message: u.message.clone(),
                    transition: u.transition,
                };
                let prev = match self.conditions.get(&u.condition) {
                    Some(t) => Some(t.current.clone()),
                    None => self.seeded.remove(&u.condition),
                };
                let changed_status = prev.as_ref().is_none_or(|p| p.status != u.status);
                let changed_reason = prev
                    .as_ref()
                    .is_some_and(|p| p.status == u.status && p.reason != u.reason);
                let current = match &prev {
                    Some(p) if !changed_status && !changed_reason => p.clone(),
                    Some(p) if !changed_status => Condition {
                        transition: p.transition,
                        ..new.clone()
                    },
                    _ => new.clone(),
                };
                let differs = prev.as_ref() != Some(&current);
                // A type adopted from the Node is new to the set the writer keeps fresh
                // (heartbeats), even when nothing about it changed.
                let newly_tracked = !self.conditions.contains_key(&u.condition);
                self.conditions.insert(
                    u.condition.clone(),
                    Tracked {
                        current: current.clone(),
                        source: u.source.clone(),
                        pending: None,
                        announced: false,
                    },
                );
                out.conditions_changed = differs || newly_tracked;
                // A first report of a healthy condition is no news.
                let news = match &prev {
                    None => u.status == ConditionStatus::True,
                    Some(_) => changed_status || changed_reason,
                };
                if news {
                    self.transition_events(&current, &u.source, None, now, &mut out);
                }
            }
        }
        out
    }

    /// Periodic housekeeping: expire dedup entries and write count bumps that waited for
    /// budget. Call at least every [`StateKeeper::next_wakeup`].
    pub fn tick(&mut self, now: SystemTime) -> Output {
        let mut out = Output::default();
        let window = self.config.dedup_window;
        let mut keys: Vec<DedupKey> = self.dedup.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(e) = self.dedup.get(&key) else {
                continue;
            };
            let pending = e.count > e.written_count;
            if pending && self.take_token(&key, true, now) {
                if let Some(e) = self.dedup.get_mut(&key) {
                    e.written_count = e.count;
                    out.events.push(event_out(&key, e, true));
                }
            }
            let Some(e) = self.dedup.get(&key) else {
                continue;
            };
            let expired = now.duration_since(e.last).unwrap_or_default() >= window;
            if expired && e.count == e.written_count {
                self.dedup.remove(&key);
            }
        }
        out
    }

    /// When [`StateKeeper::tick`] has work: `None` when nothing waits.
    pub fn next_wakeup(&self) -> Option<Duration> {
        if self.dedup.values().any(|e| e.count > e.written_count) {
            return Some(self.config.budget.refill.min(Duration::from_secs(1)));
        }
        if self.dedup.is_empty() {
            None
        } else {
            Some(self.config.dedup_window)
        }
    }

    fn take_token(&mut self, key: &DedupKey, update: bool, now: SystemTime) -> bool {
        if key.type_ == EventType::Normal {
            return true;
        }
        let budget = self.config.budget;
        let b = self
            .buckets
            .entry((key.source.clone(), key.reason.clone(), update))
            .or_insert(Bucket {
                tokens: budget.burst as f64,
                at: now,
            });
        let elapsed = now.duration_since(b.at).unwrap_or_default();
        b.at = now;
        if !budget.refill.is_zero() {
            b.tokens = (b.tokens + elapsed.as_secs_f64() / budget.refill.as_secs_f64())
                .min(budget.burst as f64);
        }
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        source: &str,
        type_: EventType,
        reason: &str,
        message: &str,
        oom: Option<OomKill>,
        now: SystemTime,
        out: &mut Output,
    ) {
        let key = DedupKey {
            source: source.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            type_,
        };
        let window = self.config.dedup_window;
        let live = self
            .dedup
            .get(&key)
            .is_some_and(|e| now.duration_since(e.last).unwrap_or_default() < window);
        if live {
            out.deduplicated += 1;
            let Some(e) = self.dedup.get_mut(&key) else {
                return;
            };
            e.count += 1;
            e.last = now;
            if self.take_token(&key, true, now) {
                if let Some(e) = self.dedup.get_mut(&key) {
                    e.written_count = e.count;
                    out.events.push(event_out(&key, e, true));
                }
            }
            return;
        }
        if !self.take_token(&key, false, now) {
            out.dropped.push((key.source, key.reason));
            return;
        }
        self.seq += 1;
        let nanos = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let entry = DedupEntry {
            name: format!("{}.{:x}{:04x}", self.node, nanos, self.seq & 0xffff),
            count: 1,
            written_count: 1,
            first: now,
            last: now,
            oom,
        };
        out.events.push(event_out(&key, &entry, false));
        self.dedup.insert(key, entry);
    }

    /// Source of the probe or monitor that owns a condition type.
    pub fn source_of(&self, condition: &str) -> Option<&str> {
        self.conditions.get(condition).map(|t| t.source.as_str())
    }
}

fn event_out(key: &DedupKey, e: &DedupEntry, update: bool) -> EventOut {
    EventOut {
        name: e.name.clone(),
        update,
        type_: key.type_,
        source: key.source.clone(),
        reason: key.reason.clone(),
        message: key.message.clone(),
        count: e.count,
        first: e.first,
        last: e.last,
        oom: e.oom.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::findings::ConditionUpdate;
    use probes::Finding;

    const SPEC: ConditionSpec = ConditionSpec::new(
        "InodesPressure",
        "NodeHasNoInodesPressure",
        "node has no inodes pressure",
        "NodeHasInodesPressure",
    );
    const RT: ConditionSpec = ConditionSpec::new(
        "RuntimeOffline",
        "RuntimeDaemonNotOffline",
        "runtime is up",
        "RuntimeDaemonOffline",
    )
    .with_problem_event("RuntimeDaemonOffline");

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn run(probe: &'static str, spec: ConditionSpec, outcome: Outcome) -> ProbeRun {
        ProbeRun {
            probe,
            source: probes::registry::decl(probe).map_or("test-monitor", |d| d.source),
            findings: vec![Finding { spec, outcome }],
            duration: Duration::from_millis(1),
        }
    }

    fn keeper() -> StateKeeper {
        StateKeeper::new("n1", StateConfig::default())
    }

    fn problem(msg: &str) -> Outcome {
        Outcome::problem("NodeHasInodesPressure", msg)
    }

    #[test]
    fn first_healthy_result_sets_condition_without_event() {
        let mut k = keeper();
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(0));
        assert!(o.conditions_changed);
        assert!(o.events.is_empty());
        let c = &k.conditions()[0];
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason, "NodeHasNoInodesPressure");
        assert_eq!(c.message, "node has no inodes pressure");
        assert_eq!(c.transition, t(0));
        // Same again: nothing to write.
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(30));
        assert_eq!(o, Output::default());
        assert_eq!(k.conditions()[0].transition, t(0));
    }

    #[test]
    fn transitions_emit_npd_formatted_events_and_keep_transition_time() {
        let mut k = keeper();
        k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(0));
        let o = k.on_probe_run(&run("inodes", SPEC, problem("usage 91% on /")), t(10));
        assert!(o.conditions_changed);
        assert_eq!(o.events.len(), 1);
        let e = &o.events[0];
        assert_eq!(e.type_, EventType::Warning);
        assert_eq!(e.reason, "NodeHasInodesPressure");
        assert_eq!(e.source, "inodes-custom-plugin-monitor");
        assert_eq!(
            e.message,
            "Node condition InodesPressure is now: True, reason: NodeHasInodesPressure, message: \"usage 91% on /\""
        );
        assert_eq!(o.problems, vec!["NodeHasInodesPressure".to_string()]);
        // A new message with the same status and reason: no write, no event.
        let o = k.on_probe_run(&run("inodes", SPEC, problem("usage 92% on /")), t(20));
        assert_eq!(o, Output::default());
        assert_eq!(k.conditions()[0].transition, t(10));
        assert_eq!(k.conditions()[0].message, "usage 91% on /");
        // Recovery: Normal event, new transition.
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(30));
        assert_eq!(o.events.len(), 1);
        assert_eq!(o.events[0].type_, EventType::Normal);
        assert_eq!(o.events[0].reason, "NodeHasNoInodesPressure");
        assert!(o.problems.is_empty());
        assert_eq!(k.conditions()[0].transition, t(30));
    }

    #[test]
    fn a_changed_problem_reason_is_reported_without_new_transition() {
        let mut k = keeper();
        k.on_probe_run(&run("inodes", SPEC, problem("a")), t(0));
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::problem("Other", "b")), t(5));
        assert!(o.conditions_changed);
        assert_eq!(o.events[0].reason, "Other");
        let c = &k.conditions()[0];
        assert_eq!((c.reason.as_str(), c.message.as_str()), ("Other", "b"));
        assert_eq!(c.transition, t(0));
    }

    #[test]
    fn thresholds_need_consecutive_results() {
        let mut cfg = StateConfig::default();
        cfg.probe_thresholds.insert(
            "inodes".into(),
            Thresholds {
                failure: 3,
                recovery: 2,
            },
        );
        let mut k = StateKeeper::new("n1", cfg);
        k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(0));
        // Blips interrupted by a healthy result never flip.
        for (i, o) in [
            problem("x"),
            problem("x"),
            Outcome::ok(),
            problem("x"),
            problem("x"),
        ]
        .into_iter()
        .enumerate()
        {
            let out = k.on_probe_run(&run("inodes", SPEC, o), t(1 + i as u64));
            assert!(out.events.is_empty());
        }
        assert_eq!(k.conditions()[0].status, ConditionStatus::False);
        let out = k.on_probe_run(&run("inodes", SPEC, problem("x")), t(10));
        assert_eq!(out.events.len(), 1);
        assert_eq!(k.conditions()[0].status, ConditionStatus::True);
        assert_eq!(k.conditions()[0].transition, t(10));
        assert!(k
            .on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(11))
            .events
            .is_empty());
        assert_eq!(k.conditions()[0].status, ConditionStatus::True);
        let out = k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(12));
        assert_eq!(out.events[0].type_, EventType::Normal);
        assert_eq!(k.conditions()[0].status, ConditionStatus::False);
        // Other probes use the default (flip at once).
        let o = k.on_probe_run(&run("pid-pressure", RT, Outcome::unknown("no")), t(13));
        assert!(o.conditions_changed);
    }

    #[test]
    fn a_problem_on_the_first_run_respects_the_failure_threshold() {
        let mut cfg = StateConfig::default();
        cfg.default_thresholds.failure = 2;
        let mut k = StateKeeper::new("n1", cfg);
        let o = k.on_probe_run(&run("inodes", SPEC, problem("x")), t(0));
        assert!(o.conditions_changed && o.events.is_empty());
        assert_eq!(k.conditions()[0].status, ConditionStatus::False);
        let o = k.on_probe_run(&run("inodes", SPEC, problem("x")), t(1));
        assert_eq!(o.events.len(), 1);
    }

    #[test]
    fn seeded_state_survives_a_restart_without_events() {
        let mut k = keeper();
        k.seed([Condition {
            type_: "InodesPressure".into(),
            status: ConditionStatus::True,
            reason: "NodeHasInodesPressure".into(),
            message: "old".into(),
            transition: t(0),
        }]);
        let o = k.on_probe_run(&run("inodes", SPEC, problem("new")), t(100));
        assert!(o.events.is_empty());
        let c = &k.conditions()[0];
        assert_eq!(c.transition, t(0));
        assert_eq!(c.message, "old");
        // A real change after the restart is reported.
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(200));
        assert_eq!(o.events[0].type_, EventType::Normal);
        assert_eq!(k.conditions()[0].transition, t(200));
    }

    #[test]
    fn problem_event_once_per_outage() {
        let mut k = keeper();
        k.on_probe_run(&run("runtime", RT, Outcome::ok()), t(0));
        let o = k.on_probe_run(
            &run(
                "runtime",
                RT,
                Outcome::problem("RuntimeDaemonOffline", "100% down"),
            ),
            t(1),
        );
        assert_eq!(o.events.len(), 2);
        assert_eq!(o.events[1].reason, "RuntimeDaemonOffline");
        assert_eq!(o.events[1].message, "100% down");
        assert_eq!(o.events[1].type_, EventType::Warning);
        assert_eq!(o.events[0].source, "docker-offline-custom-plugin-monitor");
        for s in 2..10 {
            let o = k.on_probe_run(
                &run(
                    "runtime",
                    RT,
                    Outcome::problem("RuntimeDaemonOffline", "100% down"),
                ),
                t(s),
            );
            assert!(o.events.is_empty());
        }
    }

    #[test]
    fn problem_event_not_repeated_when_unknown_interrupts_an_outage() {
        let mut k = keeper();
        let mut count = |n: u64, outcome: Outcome| {
            let o = k.on_probe_run(&run("runtime", RT, outcome), t(n));
            o.events
                .iter()
                .filter(|e| e.reason == "RuntimeDaemonOffline" && e.message == "down")
                .count()
        };
        assert_eq!(count(0, Outcome::ok()), 0);
        assert_eq!(
            count(1, Outcome::problem("RuntimeDaemonOffline", "down")),
            1
        );
        assert_eq!(count(2, Outcome::unknown("timed out")), 0);
        assert_eq!(
            count(3, Outcome::problem("RuntimeDaemonOffline", "down")),
            0
        );
        assert_eq!(count(4, Outcome::ok()), 0);
        assert_eq!(
            count(5, Outcome::problem("RuntimeDaemonOffline", "down")),
            1
        );
    }

    #[test]
    fn unknown_is_a_normal_transition_and_not_applicable_is_ignored() {
        let mut k = keeper();
        k.on_probe_run(&run("inodes", SPEC, problem("p")), t(0));
        let o = k.on_probe_run(
            &run("inodes", SPEC, Outcome::unknown("statvfs failed")),
            t(1),
        );
        assert_eq!(o.events[0].type_, EventType::Normal);
        let c = &k.conditions()[0];
        assert_eq!(c.status, ConditionStatus::Unknown);
        assert_eq!(c.reason, "NodeHasNoInodesPressure");
        assert_eq!(c.message, "statvfs failed");
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::not_applicable("n/a")), t(2));
        assert_eq!(o, Output::default());
        let mut k = keeper();
        k.on_probe_run(&run("inodes", SPEC, Outcome::not_applicable("n/a")), t(2));
        assert!(k.conditions().is_empty());
    }

    fn temp(reason: &str, msg: &str) -> LogFinding {
        LogFinding::Event(MonitorEvent {
            source: "kernel-monitor".into(),
            reason: reason.into(),
            message: msg.into(),
            timestamp: t(0),
            oom: None,
        })
    }

    #[test]
    fn identical_events_are_deduplicated_into_one_with_a_count() {
        let mut k = keeper();
        let mut events = Vec::new();
        let mut dedup = 0;
        for i in 0..10 {
            let o = k.on_log_finding(
                &temp("TaskHung", "task foo:1 blocked for more than 120 seconds."),
                t(i),
            );
            events.extend(o.events);
            dedup += o.deduplicated;
        }
        assert_eq!(dedup, 9);
        let names: std::collections::HashSet<_> = events.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names.len(), 1);
        assert!(!events[0].update);
        assert!(events[1..].iter().all(|e| e.update));
        assert_eq!(events.last().unwrap().count, 10);
        assert_eq!(events.last().unwrap().first, t(0));
        assert_eq!(events.last().unwrap().last, t(9));
        // A different message is a different event.
        let o = k.on_log_finding(&temp("TaskHung", "task bar:2 blocked"), t(11));
        assert!(!o.events[0].update);
        assert_ne!(o.events[0].name, events[0].name);
        // After the window, the same message is a new Event.
        let later = t(9) + Duration::from_secs(600);
        k.tick(later);
        let o = k.on_log_finding(
            &temp("TaskHung", "task foo:1 blocked for more than 120 seconds."),
            later,
        );
        assert!(!o.events[0].update);
        assert_ne!(o.events[0].name, events[0].name);
    }

    #[test]
    fn messages_are_verbatim() {
        let mut k = keeper();
        let o = k.on_log_finding(&temp("X", "100%s %d %!o(MISSING) {}"), t(0));
        assert_eq!(o.events[0].message, "100%s %d %!o(MISSING) {}");
    }

    #[test]
    fn budget_drops_creates_and_counts_them_but_defers_bumps() {
        let cfg = StateConfig {
            budget: Budget {
                burst: 3,
                refill: Duration::from_secs(60),
            },
            ..StateConfig::default()
        };
        let mut k = StateKeeper::new("n1", cfg);
        let mut created = 0;
        let mut dropped = 0;
        for i in 0..10 {
            let o = k.on_log_finding(&temp("KernelOops", &format!("oops {i}")), t(0));
            created += o.events.len();
            dropped += o.dropped.len();
        }
        assert_eq!((created, dropped), (3, 7));
        // Other reasons have their own budget.
        assert_eq!(
            k.on_log_finding(&temp("TaskHung", "x"), t(0)).events.len(),
            1
        );
        // Count updates have their own bucket: three go out at once...
        for i in 0..3 {
            let o = k.on_log_finding(&temp("KernelOops", "oops 0"), t(1));
            assert_eq!(o.events.len(), 1);
            assert_eq!(o.events[0].count, 2 + i);
        }
        // ...the next waits; tick writes it once a token is back.
        let o = k.on_log_finding(&temp("KernelOops", "oops 0"), t(1));
        assert!(o.events.is_empty() && o.dropped.is_empty());
        assert_eq!(o.deduplicated, 1);
        assert!(k.next_wakeup().is_some());
        assert!(k.tick(t(30)).events.is_empty());
        let o = k.tick(t(61));
        assert_eq!(o.events.len(), 1);
        assert!(o.events[0].update);
        assert_eq!(o.events[0].count, 5);
        assert!(k.tick(t(62)).events.is_empty());
    }

    #[test]
    fn recovery_events_are_never_starved() {
        let cfg = StateConfig {
            budget: Budget {
                burst: 1,
                refill: Duration::from_secs(3600),
            },
            ..StateConfig::default()
        };
        let mut k = StateKeeper::new("n1", cfg);
        k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(0));
        for i in 0..5 {
            let bad = if i % 2 == 0 {
                problem("x")
            } else {
                Outcome::ok()
            };
            k.on_probe_run(&run("inodes", SPEC, bad), t(1 + i));
        }
        // Flapping exhausted the Warning budget; the recovery still goes out.
        let o = k.on_probe_run(&run("inodes", SPEC, Outcome::ok()), t(10));
        assert_eq!(o.events.len(), 1);
        assert_eq!(o.events[0].type_, EventType::Normal);
    }

    #[test]
    fn log_conditions_keep_their_transition_and_seeded_state() {
        let mut k = keeper();
        k.seed([Condition {
            type_: "ReadonlyFilesystem".into(),
            status: ConditionStatus::True,
            reason: "FilesystemIsReadOnly".into(),
            message: "Remounting filesystem read-only".into(),
            transition: t(0),
        }]);
        let upd = |status, reason: &str, at| {
            LogFinding::Condition(ConditionUpdate {
                source: "kernel-monitor".into(),
                condition: "ReadonlyFilesystem".into(),
                status,
                reason: reason.into(),
                message: "Remounting filesystem read-only".into(),
                transition: at,
            })
        };
        let o = k.on_log_finding(
            &upd(ConditionStatus::True, "FilesystemIsReadOnly", t(50)),
            t(50),
        );
        assert!(o.events.is_empty());
        assert_eq!(k.conditions()[0].transition, t(0));
        // Adopted from the Node: the writer must get it (heartbeats, readiness), even after
        // a restart with only log monitors, where nothing else would hand it the set.
        assert!(o.conditions_changed);
        let o = k.on_log_finding(
            &upd(ConditionStatus::True, "FilesystemIsReadOnly", t(55)),
            t(55),
        );
        assert!(!o.conditions_changed && o.events.is_empty());
        let o = k.on_log_finding(
            &upd(ConditionStatus::False, "FilesystemIsNotReadOnly", t(60)),
            t(60),
        );
        assert_eq!(o.events[0].type_, EventType::Normal);
        assert_eq!(k.conditions()[0].transition, t(60));
        assert_eq!(k.source_of("ReadonlyFilesystem"), Some("kernel-monitor"));
        let o = k.on_log_finding(
            &upd(ConditionStatus::True, "FilesystemIsReadOnly", t(70)),
            t(70),
        );
        assert_eq!(o.events[0].type_, EventType::Warning);
        assert_eq!(k.conditions()[0].transition, t(70));
    }

    #[test]
    fn oom_findings_carry_the_kill() {
        let mut k = keeper();
        let oom = OomKill {
            pod_uid: Some("uid-1".into()),
            container_id: None,
            task: "stress".into(),
            pid: 42,
            memcg: "/kubepods/poduid-1".into(),
        };
        let f = LogFinding::Event(MonitorEvent {
            source: "kernel-monitor".into(),
            reason: "PodOOMKilling".into(),
            message: "Killed process 42 (stress)".into(),
            timestamp: t(0),
            oom: Some(oom.clone()),
        });
        let o = k.on_log_finding(&f, t(0));
        assert_eq!(o.events[0].oom, Some(oom));
        assert_eq!(o.problems, vec!["PodOOMKilling".to_string()]);
    }

    #[test]
    fn go_quoting_matches_percent_q() {
        assert_eq!(go_quote("a \"b\" \\ c\n%d"), "\"a \\\"b\\\" \\\\ c\\n%d\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
    }
}
