//! The eventer's metrics (prometheus-client, OpenMetrics like the agent's) and the health
//! state `/healthz` and `/readyz` read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// kube-eventer's per-reason counters keep at most this many label sets; more go to
/// `reason="_other"`.
pub const MAX_REASON_SERIES: usize = 2000;

/// Per-sink health: when the sink last delivered and since when every attempt failed.
#[derive(Debug, Default)]
pub struct SinkHealth {
    pub failing_since: Option<Instant>,
    pub last_success: Option<Instant>,
}

#[derive(Debug)]
pub struct EventerMetrics {
    registry: Registry,
    pub received: Family<Labels, Counter>,
    pub skipped: Family<Labels, Counter>,
    pub watch_errors: Counter,
    pub relists: Counter,
    pub delivered: Family<Labels, Counter>,
    pub failed: Family<Labels, Counter>,
    pub retried: Family<Labels, Counter>,
    pub dropped: Family<Labels, Counter>,
    pub filtered: Family<Labels, Counter>,
    pub folded: Family<Labels, Counter>,
    pub queue: Family<Labels, Gauge>,
    pub latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub age: Family<Labels, Histogram, fn() -> Histogram>,
    pub template_reloads: Family<Labels, Counter>,
    normal: Family<Labels, Counter>,
    warning: Family<Labels, Counter>,
    reason_series: Mutex<std::collections::HashSet<Labels>>,
    sinks: Mutex<HashMap<String, SinkHealth>>,
    /// Set after the first complete list of Events.
    pub ready: AtomicBool,
    /// The watch: since when it fails (consecutive errors), and the last error.
    watch: Mutex<(Option<Instant>, Option<Instant>)>,
    pub started: Instant,
    pub delivered_set: AtomicU64,
    /// 1 while this replica holds the Lease and delivers.
    pub leader: Gauge,
    pub lease_errors: Counter,
}

