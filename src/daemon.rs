//! Daemon mode: every probe at its (jittered) interval under its deadline, log findings
//! from the monitors, one state keeper, then the reporters (Kubernetes API, metrics, HTTP).
//!
//! ```text
//! probe tasks ──ProbeRun──┐
//!                         ├─▶ state keeper ──conditions (watch)──▶ ConditionWriter ─▶ PATCH nodes/status
//! log monitors ─LogItem───┘         └──EventOut (outbox, spool)──▶ EventWriter ─────▶ Events
//! ```
//!
//! Everything on the runtime's one thread only computes or waits: log monitors read and
//! persist on threads of their own, the event spool has its thread, probes do their host
//! I/O in the blocking pool.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use probes::findings::LogItem;
use probes::{ConditionSpec, ConditionStatus, Outcome, Probe, ProbeRun};
use tokio::sync::{mpsc, watch};

use crate::cli::Cli;
use crate::report::http::{self, Server, Shared};
use crate::report::kube::{self as kreport, ConditionWriter, EventWriter, KubeError};
use crate::report::metrics::Metrics;
use crate::report::outbox::{Outbox, SPOOL_FILE};
use crate::state::{Budget, Condition, Output, StateConfig, StateKeeper, Thresholds};

/// Capacity of the channel from probes and log monitors to the state keeper.
pub const FINDINGS_CAPACITY: usize = 256;
/// Events waiting for the API server beyond this are dropped (and counted); count updates
/// fold into a waiting write of the same Event and take no room.
pub const EVENT_QUEUE: usize = 1000;

/// Condition types the kmsg/journald rules own (used for seeding and stale removal).
pub const LOG_CONDITION_TYPES: &[&str] = &["KernelDeadlock", "ReadonlyFilesystem"];

