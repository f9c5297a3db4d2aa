//! Prometheus metrics (OpenMetrics text via prometheus-client). NPD's `problem_counter` and
//! `problem_gauge` keep their names and labels; nodeprobe's own metrics are prefixed
//! `nodeprobe_`.

use std::sync::Mutex;

use probes::ConditionSpec;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
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
    /// The running log monitors, for `/healthz`.
    log_monitors: Mutex<Vec<std::sync::Arc<probes::logs::MonitorStats>>>,
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
    /// Hook for the kmsg monitor: records read.
    pub kmsg_records_read: Counter,
    /// Hook for the kmsg monitor: records the kernel overwrote before we read them.
    pub kmsg_records_lost: Counter,
    /// Last reason set to 1 per condition type (NPD zeroes the previous reason).
    gauge_reasons: Mutex<std::collections::HashMap<String, String>>,
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
        let kmsg_records_read = Counter::default();
        let kmsg_records_lost = Counter::default();
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
            "nodeprobe_kmsg_records_read",
            "Kernel log records read",
            kmsg_records_read.clone(),
        );
        registry.register(
            "nodeprobe_kmsg_records_lost",
            "Kernel log records overwritten before they were read",
            kmsg_records_lost.clone(),
        );
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
            kmsg_records_read,
            kmsg_records_lost,
            gauge_reasons: Mutex::new(Default::default()),
            log_monitors: Mutex::new(Vec::new()),
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

    /// Initialise `problem_counter{reason}` for a temporary rule's reason.
    /// Watch these log monitors for `/healthz`.
    pub fn watch_log_monitors(&self, stats: Vec<std::sync::Arc<probes::logs::MonitorStats>>) {
        if let Ok(mut m) = self.log_monitors.lock() {
            *m = stats;
        }
    }

    /// Sources of log monitors that started and have since stopped (a dead kernel log
    /// reader must not look healthy, NPD#1168).
    pub fn stopped_log_monitors(&self) -> Vec<String> {
        use std::sync::atomic::Ordering::Relaxed;
        self.log_monitors
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|s| s.ready.load(Relaxed) && !s.running.load(Relaxed))
                    .map(|s| s.source.clone())
                    .collect()
            })
            .unwrap_or_default()
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

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {

    #[test]
    fn a_stopped_log_monitor_is_reported() {
        use std::sync::atomic::Ordering::Relaxed;
        let m = Metrics::new();
        assert!(m.stopped_log_monitors().is_empty());
        let st = std::sync::Arc::new(probes::logs::MonitorStats::new("kernel-monitor"));
        m.watch_log_monitors(vec![st.clone()]);
        assert!(m.stopped_log_monitors().is_empty(), "not started yet");
        st.running.store(true, Relaxed);
        st.ready.store(true, Relaxed);
        assert!(m.stopped_log_monitors().is_empty());
        st.running.store(false, Relaxed);
        assert_eq!(m.stopped_log_monitors(), vec!["kernel-monitor".to_string()]);
    }
    use super::*;

    const SPEC: ConditionSpec = ConditionSpec {
        condition: "InodesPressure",
        healthy_reason: "NodeHasNoInodesPressure",
        healthy_message: "ok",
        problem_reason: "NodeHasInodesPressure",
        problem_event: None,
    };

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
    fn own_metrics_are_exported() {
        let m = Metrics::new();
        m.probe_run("inodes", "ok", 0.002);
        m.event_dropped("kernel-monitor", "TaskHung", "budget");
        m.api_error("patch_node_status");
        m.kmsg_records_read.inc();
        let text = m.render();
        for needle in [
            "nodeprobe_probe_runs_total{probe=\"inodes\",status=\"ok\"} 1",
            "nodeprobe_probe_duration_seconds_count{probe=\"inodes\"} 1",
            "nodeprobe_events_dropped_total{source=\"kernel-monitor\",reason=\"TaskHung\",cause=\"budget\"} 1",
            "nodeprobe_api_request_errors_total{request=\"patch_node_status\"} 1",
            "nodeprobe_kmsg_records_read_total 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
