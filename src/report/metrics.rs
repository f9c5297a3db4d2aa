//! Prometheus metrics (OpenMetrics text via prometheus-client). NPD's `problem_counter` and
//! `problem_gauge` keep their names and labels; nodeprobe's own metrics are prefixed
//! `nodeprobe_`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::logs::MonitorStats;

use crate::report::outbox::Outbox;
use probes::ConditionSpec;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 9))
}

/// Every metric nodeprobe exports. Cheap to share behind an `Arc`; every field is
/// internally synchronised.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The running log monitors: their counters (read at each scrape) and health.
    log_monitors: Arc<LogMonitors>,
    /// The agent's long-running loops (probe schedulers, API writers), for `/livez`.
    loops: Mutex<Vec<(String, tokio::task::AbortHandle)>>,
    /// The event outbox, for its spool's health and metrics.
    spool: Arc<SpoolWatch>,
    /// NPD `problem_counter{reason}`: problem events emitted. Exposed with gauge type so the
    /// series keeps NPD's name (an OpenMetrics counter must end in `_total`).
    pub problem_counter: Family<Labels, Gauge>,
    /// NPD `problem_gauge{reason,type}`: 1 while condition `type` is True with `reason`.
    pub problem_gauge: Family<Labels, Gauge>,
    pub probe_runs: Family<Labels, Counter>,
    pub probe_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pub events_emitted: Family<Labels, Counter>,
    pub events_deduplicated: Counter,
    pub events_dropped: Family<Labels, Counter>,
    pub api_errors: Family<Labels, Counter>,
    pub condition_syncs: Counter,
    /// `nodeprobe_condition{type,status,reason,message}`: 1 for each condition's current
    /// state (one series per type; the previous state's series is removed).
    pub conditions: Family<Labels, Gauge>,
    /// `nodeprobe_oom_kills{pod_namespace}`: OOM kills of pods resolved through the API.
    pub oom_kills: Family<Labels, Counter>,
    /// Last reason set to 1 per condition type (NPD zeroes the previous reason).
    gauge_reasons: Mutex<std::collections::HashMap<String, String>>,
    /// The labels of each condition type's current `nodeprobe_condition` series.
    condition_labels: Mutex<std::collections::HashMap<String, Labels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let problem_counter = Family::<Labels, Gauge>::default();
        let problem_gauge = Family::<Labels, Gauge>::default();
        let probe_runs = Family::<Labels, Counter>::default();
        let probe_duration = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let events_emitted = Family::<Labels, Counter>::default();
        let events_deduplicated = Counter::default();
        let events_dropped = Family::<Labels, Counter>::default();
        let api_errors = Family::<Labels, Counter>::default();
        let condition_syncs = Counter::default();
        let conditions = Family::<Labels, Gauge>::default();
        let oom_kills = Family::<Labels, Counter>::default();
        let log_monitors = Arc::new(LogMonitors::default());
        registry.register(
            "problem_counter",
            "Number of times a specific type of problem has occurred (NPD)",
            problem_counter.clone(),
        );
        registry.register(
            "problem_gauge",
            "Whether a specific type of problem is affecting the node (NPD)",
            problem_gauge.clone(),
        );
        registry.register(
            "nodeprobe_probe_runs",
            "Probe results by probe and condition status",
            probe_runs.clone(),
        );
        registry.register(
            "nodeprobe_probe_duration_seconds",
            "Time one probe run took",
            probe_duration.clone(),
        );
        registry.register(
            "nodeprobe_events_emitted",
            "Events written (created) by source and reason",
            events_emitted.clone(),
        );
        registry.register(
            "nodeprobe_events_deduplicated",
            "Identical events folded into an existing Event's count",
            events_deduplicated.clone(),
        );
        registry.register(
            "nodeprobe_events_dropped",
            "Events not written, by source, reason and cause (budget, queue, api)",
            events_dropped.clone(),
        );
        registry.register(
            "nodeprobe_api_request_errors",
            "Failed Kubernetes API requests by request",
            api_errors.clone(),
        );
        registry.register(
            "nodeprobe_condition_syncs",
            "Successful node status patches",
            condition_syncs.clone(),
        );
        registry.register(
            "nodeprobe_condition",
            "Current state of each condition nodeprobe owns (1 per type; message cut at 512 bytes)",
            conditions.clone(),
        );
        registry.register(
            "nodeprobe_oom_kills",
            "OOM kills of pods on this node by the pod's namespace (pods resolved through the API)",
            oom_kills.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&log_monitors)));
        let spool = Arc::new(SpoolWatch::default());
        registry.register_collector(Box::new(Arc::clone(&spool)));
        Metrics {
            registry,
            problem_counter,
            problem_gauge,
            probe_runs,
            probe_duration,
            events_emitted,
            events_deduplicated,
            events_dropped,
            api_errors,
            condition_syncs,
            conditions,
            oom_kills,
            gauge_reasons: Mutex::new(Default::default()),
            condition_labels: Mutex::new(Default::default()),
            log_monitors,
            loops: Mutex::new(Vec::new()),
            spool,
        }
    }

    /// NPD initialises `problem_counter{reason}` and `problem_gauge{type,reason}` to 0 for
    /// every rule; do the same for every condition of the enabled probes.
    pub fn init_conditions(&self, specs: &[ConditionSpec]) {
        for s in specs {
            self.problem_counter
                .get_or_create(&labels(&[("reason", s.problem_reason)]))
                .set(0);
            if let Some(ev) = s.problem_event {
                self.problem_counter
                    .get_or_create(&labels(&[("reason", ev)]))
                    .set(0);
            }
            self.problem_gauge
                .get_or_create(&labels(&[
                    ("reason", s.problem_reason),
                    ("type", s.condition),
                ]))
                .set(0);
        }
    }

    /// Export these log monitors' counters and watch them for `/livez` and `/healthz`.
    pub fn watch_log_monitors(&self, stats: Vec<Arc<MonitorStats>>) {
        if let Ok(mut m) = self.log_monitors.0.lock() {
            *m = stats;
        }
    }

    /// Export the outbox's pending events and spool errors; a hung spool write fails
    /// `/healthz`.
    pub fn watch_spool(&self, outbox: Arc<Outbox>) {
        if let Ok(mut s) = self.spool.0.lock() {
            *s = Some(outbox);
        }
    }

    /// Watch these loops for `/livez`: one that ends while the agent runs is dead.
    pub fn watch_loops(&self, loops: impl IntoIterator<Item = (String, tokio::task::AbortHandle)>) {
        if let Ok(mut l) = self.loops.lock() {
            l.extend(loops);
        }
    }

    /// What makes the agent not alive (a restart helps): a log monitor that stopped or whose
    /// loop has not moved for [`HUNG_AFTER`], a loop that ended. Empty when alive.
    pub fn dead(&self) -> Vec<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = Vec::new();
        for s in self.log_monitors.list() {
            if s.ready.load(Relaxed) && !s.running.load(Relaxed) {
                out.push(format!("log monitor {} stopped", s.source));
            } else if s.running.load(Relaxed)
                && s.silent_for() >= HUNG_AFTER
                && s.writing_for().is_none()
            {
                // (a monitor waiting for its state directory is listed by /healthz: a
                // restart would not make the disk answer)
                out.push(format!(
                    "log monitor {} hung: no progress for {}s",
                    s.source,
                    s.silent_for().as_secs()
                ));
            }
        }
        if let Ok(l) = self.loops.lock() {
            for (name, h) in l.iter() {
                if h.is_finished() {
                    out.push(format!("{name} stopped"));
                }
            }
        }
        out
    }

    /// Every degraded component (what `/healthz` lists): what [`Metrics::dead`] lists, and
    /// log sources that were never readable or have been unreadable for [`SOURCE_DOWN_AFTER`].
    pub fn degraded(&self) -> Vec<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = self.dead();
        let stuck = |what: String, d: Option<Duration>| {
            d.filter(|d| *d >= WRITE_STUCK_AFTER).map(|d| {
                format!(
                    "{what}: a write to the state directory has not returned for {}s",
                    d.as_secs()
                )
            })
        };
        if let Ok(Some(o)) = self.spool.0.lock().as_deref() {
            out.extend(stuck("event spool".into(), o.spool_stats.writing_for()));
        }
        for s in self.log_monitors.list() {
            if !s.running.load(Relaxed) {
                continue;
            }
            out.extend(stuck(format!("log monitor {}", s.source), s.writing_for()));
            match s.down_for() {
                Some((_, false)) => out.push(format!(
                    "log source {} never readable: {}",
                    s.source,
                    s.problem()
                )),
                Some((d, true)) if d >= SOURCE_DOWN_AFTER => out.push(format!(
                    "log source {} unreadable for {}s: {}",
                    s.source,
                    d.as_secs(),
                    s.problem()
                )),
                _ => {}
            }
        }
        out
    }

    pub fn init_reason(&self, reason: &str) {
        self.problem_counter
            .get_or_create(&labels(&[("reason", reason)]))
            .set(0);
    }

    pub fn problem(&self, reason: &str) {
        self.problem_counter
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// Set `problem_gauge` for a condition: 1 with `reason` when True, else 0.
    pub fn condition(&self, type_: &str, reason: &str, is_true: bool) {
        let mut last = self.gauge_reasons.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = last.get(type_) {
            self.problem_gauge
                .get_or_create(&labels(&[("reason", prev), ("type", type_)]))
                .set(0);
        }
        if is_true {
            self.problem_gauge
                .get_or_create(&labels(&[("reason", reason), ("type", type_)]))
                .set(1);
            last.insert(type_.to_string(), reason.to_string());
        } else {
            last.remove(type_);
        }
    }

    /// Set `nodeprobe_condition` for a condition: one series with its current status, reason
    /// and message (cut at [`MAX_MESSAGE_LABEL`] bytes); the previous one is removed.
    pub fn condition_state(&self, type_: &str, status: &str, reason: &str, message: &str) {
        let mut cut = message.len().min(MAX_MESSAGE_LABEL);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let now = labels(&[
            ("type", type_),
            ("status", status),
            ("reason", reason),
            ("message", &message[..cut]),
        ]);
        let mut current = self
            .condition_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(prev) = current.get(type_) {
            if *prev == now {
                return;
            }
            self.conditions.remove(prev);
        }
        self.conditions.get_or_create(&now).set(1);
        current.insert(type_.to_string(), now);
    }

    /// One OOM-killed pod in `namespace`.
    pub fn oom_kill(&self, namespace: &str) {
        self.oom_kills
            .get_or_create(&labels(&[("pod_namespace", namespace)]))
            .inc();
    }

    pub fn probe_run(&self, probe: &str, status: &str, seconds: f64) {
        self.probe_runs
            .get_or_create(&labels(&[("probe", probe), ("status", status)]))
            .inc();
        self.probe_duration
            .get_or_create(&labels(&[("probe", probe)]))
            .observe(seconds);
    }

    pub fn event_emitted(&self, source: &str, reason: &str) {
        self.events_emitted
            .get_or_create(&labels(&[("source", source), ("reason", reason)]))
            .inc();
    }

    pub fn event_dropped(&self, source: &str, reason: &str, cause: &str) {
        self.events_dropped
            .get_or_create(&labels(&[
                ("source", source),
                ("reason", reason),
                ("cause", cause),
            ]))
            .inc();
    }

    pub fn api_error(&self, request: &str) {
        self.api_errors
            .get_or_create(&labels(&[("request", request)]))
            .inc();
    }

    /// OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Longest condition message exported as a label value (bytes).
pub const MAX_MESSAGE_LABEL: usize = 512;
/// A log monitor whose loop shows no progress this long is hung (`/livez` fails).
pub const HUNG_AFTER: Duration = Duration::from_secs(120);
/// A log source that was readable and has been unreadable this long fails `/healthz`.
pub const SOURCE_DOWN_AFTER: Duration = probes::logs::driver::OUTAGE_AFTER;
/// A state directory write that has not returned this long fails `/healthz`.
pub const WRITE_STUCK_AFTER: Duration = Duration::from_secs(30);

/// The outbox's spool, read at each scrape.
#[derive(Debug, Default)]
struct SpoolWatch(Mutex<Option<Arc<Outbox>>>);

impl Collector for SpoolWatch {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(o) = self.0.lock().ok().and_then(|o| o.clone()) else {
            return Ok(());
        };
        let m = encoder.encode_descriptor(
            "nodeprobe_events_pending",
            "Event writes waiting for the API server (spooled in the state directory)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(o.len() as i64).encode(m)?;
        let m = encoder.encode_descriptor(
            "nodeprobe_event_spool_errors",
            "Failed writes of the event spool",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(o.spool_stats.errors.load(Relaxed)).encode(m)
    }
}

/// The log monitors' counters, read at each scrape (a prometheus-client collector, no
/// polling loop): one series per source.
/// One per-source counter: name, help, how to read it.
type Series = (&'static str, &'static str, fn(&MonitorStats) -> u64);

#[derive(Debug, Default)]
struct LogMonitors(Mutex<Vec<Arc<MonitorStats>>>);

impl LogMonitors {
    fn list(&self) -> Vec<Arc<MonitorStats>> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Collector for LogMonitors {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let list = self.list();
        let mut m = encoder.encode_descriptor(
            "nodeprobe_log_source_up",
            "Whether the log monitor can read its source (1) or not (0)",
            None,
            MetricType::Gauge,
        )?;
        for s in &list {
            let labels = [("source", s.source.as_str())];
            ConstGauge::new(i64::from(s.is_up())).encode(m.encode_family(&labels)?)?;
        }
        let counters: [Series; 7] = [
            ("nodeprobe_log_records_read", "Log records read, by source", |s| {
                s.records_read.load(Relaxed)
            }),
            (
                "nodeprobe_log_records_lost",
                "Log records lost before they were read (kernel ring overwritten, journal or file rotated away)",
                |s| s.records_lost.load(Relaxed),
            ),
            ("nodeprobe_log_read_errors", "Failed reads or opens of the source", |s| {
                s.read_errors.load(Relaxed)
            }),
            ("nodeprobe_log_parse_errors", "Records that could not be parsed", |s| {
                s.parse_errors.load(Relaxed)
            }),
            (
                "nodeprobe_log_state_errors",
                "Failed reads or writes of the monitor's state file",
                |s| s.state_errors.load(Relaxed),
            ),
            ("nodeprobe_log_overruns", "Times the reader fell behind the kernel ring", |s| {
                s.overruns.load(Relaxed)
            }),
            ("nodeprobe_log_rule_matches", "Rule matches (events and condition matches)", |s| {
                s.matches.load(Relaxed)
            }),
        ];
        for (name, help, get) in counters {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &list {
                let labels = [("source", s.source.as_str())];
                ConstCounter::new(get(s)).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {

    #[test]
    fn a_stopped_or_unreadable_log_monitor_is_reported() {
        use std::sync::atomic::Ordering::Relaxed;
        let m = Metrics::new();
        assert!(m.dead().is_empty() && m.degraded().is_empty());
        let st = Arc::new(MonitorStats::new("kernel-monitor"));
        m.watch_log_monitors(vec![st.clone()]);
        assert!(m.degraded().is_empty(), "not started yet");
        st.running.store(true, Relaxed);
        st.mark_down("cannot open /dev/kmsg: EPERM");
        assert!(
            m.dead().is_empty(),
            "an unreadable source is not a dead agent"
        );
        assert_eq!(
            m.degraded(),
            vec![
                "log source kernel-monitor never readable: cannot open /dev/kmsg: EPERM"
                    .to_string()
            ]
        );
        st.mark_up(true);
        st.ready.store(true, Relaxed);
        assert!(m.degraded().is_empty());
        // down again: degraded only after a bound (a blip is not an outage)
        st.mark_down("read failed");
        assert!(m.degraded().is_empty());
        st.running.store(false, Relaxed);
        assert_eq!(
            m.dead(),
            vec!["log monitor kernel-monitor stopped".to_string()]
        );
        assert_eq!(m.degraded(), m.dead());
    }

    #[tokio::test]
    async fn an_ended_loop_is_dead() {
        let m = Metrics::new();
        let t = tokio::spawn(async {});
        m.watch_loops([("probe inodes".to_string(), t.abort_handle())]);
        t.await.unwrap();
        assert_eq!(m.dead(), vec!["probe inodes stopped".to_string()]);
    }

    #[test]
    fn log_counters_are_exported_per_source() {
        use std::sync::atomic::Ordering::Relaxed;
        let m = Metrics::new();
        let (a, b) = (
            Arc::new(MonitorStats::new("kernel-monitor")),
            Arc::new(MonitorStats::new("docker-monitor")),
        );
        a.records_read.fetch_add(5, Relaxed);
        a.mark_up(true);
        b.read_errors.fetch_add(2, Relaxed);
        b.parse_errors.fetch_add(3, Relaxed);
        m.watch_log_monitors(vec![a.clone(), b]);
        a.records_lost.fetch_add(7, Relaxed); // read at scrape time, no copy
        let text = m.render();
        for needle in [
            "nodeprobe_log_source_up{source=\"kernel-monitor\"} 1",
            "nodeprobe_log_source_up{source=\"docker-monitor\"} 0",
            "nodeprobe_log_records_read_total{source=\"kernel-monitor\"} 5",
            "nodeprobe_log_records_lost_total{source=\"kernel-monitor\"} 7",
            "nodeprobe_log_read_errors_total{source=\"docker-monitor\"} 2",
            "nodeprobe_log_parse_errors_total{source=\"docker-monitor\"} 3",
            "# TYPE nodeprobe_log_state_errors counter",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
    use super::*;

    const SPEC: ConditionSpec = ConditionSpec::new(
        "InodesPressure",
        "NodeHasNoInodesPressure",
        "ok",
        "NodeHasInodesPressure",
    );

    #[test]
    fn npd_metrics_start_at_zero_and_keep_one_reason_per_type() {
        let m = Metrics::new();
        m.init_conditions(&[SPEC]);
        let text = m.render();
        assert!(
            text.contains("problem_counter{reason=\"NodeHasInodesPressure\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "problem_gauge{reason=\"NodeHasInodesPressure\",type=\"InodesPressure\"} 0"
            ),
            "{text}"
        );
        m.condition("InodesPressure", "NodeHasInodesPressure", true);
        m.condition("InodesPressure", "Other", true);
        m.problem("NodeHasInodesPressure");
        let text = m.render();
        assert!(text
            .contains("problem_gauge{reason=\"NodeHasInodesPressure\",type=\"InodesPressure\"} 0"));
        assert!(text.contains("problem_gauge{reason=\"Other\",type=\"InodesPressure\"} 1"));
        assert!(text.contains("problem_counter{reason=\"NodeHasInodesPressure\"} 1"));
        m.condition("InodesPressure", "NodeHasNoInodesPressure", false);
        assert!(m
            .render()
            .contains("problem_gauge{reason=\"Other\",type=\"InodesPressure\"} 0"));
    }

    #[test]
    fn condition_state_keeps_one_series_per_type() {
        let m = Metrics::new();
        m.condition_state("InodesPressure", "False", "NodeHasNoInodesPressure", "ok");
        m.condition_state(
            "InodesPressure",
            "True",
            "NodeHasInodesPressure",
            "95% \"used\"",
        );
        m.condition_state("NTPProblem", "Unknown", "NTPIsUnknown", &"é".repeat(400));
        let text = m.render();
        assert!(
            text.contains("nodeprobe_condition{type=\"InodesPressure\",status=\"True\",reason=\"NodeHasInodesPressure\",message=\"95% \\\"used\\\"\"} 1"),
            "{text}"
        );
        assert!(!text.contains("NodeHasNoInodesPressure"), "{text}");
        let ntp = text
            .lines()
            .find(|l| l.contains("NTPIsUnknown"))
            .expect("NTP series");
        assert!(
            ntp.contains(&format!("message=\"{}\"", "é".repeat(256))),
            "{ntp}"
        );
        m.oom_kill("web");
        m.oom_kill("web");
        assert!(m
            .render()
            .contains("nodeprobe_oom_kills_total{pod_namespace=\"web\"} 2"));
    }

    #[test]
    fn own_metrics_are_exported() {
        let m = Metrics::new();
        m.probe_run("inodes", "ok", 0.002);
        m.event_dropped("kernel-monitor", "TaskHung", "budget");
        m.api_error("patch_node_status");
        let text = m.render();
        for needle in [
            "nodeprobe_probe_runs_total{probe=\"inodes\",status=\"ok\"} 1",
            "nodeprobe_probe_duration_seconds_count{probe=\"inodes\"} 1",
            "nodeprobe_events_dropped_total{source=\"kernel-monitor\",reason=\"TaskHung\",cause=\"budget\"} 1",
            "nodeprobe_api_request_errors_total{request=\"patch_node_status\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