/// Errors of daemon mode.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("bad --{flag} entry {entry:?}: expected N or probe=N with N >= 1")]
    Threshold { flag: &'static str, entry: String },
    #[error(transparent)]
    Override(#[from] crate::npd::OverrideError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("log monitors: {0}")]
    Logs(#[from] probes::logs::LogError),
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Kubernetes side of daemon mode.
#[derive(Debug, Clone)]
pub struct KubeSettings {
    pub kubeconfig: Option<PathBuf>,
    /// NPD's `--apiserver-override` (server, credentials, TLS verification).
    pub server: kreport::ServerOverride,
    pub event_namespace: String,
    pub heartbeat: Duration,
    pub wait_timeout: Duration,
    pub remove_stale: bool,
    /// Where undelivered events are spooled (`<state-dir>/events-spool.json`); `None`: not.
    pub spool: Option<PathBuf>,
}

/// Everything daemon mode needs.
pub struct DaemonConfig {
    pub node: String,
    pub probes: Vec<Box<dyn Probe>>,
    /// `None`: `--enable-k8s-exporter=false`.
    pub kube: Option<KubeSettings>,
    pub status_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub state: StateConfig,
    /// Condition types nodeprobe owns but does not run (for `--remove-stale-conditions`).
    pub stale_types: Vec<String>,
    /// Condition types fed by log monitors (seeded from the Node at startup).
    pub log_types: Vec<String>,
    pub shutdown_grace: Duration,
}

/// Parse `--failure-threshold`/`--recovery-threshold` entries (`N` or `probe=N`).
pub fn parse_thresholds(
    flag: &'static str,
    entries: &[String],
) -> Result<(Option<u32>, HashMap<String, u32>), DaemonError> {
    let mut default = None;
    let mut per = HashMap::new();
    for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let bad = || DaemonError::Threshold {
            flag,
            entry: e.to_string(),
        };
        let (probe, n) = match e.split_once('=') {
            Some((p, n)) => (Some(p.trim()), n.trim()),
            None => (None, e),
        };
        let n: u32 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        match probe {
            Some(p) if !p.is_empty() => {
                per.insert(p.to_string(), n);
            }
            Some(_) => return Err(bad()),
            None => default = Some(n),
        }
    }
    Ok((default, per))
}

impl DaemonConfig {
    /// Build the daemon configuration from the command line.
    pub fn from_cli(
        cli: &Cli,
        probes: Vec<Box<dyn Probe>>,
        all_specs: &[ConditionSpec],
    ) -> Result<Self, DaemonError> {
        let d = &cli.daemon;
        let (fd, fper) = parse_thresholds("failure-threshold", &d.failure_threshold)?;
        let (rd, rper) = parse_thresholds("recovery-threshold", &d.recovery_threshold)?;
        let default_thresholds = Thresholds {
            failure: fd.unwrap_or(1),
            recovery: rd.unwrap_or(1),
        };
        let mut probe_thresholds = HashMap::new();
        for name in fper.keys().chain(rper.keys()) {
            probe_thresholds.insert(
                name.clone(),
                Thresholds {
                    failure: fper
                        .get(name)
                        .copied()
                        .unwrap_or(default_thresholds.failure),
                    recovery: rper
                        .get(name)
                        .copied()
                        .unwrap_or(default_thresholds.recovery),
                },
            );
        }
        let running: BTreeSet<&str> = probes
            .iter()
            .flat_map(|p| p.conditions().iter().map(|c| c.condition))
            .collect();
        let stale_types = all_specs
            .iter()
            .map(|s| s.condition)
            .filter(|c| !running.contains(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        let addr = |ip, port: u16| (port != 0).then(|| SocketAddr::new(ip, port));
        let over = match cli.npd.apiserver_override.as_deref().map(str::trim) {
            Some(o) if !o.is_empty() => crate::npd::parse_apiserver_override(o)?,
            _ => crate::npd::ApiServerOverride {
                in_cluster: true,
                ..Default::default()
            },
        };
        Ok(DaemonConfig {
            node: cli.node_name(),
            probes,
            kube: d.enable_k8s_exporter.then(|| KubeSettings {
                kubeconfig: d
                    .kubeconfig
                    .clone()
                    .or_else(|| over.kubeconfig.clone())
                    .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
                    .filter(|p| !p.as_os_str().is_empty()),
                server: kreport::ServerOverride {
                    server: over.server.clone(),
                    no_credentials: !over.in_cluster && over.kubeconfig.is_none(),
                    insecure: over.insecure,
                },
                // NPD's default is "" (the default namespace).
                event_namespace: match d.event_namespace.trim() {
                    "" => "default".to_string(),
                    ns => ns.to_string(),
                },
                heartbeat: d.heartbeat_period,
                wait_timeout: d.apiserver_wait_timeout,
                remove_stale: d.remove_stale_conditions,
                spool: Some(cli.log_monitors.state_dir.join(SPOOL_FILE)),
            }),
            status_addr: addr(d.address, d.port),
            metrics_addr: addr(d.prometheus_address, d.prometheus_port),
            state: StateConfig {
                default_thresholds,
                probe_thresholds,
                dedup_window: d.event_dedup_window,
                budget: Budget {
                    burst: d.event_budget_burst,
                    refill: d.event_budget_refill,
                },
            },
            stale_types,
            log_types: LOG_CONDITION_TYPES.iter().map(|s| s.to_string()).collect(),
            shutdown_grace: d.shutdown_grace,
        })
    }
}

/// A bounded channel for log monitors: give the sender to the monitors and the receiver
/// to [`run`].
pub fn log_channel() -> (mpsc::Sender<LogItem>, mpsc::Receiver<LogItem>) {
    mpsc::channel(FINDINGS_CAPACITY)
}

/// The log monitors of daemon mode: rule files already loaded and validated.
pub struct LogMonitorSetup {
    pub host: probes::HostPaths,
    pub configs: Vec<probes::logs::MonitorConfig>,
    pub options: probes::logs::MonitorOptions,
}

/// Daemon mode with the kernel/journal/file log monitors feeding the state keeper. The
/// condition types the rule files declare are owned (seeded from the Node, kept across
/// restarts); every rule reason starts at 0 in `problem_counter`, as in NPD. A log source
/// that cannot be read never stops the agent: its monitor reports its conditions `Unknown`,
/// an event, `nodeprobe_log_source_up 0` and a failing `/healthz` (NPD's monitor dies
/// silently instead, NPD#1168), and the probes keep running.
pub fn run_blocking_with_logs(
    mut config: DaemonConfig,
    metrics: Arc<Metrics>,
    logs: LogMonitorSetup,
) -> Result<i32, DaemonError> {
    let mut types: Vec<String> = Vec::new();
    for c in &logs.configs {
        for d in c.declared_conditions() {
            if !types.contains(&d.condition) {
                types.push(d.condition.clone());
            }
        }
        for r in c.reasons() {
            metrics.init_reason(r);
        }
    }
    config.log_types = types;
    block_on_then_release(runtime()?, async move {
        let (tx, rx) = watch::channel(false);
        let signals = tokio::spawn(wait_for_signal(tx));
        let (ltx, lrx) = log_channel();
        let LogMonitorSetup {
            host,
            configs,
            options,
        } = logs;
        let monitors = probes::logs::spawn_monitors(host, configs, options, ltx)?;
        for (origin, why) in &monitors.skipped {
            tracing::warn!(monitor = %origin, "log monitor not started: {why}");
        }
        metrics.watch_log_monitors(monitors.stats.clone());
        let trim = tokio::spawn(release_code_pages_periodically());
        let r = run(config, Some(lrx), metrics, rx).await;
        trim.abort();
        // Persist cursors and log-condition state before exiting.
        let _ = tokio::time::timeout(Duration::from_secs(2), monitors.shutdown()).await;
        signals.abort();
        r.map(|_| crate::exit::OK)
    })
}

/// Once the agent has settled (30 s), and every 10 minutes after, let the kernel take back
/// the code pages only start-up or rare paths used (`probes::release_code_pages`); what
/// the steady state uses is faulted back in. Keeps the resident set at the working set.
async fn release_code_pages_periodically() {
    tokio::time::sleep(Duration::from_secs(30)).await;
    loop {
        match probes::release_code_pages() {
            Ok(bytes) => tracing::debug!(bytes, "released code pages"),
            Err(e) => {
                tracing::debug!(error = %e, "cannot release code pages; not trying again");
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

/// Run the agent to completion, then drop the runtime without waiting for blocking threads
/// stuck in the kernel (a statvfs on a hung NFS mount): exit promptly on SIGTERM.
fn block_on_then_release<F: std::future::Future>(rt: tokio::runtime::Runtime, f: F) -> F::Output {
    let out = rt.block_on(f);
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

fn runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
        .map_err(DaemonError::Runtime)
}

/// Set `tx` to true on the first SIGTERM or SIGINT.
pub async fn wait_for_signal(tx: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received, shutting down");
    let _ = tx.send(true);
}

fn jitter(seed: &mut u64, d: Duration, fraction: f64) -> Duration {
    // xorshift64*: good enough to spread probe schedules.
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    let r = (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(1.0 + fraction * (2.0 * r - 1.0))
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ok { .. } => "ok",
        Outcome::Problem { .. } => "problem",
        Outcome::Unknown { .. } => "unknown",
        Outcome::NotApplicable { .. } => "not_applicable",
    }
}

enum Input {
    Probe(ProbeRun),
    Log(LogItem),
}

/// Run daemon mode until `shutdown` turns true, then flush pending condition updates
/// (bounded by `shutdown_grace`) and return.
pub async fn run(
    config: DaemonConfig,
    logs: Option<mpsc::Receiver<LogItem>>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let DaemonConfig {
        node,
        probes,
        kube,
        status_addr,
        metrics_addr,
        state,
        stale_types,
        log_types,
        shutdown_grace,
    } = config;
    let specs: Vec<ConditionSpec> = probes
        .iter()
        .flat_map(|p| p.conditions().to_vec())
        .collect();
    metrics.init_conditions(&specs);

    let mut keeper = StateKeeper::new(node.clone(), state);
    let ready = Arc::new(AtomicBool::new(kube.is_none()));
    let (cond_tx, cond_rx) = watch::channel(Vec::<Condition>::new());

    let shared = Shared {
        metrics: metrics.clone(),
        ready: ready.clone(),
        conditions: cond_rx.clone(),
    };
    let mut servers = Vec::new();
    if let Some(addr) = status_addr {
        let (local, h) =
            http::serve(addr, Server::Status, shared.clone(), shutdown.clone()).await?;
        tracing::info!(%local, "status endpoints listening");
        servers.push(h);
    }
    if let Some(addr) = metrics_addr {
        let (local, h) =
            http::serve(addr, Server::Metrics, shared.clone(), shutdown.clone()).await?;
        tracing::info!(%local, "metrics endpoint listening");
        servers.push(h);
    }

    // Kubernetes: client, the Node (uid and our conditions), writers.
    let mut writer_shutdown_tx = None;
    let mut writers = Vec::new();
    let mut outbox: Option<Arc<Outbox>> = None;
    if let Some(k) = &kube {
        let client = kreport::client_with(k.kubeconfig.as_deref(), &k.server).await?;
        let info = wait_for_node(&client, &node, k.wait_timeout, &metrics, shutdown.clone()).await;
        let owned: BTreeSet<&str> = specs
            .iter()
            .map(|s| s.condition)
            .chain(log_types.iter().map(String::as_str))
            .collect();
        let (uid, remove) = match &info {
            Some(info) => {
                keeper.seed(
                    info.conditions
                        .iter()
                        .filter(|c| owned.contains(c.type_.as_str()))
                        .cloned(),
                );
                let remove: Vec<String> = if k.remove_stale {
                    info.conditions
                        .iter()
                        .filter(|c| stale_types.contains(&c.type_))
                        .map(|c| c.type_.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                let uid = if info.uid.is_empty() {
                    node.clone()
                } else {
                    info.uid.clone()
                };
                (uid, remove)
            }
            None => (node.clone(), Vec::new()),
        };
        let (wtx, wrx) = watch::channel(false);
        writer_shutdown_tx = Some(wtx);
        let cw = ConditionWriter {
            node: node.clone(),
            heartbeat: k.heartbeat,
            remove,
        };
        writers.push(tokio::spawn(cw.run(
            client.clone(),
            cond_rx.clone(),
            metrics.clone(),
            ready.clone(),
            wrx.clone(),
        )));
        let ob = Outbox::new(EVENT_QUEUE, k.spool.clone());
        metrics.watch_spool(Arc::clone(&ob));
        outbox = Some(Arc::clone(&ob));
        let ew = EventWriter {
            node: node.clone(),
            node_uid: uid,
            namespace: k.event_namespace.clone(),
        };
        writers.push(tokio::spawn(ew.run(client, ob, metrics.clone(), wrx)));
        metrics.watch_loops([
            ("condition writer".to_string(), writers[0].abort_handle()),
            ("event writer".to_string(), writers[1].abort_handle()),
        ]);
    }

    // Probes.
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(FINDINGS_CAPACITY);
    let mut probe_tasks = Vec::new();
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9)
        | 1;
    for (i, probe) in probes.into_iter().enumerate() {
        let tx = in_tx.clone();
        let probe: Arc<dyn Probe> = Arc::from(probe);
        let name = format!("probe {}", probe.name());
        let mut s = seed.wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
        seed = seed.rotate_left(7);
        let mut stop = shutdown.clone();
        probe_tasks.push(tokio::spawn(async move {
            // Stagger the first runs a little so they do not all start at once.
            tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
            // Does not start a check while a blocking call of an earlier one is stuck.
            let mut runner = probes::PeriodicProbe::new(Arc::clone(&probe));
            loop {
                let run = runner.run().await;
                if tx.send(Input::Probe(run)).await.is_err() {
                    return;
                }
                let wait = jitter(&mut s, probe.interval(), 0.1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }));
        if let Some(t) = probe_tasks.last() {
            metrics.watch_loops([(name, t.abort_handle())]);
        }
    }
    // Log monitors.
    let log_task = logs.map(|mut rx| {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if tx.send(Input::Log(f)).await.is_err() {
                    return;
                }
            }
        })
    });
    drop(in_tx);

    // The state keeper loop.
    let mut stop = shutdown.clone();
    loop {
        let wake = keeper.next_wakeup().unwrap_or(Duration::from_secs(3600));
        let input = tokio::select! {
            i = in_rx.recv() => i,
            _ = tokio::time::sleep(wake) => {
                let out = keeper.tick(SystemTime::now());
                apply(&out, &keeper, &metrics, &cond_tx, outbox.as_deref());
                continue;
            }
            _ = stop.changed() => break,
        };
        let Some(input) = input else {
            // Every producer is gone.
            let _ = stop.changed().await;
            break;
        };
        let now = SystemTime::now();
        let out = match input {
            Input::Probe(run) => {
                let secs = run.duration.as_secs_f64();
                for f in &run.findings {
                    metrics.probe_run(run.probe, outcome_label(&f.outcome), secs);
                }
                keeper.on_probe_run(&run, now)
            }
            Input::Log(LogItem::Finding(f)) => keeper.on_log_finding(&f, now),
            Input::Log(LogItem::Durable(ack)) => {
                // everything before it is applied: durable once the spool holds it
                match &outbox {
                    Some(o) => o.ack_when_durable(ack),
                    None => ack.done(),
                }
                continue;
            }
        };
        apply(&out, &keeper, &metrics, &cond_tx, outbox.as_deref());
    }

    // Shutdown: stop producers, fold in what is already queued, flush the writers.
    for t in &probe_tasks {
        t.abort();
    }
    if let Some(t) = &log_task {
        t.abort();
    }
    while let Ok(input) = in_rx.try_recv() {
        let now = SystemTime::now();
        let out = match input {
            Input::Probe(run) => keeper.on_probe_run(&run, now),
            Input::Log(LogItem::Finding(f)) => keeper.on_log_finding(&f, now),
            // not confirmed: the monitor keeps its position and reads the line again
            Input::Log(LogItem::Durable(_)) => continue,
        };
        apply(&out, &keeper, &metrics, &cond_tx, outbox.as_deref());
    }
    let deadline = Instant::now() + shutdown_grace;
    if let Some(o) = &outbox {
        // Give the writer the grace period to deliver what is queued, then stop it.
        let _ = tokio::time::timeout_at(deadline.into(), o.drained()).await;
    }
    if let Some(tx) = writer_shutdown_tx {
        let _ = tx.send(true);
        for w in writers {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, w).await.is_err() {
                tracing::warn!("a writer did not finish within the shutdown grace period");
            }
        }
    }
    if let Some(o) = outbox {
        let left = o.len();
        if left > 0 && !o.spooled() {
            tracing::warn!(
                events = left,
                "events not delivered before shutdown are dropped"
            );
        } else if left > 0 {
            tracing::info!(
                events = left,
                "events not delivered yet stay in the spool for the next start"
            );
        }
        o.close();
    }
    for s in servers {
        s.abort();
    }
    Ok(())
}

/// Poll `GET node` until it answers, shutdown, or `timeout` (NPD waits the same way).
async fn wait_for_node(
    client: &kube::Client,
    node: &str,
    timeout: Duration,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> Option<kreport::NodeInfo> {
    let deadline = Instant::now() + timeout;
    loop {
        match kreport::get_node(client, node).await {
            Ok(info) => return Some(info),
            Err(e) => {
                metrics.api_error("get_node");
                tracing::warn!(error = %e, node, "cannot read the Node yet");
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(node, "going on without the Node's current conditions");
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

fn apply(
    out: &Output,
    keeper: &StateKeeper,
    metrics: &Metrics,
    cond_tx: &watch::Sender<Vec<Condition>>,
    outbox: Option<&Outbox>,
) {
    for r in &out.problems {
        metrics.problem(r);
    }
    for (source, reason) in &out.dropped {
        metrics.event_dropped(source, reason, "budget");
    }
    if out.deduplicated > 0 {
        metrics.events_deduplicated.inc_by(out.deduplicated);
    }
    if out.conditions_changed {
        let conditions = keeper.conditions();
        for c in &conditions {
            metrics.condition(&c.type_, &c.reason, c.status == ConditionStatus::True);
            metrics.condition_state(&c.type_, c.status.as_str(), &c.reason, &c.message);
        }
        cond_tx.send_replace(conditions);
    }
    for ev in &out.events {
        match outbox {
            Some(o) => {
                if let Some(old) = o.push(ev.clone()) {
                    metrics.event_dropped(&old.source, &old.reason, "queue");
                }
            }
            None => {
                // No API server: the event only shows in the logs and metrics.
                if !ev.update {
                    metrics.event_emitted(&ev.source, &ev.reason);
                }
                tracing::info!(type_ = ev.type_.as_str(), source = %ev.source, reason = %ev.reason,
                    message = %ev.message, count = ev.count, "event");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (d, per) = parse_thresholds("failure-threshold", &s(&["2", "inodes=3"])).unwrap();
        assert_eq!(d, Some(2));
        assert_eq!(per.get("inodes"), Some(&3));
        assert!(parse_thresholds("x", &s(&["0"])).is_err());
        assert!(parse_thresholds("x", &s(&["=3"])).is_err());
        assert!(parse_thresholds("x", &s(&["inodes=x"])).is_err());
        let e = parse_thresholds("failure-threshold", &s(&["a=0"])).unwrap_err();
        assert!(e.to_string().contains("--failure-threshold"));
    }

    #[test]
    fn config_from_the_command_line() {
        use clap::Parser;
        let cli = Cli::parse_from([
            "nodeprobe",
            "--hostname-override",
            "n9",
            "--failure-threshold",
            "2,inodes=3",
            "--recovery-threshold",
            "pid-pressure=4",
            "--port",
            "0",
            "--enable-k8s-exporter=false",
        ]);
        let all = [probes::inodes::CONDITION, probes::pid_pressure::CONDITION];
        let host = probes::HostPaths::default();
        let probes = probes::registry::build(&host, &cli.probe_configs, &["inodes"]);
        let c = DaemonConfig::from_cli(&cli, probes, &all).unwrap();
        assert_eq!(c.node, "n9");
        assert!(c.kube.is_none());
        assert!(c.status_addr.is_none());
        assert_eq!(c.metrics_addr, Some("127.0.0.1:20257".parse().unwrap()));
        assert_eq!(
            c.state.default_thresholds,
            Thresholds {
                failure: 2,
                recovery: 1
            }
        );
        assert_eq!(
            c.state.probe_thresholds["inodes"],
            Thresholds {
                failure: 3,
                recovery: 1
            }
        );
        assert_eq!(
            c.state.probe_thresholds["pid-pressure"],
            Thresholds {
                failure: 2,
                recovery: 4
            }
        );
        assert_eq!(c.stale_types, vec!["PidPressure".to_string()]);
    }

    #[test]
    fn jitter_stays_within_the_fraction() {
        let mut s = 12345;
        for _ in 0..1000 {
            let d = jitter(&mut s, Duration::from_secs(100), 0.1);
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        }
    }
}