impl Default for EventerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EventerMetrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let m = EventerMetrics {
            received: Default::default(),
            skipped: Default::default(),
            watch_errors: Default::default(),
            relists: Default::default(),
            delivered: Default::default(),
            failed: Default::default(),
            retried: Default::default(),
            dropped: Default::default(),
            filtered: Default::default(),
            folded: Default::default(),
            queue: Default::default(),
            latency: Family::new_with_constructor(latency_histogram),
            age: Family::new_with_constructor(latency_histogram),
            template_reloads: Default::default(),
            normal: Default::default(),
            warning: Default::default(),
            reason_series: Mutex::new(Default::default()),
            sinks: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
            watch: Mutex::new((None, None)),
            started: Instant::now(),
            delivered_set: AtomicU64::new(0),
            leader: Default::default(),
            lease_errors: Default::default(),
            registry: Registry::default(),
        };
        let p = "nodeprobe_eventer_";
        r.register(
            format!("{p}events_received"),
            "Event ADDED/MODIFIED notifications and listed Events, by type",
            m.received.clone(),
        );
        r.register(
            format!("{p}events_skipped"),
            "Events not forwarded: already delivered (same uid and count) or older than the start",
            m.skipped.clone(),
        );
        r.register(
            format!("{p}leader"),
            "1 while this replica holds the Lease and delivers (0: standby)",
            m.leader.clone(),
        );
        r.register(
            format!("{p}lease_errors"),
            "Failed reads and writes of the Lease (leader election, progress record)",
            m.lease_errors.clone(),
        );
        r.register(
            format!("{p}watch_errors"),
            "Errors of the Event list/watch",
            m.watch_errors.clone(),
        );
        r.register(
            format!("{p}relists"),
            "Complete lists of Events (the first one and every re-list after 410 Gone)",
            m.relists.clone(),
        );
        r.register(
            format!("{p}sink_delivered"),
            "Messages a sink delivered (2xx and, for chat robots, code 0)",
            m.delivered.clone(),
        );
        r.register(
            format!("{p}sink_failed"),
            "Failed delivery attempts, by sink and cause",
            m.failed.clone(),
        );
        r.register(
            format!("{p}sink_retried"),
            "Delivery attempts scheduled again",
            m.retried.clone(),
        );
        r.register(
            format!("{p}sink_dropped"),
            "Messages given up, by sink and cause",
            m.dropped.clone(),
        );
        r.register(
            format!("{p}sink_filtered"),
            "Events a sink's filters did not pass",
            m.filtered.clone(),
        );
        r.register(
            format!("{p}sink_folded"),
            "Events folded into a follow-up or a summary (chat sinks)",
            m.folded.clone(),
        );
        r.register(
            format!("{p}sink_queue_length"),
            "Messages waiting in a sink's queue",
            m.queue.clone(),
        );
        r.register(
            format!("{p}sink_delivery_latency_seconds"),
            "Watch receipt of the Event to the receiver's success answer",
            m.latency.clone(),
        );
        r.register(
            format!("{p}sink_event_age_seconds"),
            "The Event's API time (lastTimestamp, eventTime) to the receiver's success answer",
            m.age.clone(),
        );
        r.register(
            format!("{p}template_reloads"),
            "Body templates read from a ConfigMap, by result",
            m.template_reloads.clone(),
        );
        r.register(
            "eventer_events_normal",
            "kube-eventer's counter of Normal Events (without its per-object name label)",
            m.normal.clone(),
        );
        r.register(
            "eventer_events_warning",
            "kube-eventer's counter of Warning Events (without its per-object name label)",
            m.warning.clone(),
        );
        EventerMetrics { registry: r, ..m }
    }

    pub fn sink_init(&self, sink: &str) {
        for f in [&self.delivered, &self.retried, &self.filtered, &self.folded] {
            let _ = f.get_or_create(&l(&[("sink", sink)]));
        }
        self.queue.get_or_create(&l(&[("sink", sink)])).set(0);
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sink.to_string(), SinkHealth::default());
    }

    /// One Event from the API (listed or watched).
    pub fn event_seen(&self, type_: &str, reason: &str, namespace: &str, kind: &str) {
        self.received.get_or_create(&l(&[("type", type_)])).inc();
        let fam = match type_ {
            "Normal" => &self.normal,
            "Warning" => &self.warning,
            _ => return,
        };
        let mut labels = l(&[("reason", reason), ("namespace", namespace), ("kind", kind)]);
        let mut seen = self.reason_series.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains(&labels) {
            if seen.len() >= MAX_REASON_SERIES {
                labels = l(&[
                    ("reason", "_other"),
                    ("namespace", "_other"),
                    ("kind", "_other"),
                ]);
            } else {
                seen.insert(labels.clone());
            }
        }
        drop(seen);
        fam.get_or_create(&labels).inc();
    }

    pub fn skipped(&self, cause: &str) {
        self.skipped.get_or_create(&l(&[("cause", cause)])).inc();
    }

    pub fn inc(&self, fam: &Family<Labels, Counter>, sink: &str) {
        fam.get_or_create(&l(&[("sink", sink)])).inc();
    }

    pub fn failed(&self, sink: &str, cause: &str) {
        self.failed
            .get_or_create(&l(&[("sink", sink), ("cause", cause)]))
            .inc();
        let mut s = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        let h = s.entry(sink.to_string()).or_default();
        h.failing_since.get_or_insert_with(Instant::now);
    }

    pub fn dropped(&self, sink: &str, cause: &str, n: u64) {
        self.dropped
            .get_or_create(&l(&[("sink", sink), ("cause", cause)]))
            .inc_by(n);
    }

    pub fn delivered(&self, sink: &str, latency: Option<Duration>, age: Option<Duration>) {
        self.inc(&self.delivered, sink);
        if let Some(d) = latency {
            self.latency
                .get_or_create(&l(&[("sink", sink)]))
                .observe(d.as_secs_f64());
        }
        if let Some(d) = age {
            self.age
                .get_or_create(&l(&[("sink", sink)]))
                .observe(d.as_secs_f64());
        }
        let mut s = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        let h = s.entry(sink.to_string()).or_default();
        h.failing_since = None;
        h.last_success = Some(Instant::now());
    }

    pub fn queue_len(&self, sink: &str, n: usize) {
        self.queue
            .get_or_create(&l(&[("sink", sink)]))
            .set(n as i64);
    }

    pub fn watch_error(&self) {
        self.watch_errors.inc();
        let now = Instant::now();
        let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        w.0.get_or_insert(now);
        w.1 = Some(now);
    }

    pub fn watch_ok(&self) {
        let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        *w = (None, None);
    }

    /// What is degraded (empty when healthy): a watch failing for longer than `watch_bound`
    /// (errors keep coming: the last within `quiet`), a sink that failed every attempt for
    /// longer than `sink_bound`.
    pub fn degraded(
        &self,
        watch_bound: Duration,
        sink_bound: Duration,
        quiet: Duration,
    ) -> Vec<String> {
        let now = Instant::now();
        let mut out = Vec::new();
        let w = *self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(since), Some(last)) = w {
            let broken = now.saturating_duration_since(since);
            if broken > watch_bound && now.saturating_duration_since(last) < quiet {
                out.push(format!("event watch failing for {}s", broken.as_secs()));
            }
        }
        if !self.ready.load(Ordering::Relaxed)
            && now.saturating_duration_since(self.started) > watch_bound
        {
            out.push(format!(
                "no complete list of events after {}s",
                now.saturating_duration_since(self.started).as_secs()
            ));
        }
        let s = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&String> = s.keys().collect();
        names.sort();
        for name in names {
            if let Some(since) = s[name].failing_since {
                let d = now.saturating_duration_since(since);
                if d > sink_bound {
                    out.push(format!(
                        "sink {name}: every delivery failed for {}s",
                        d.as_secs()
                    ));
                }
            }
        }
        out
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
