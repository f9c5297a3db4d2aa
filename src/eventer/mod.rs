//! `nodeprobe eventer`: watch every core/v1 Event in the cluster and forward it to chat
//! robots (DingTalk, Feishu/Lark), webhooks and stdout — kube-eventer's job, with its
//! command line (`--source`, `--sink`, `--frequency`, `--healthz-ip/port`).
//!
//! ```text
//! source (list + watch, delivered set) ─► per sink: filter ─► bounded queue ─► workers
//!                                                   (chat: fold repeats, quota) ─► HTTP/stdout
//! ```

pub mod client;
pub mod delivery;
pub mod event;
pub mod filter;
pub mod fold;
pub mod lease;
pub mod metrics;
pub mod progress;
pub mod quota;
pub mod sinks;
pub mod source;
pub mod template;
pub mod uri;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Event};

use crate::report::http::{reply, serve_routes, HttpError};
use metrics::EventerMetrics;
use sinks::Sink;
use template::Template;

/// One Event on its way to the sinks.
#[derive(Debug, Clone)]
pub struct Item {
    pub event: Event,
    /// When the watch delivered it (latency is measured from here).
    pub received: Instant,
    /// Delivery progress: the change counts as delivered when the last holder of the item
    /// drops it (see `progress`).
    pub token: Option<Arc<progress::Token>>,
}

impl Item {
    pub fn new(event: Event) -> Self {
        Item {
            event,
            received: Instant::now(),
            token: None,
        }
    }

    /// A copy that does not hold the delivery progress back.
    pub fn detached(&self) -> Item {
        Item {
            event: self.event.clone(),
            received: self.received,
            token: None,
        }
    }
}

/// `nodeprobe eventer` flags (kube-eventer's, plus ours). Every flag has an env twin.
#[derive(Debug, Clone, clap::Args)]
pub struct EventerArgs {
    /// Where Events come from: `kubernetes:[URL][?inClusterConfig=true|false&insecure=…&auth=KUBECONFIG]`
    /// (kube-eventer's syntax; in-cluster service account by default).
    #[arg(long, env = "NODEPROBE_EVENTER_SOURCE", default_value = "kubernetes:")]
    pub source: String,

    /// A sink, `<type>:<uri>` (repeatable; in the env twin one per line). Types: webhook,
    /// dingtalk, feishu, lark, log, mysql. `$VAR` in the URI is taken from the environment.
    #[arg(
        long = "sink",
        env = "NODEPROBE_EVENTER_SINK",
        value_delimiter = '\n',
        required = true
    )]
    pub sinks: Vec<String>,

    /// kube-eventer's batch period. Accepted for compatibility: Events are sent as they
    /// arrive; this only bounds batching in sinks that batch.
    #[arg(long, env = "NODEPROBE_EVENTER_FREQUENCY", default_value = "100ms", value_parser = probes::parse_duration)]
    pub frequency: Duration,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long = "healthz-ip",
        env = "NODEPROBE_EVENTER_HEALTHZ_IP",
        default_value = "0.0.0.0"
    )]
    pub healthz_ip: IpAddr,

    /// Port of /healthz, /readyz and /metrics (0 disables).
    #[arg(
        long = "healthz-port",
        env = "NODEPROBE_EVENTER_HEALTHZ_PORT",
        default_value_t = 8084
    )]
    pub healthz_port: u16,

    /// kubeconfig for runs outside a cluster (else `auth=` of --source, $KUBECONFIG, the
    /// in-cluster account).
    #[arg(long, env = "NODEPROBE_EVENTER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Repeats of one (object, reason, message) within this window become one follow-up
    /// message in chat sinks.
    #[arg(long = "dedup-window", env = "NODEPROBE_EVENTER_DEDUP_WINDOW", default_value = "10m", value_parser = probes::parse_duration)]
    pub dedup_window: Duration,

    /// Deadline of one request to a sink.
    #[arg(long = "sink-timeout", env = "NODEPROBE_EVENTER_SINK_TIMEOUT", default_value = "10s", value_parser = probes::parse_duration)]
    pub sink_timeout: Duration,

    /// Messages each sink's queue holds; more are dropped and counted.
    #[arg(
        long = "sink-queue",
        env = "NODEPROBE_EVENTER_SINK_QUEUE",
        default_value_t = 1000
    )]
    pub sink_queue: usize,

    /// Retries of a failed delivery (connection errors, timeouts, 5xx, 429, rate limits).
    #[arg(
        long = "retry-max",
        env = "NODEPROBE_EVENTER_RETRY_MAX",
        default_value_t = 5
    )]
    pub retry_max: u32,

    /// First retry delay; doubles per retry (with jitter) up to 30 s.
    #[arg(long = "retry-backoff", env = "NODEPROBE_EVENTER_RETRY_BACKOFF", default_value = "500ms", value_parser = probes::parse_duration)]
    pub retry_backoff: Duration,

    /// Extra CA certificates (PEM) trusted by the sinks, besides the bundled public roots.
    #[arg(long = "ca-file", env = "NODEPROBE_EVENTER_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Also deliver Events of the first list that happened up to this long before the start
    /// (default 0: only new Events, as kube-eventer).
    #[arg(long, env = "NODEPROBE_EVENTER_SINCE", default_value = "0s", value_parser = duration_or_zero)]
    pub since: Duration,

    /// /healthz fails when the Event watch has failed for longer than this.
    #[arg(long = "healthz-watch-bound", env = "NODEPROBE_EVENTER_HEALTHZ_WATCH_BOUND", default_value = "3m", value_parser = probes::parse_duration)]
    pub healthz_watch_bound: Duration,

    /// /healthz fails when a sink failed every delivery for longer than this.
    #[arg(long = "healthz-sink-bound", env = "NODEPROBE_EVENTER_HEALTHZ_SINK_BOUND", default_value = "10m", value_parser = probes::parse_duration)]
    pub healthz_sink_bound: Duration,

    /// Server-side timeout of one watch request (a healthy watch is renewed this often).
    #[arg(long = "watch-timeout", env = "NODEPROBE_EVENTER_WATCH_TIMEOUT", default_value = "60s", value_parser = probes::parse_duration)]
    pub watch_timeout: Duration,

    /// Run as one of several replicas: only the holder of the Lease (--lease-name)
    /// delivers; another takes over when it stops renewing.
    #[arg(long = "leader-elect", env = "NODEPROBE_EVENTER_LEADER_ELECT")]
    pub leader_elect: bool,

    /// The `coordination.k8s.io/v1` Lease used for leader election and for the progress
    /// record (how far delivery got, so a restart delivers what happened meanwhile).
    #[arg(
        long = "lease-name",
        env = "NODEPROBE_EVENTER_LEASE_NAME",
        default_value = "nodeprobe-eventer"
    )]
    pub lease_name: String,

    /// Namespace of the Lease (default: $POD_NAMESPACE, else kube-system).
    #[arg(long = "lease-namespace", env = "NODEPROBE_EVENTER_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// A leader that has not renewed for this long is replaced.
    #[arg(long = "lease-duration", env = "NODEPROBE_EVENTER_LEASE_DURATION", default_value = "15s", value_parser = probes::parse_duration)]
    pub lease_duration: Duration,

    /// The leader stops delivering (and exits) when it could not renew for this long.
    #[arg(long = "lease-renew-deadline", env = "NODEPROBE_EVENTER_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = probes::parse_duration)]
    pub lease_renew_deadline: Duration,

    /// The leader renews (and stores the progress record) this often; standbys look at
    /// the Lease twice as often.
    #[arg(long = "lease-retry", env = "NODEPROBE_EVENTER_LEASE_RETRY", default_value = "2s", value_parser = probes::parse_duration)]
    pub lease_retry: Duration,

    /// Store the progress record in the Lease (without --leader-elect too). Off: every
    /// start delivers only new Events (or --since), as kube-eventer.
    #[arg(long = "record-progress", env = "NODEPROBE_EVENTER_RECORD_PROGRESS", default_value_t = true, action = clap::ArgAction::Set)]
    pub record_progress: bool,

    /// On SIGTERM, how long queued messages may still be sent.
    #[arg(long = "shutdown-grace", env = "NODEPROBE_EVENTER_SHUTDOWN_GRACE", default_value = "5s", value_parser = probes::parse_duration)]
    pub shutdown_grace: Duration,
}

/// A duration flag that may be zero (`0`, `0s`).
pub fn duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim() == "0" {
        return Ok(Duration::ZERO);
    }
    probes::parse_duration(s).map_err(|e| e.to_string())
}

/// Errors of the eventer. `Usage` ones are startup errors (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum EventerError {
    #[error(transparent)]
    Uri(#[from] uri::UriError),
    #[error("sink {sink}: ConfigMap {namespace}/{name}: {msg}")]
    Template {
        sink: String,
        namespace: String,
        name: String,
        msg: String,
    },
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("Kubernetes client: {0}")]
    Kube(#[from] crate::report::kube::KubeError),
    #[error("--{flag}: {msg}")]
    Flag { flag: &'static str, msg: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl EventerError {
    /// Process exit code: 64 for bad flags, sinks and templates, 70 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            EventerError::Http(_) | EventerError::Runtime(_) => crate::exit::INTERNAL,
            _ => crate::exit::USAGE,
        }
    }
}

/// Everything validated before anything starts.
pub struct Plan {
    pub source: uri::SourceSpec,
    pub sinks: Vec<Arc<dyn Sink>>,
}

/// Validate `--source` and every `--sink` (pure apart from reading `custom_body_file`s).
pub fn plan(
    args: &EventerArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, EventerError> {
    let source = uri::parse_source(&args.source, env)?;
    let specs = args
        .sinks
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| uri::split_sink(s, env))
        .collect::<Result<Vec<_>, _>>()?;
    if specs.is_empty() {
        return Err(EventerError::Flag {
            flag: "sink",
            msg: "at least one sink is required".into(),
        });
    }
    if args.leader_elect
        && (args.lease_renew_deadline >= args.lease_duration
            || args.lease_retry >= args.lease_renew_deadline)
    {
        return Err(EventerError::Flag {
            flag: "lease-duration",
            msg: "need --lease-retry < --lease-renew-deadline < --lease-duration".into(),
        });
    }
    if args.sink_queue == 0 {
        return Err(EventerError::Flag {
            flag: "sink-queue",
            msg: "must be at least 1".into(),
        });
    }
    let sinks = sinks::build_all(&specs)?;
    Ok(Plan { source, sinks })
}

/// Run until SIGTERM/SIGINT. Returns the process exit code.
pub fn run_blocking(args: EventerArgs) -> Result<i32, EventerError> {
    let env = |k: &str| std::env::var(k).ok();
    let plan = plan(&args, &env)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .map_err(EventerError::Runtime)?;
    let r = rt.block_on(run(args, plan));
    rt.shutdown_timeout(Duration::from_millis(200));
    r
}

async fn kube_client(
    args: &EventerArgs,
    src: &uri::SourceSpec,
) -> Result<kube::Client, EventerError> {
    let path = args
        .kubeconfig
        .clone()
        .or_else(|| src.kubeconfig.as_ref().map(PathBuf::from))
        .or_else(|| {
            std::env::var_os("KUBECONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
    let mut config = crate::report::kube::config(path.as_deref()).await?;
    if path.is_none() {
        if let Some(server) = &src.server {
            // kube-eventer: the --source URL names the API server (kubernetes.default).
            config.cluster_url = server.parse().map_err(|e| EventerError::Flag {
                flag: "source",
                msg: format!("{server}: {e}"),
            })?;
        }
    }
    if src.insecure {
        config.accept_invalid_certs = true;
    }
    config.connect_timeout = Some(Duration::from_secs(5));
    // A watch is renewed every --watch-timeout; reads wait a little longer than that.
    config.read_timeout = Some(args.watch_timeout + Duration::from_secs(30));
    config.write_timeout = Some(Duration::from_secs(10));
    kube::Client::try_from(config)
        .map_err(|e| EventerError::Kube(crate::report::kube::KubeError::Client(e)))
}

/// Read a ConfigMap template once (bounded; transient errors retried for up to a minute).
async fn read_configmap(
    client: &kube::Client,
    sink: &str,
    ns: &str,
    name: &str,
) -> Result<Template, EventerError> {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
    let err = |msg: String| EventerError::Template {
        sink: sink.into(),
        namespace: ns.into(),
        name: name.into(),
        msg,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let cm = loop {
        match tokio::time::timeout(Duration::from_secs(10), api.get(name)).await {
            Ok(Ok(cm)) => break cm,
            Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 403 => {
                return Err(err(s.message))
            }
            other if Instant::now() >= deadline => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer".into(),
                };
                return Err(err(why));
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    template_of(&cm).map_err(err)
}

fn template_of(cm: &ConfigMap) -> Result<Template, String> {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get("content"))
        .ok_or_else(|| "has no key \"content\"".to_string())?;
    Template::parse(text, None).map_err(|e| e.to_string())
}

/// Follow a ConfigMap: a changed `content` replaces the sink's template; a broken one is
/// logged and counted, and the previous template stays.
async fn follow_configmap(
    client: kube::Client,
    sink: String,
    ns: String,
    name: String,
    slot: sinks::TemplateSlot,
    metrics: Arc<EventerMetrics>,
) {
    use futures_util::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &ns);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut last: Option<String> = None;
    while let Some(r) = stream.next().await {
        let Ok(cm) = r else { continue };
        let rv = cm.metadata.resource_version.clone();
        if rv == last {
            continue;
        }
        last = rv;
        let labels = |result: &str| {
            vec![
                ("sink".to_string(), sink.clone()),
                ("result".to_string(), result.to_string()),
            ]
        };
        match template_of(&cm) {
            Ok(t) => {
                *slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
                metrics.template_reloads.get_or_create(&labels("ok")).inc();
                tracing::info!("sink {sink}: body template read from ConfigMap {ns}/{name}");
            }
            Err(e) => {
                metrics
                    .template_reloads
                    .get_or_create(&labels("error"))
                    .inc();
                tracing::error!(
                    "sink {sink}: ConfigMap {ns}/{name}: {e}; keeping the previous template"
                );
            }
        }
    }
}

fn lease_settings(args: &EventerArgs) -> lease::LeaseSettings {
    let namespace = args
        .lease_namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| "kube-system".into());
    let host = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_else(|| "eventer".into());
    lease::LeaseSettings {
        name: args.lease_name.clone(),
        namespace,
        identity: format!("{host}_{}", std::process::id()),
        duration: args.lease_duration,
        renew_deadline: args.lease_renew_deadline,
        retry: args.lease_retry,
        elect: args.leader_elect,
    }
}

/// Wait to hold the Lease (standby until then). `None`: stopped while waiting.
async fn acquire(
    elector: &mut lease::Elector,
    metrics: &EventerMetrics,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Option<progress::Record>> {
    let mut observed = lease::Observed::default();
    let mut logged = false;
    let poll = elector.s.retry / 2;
    loop {
        match elector.try_acquire(&mut observed).await {
            Ok(Some(record)) => return Some(record),
            Ok(None) => {
                // A healthy standby is ready (it takes over when needed).
                metrics
                    .ready
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if !logged {
                    tracing::info!(
                        "standby: Lease {}/{} is held by another replica",
                        elector.s.namespace,
                        elector.s.name
                    );
                    logged = true;
                }
            }
            Err(e) => {
                metrics.lease_errors.inc();
                tracing::warn!("{e}");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return None,
        }
    }
}

async fn run(args: EventerArgs, plan: Plan) -> Result<i32, EventerError> {
    let metrics = Arc::new(EventerMetrics::new());
    let client = client::HttpClient::new(args.sink_timeout, args.ca_file.as_deref())?;
    let kube = kube_client(&args, &plan.source).await?;
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    if args.healthz_port != 0 {
        let m = metrics.clone();
        let (watch_bound, sink_bound) = (args.healthz_watch_bound, args.healthz_sink_bound);
        let quiet = args.watch_timeout + Duration::from_secs(90);
        let route: crate::report::http::Route = Arc::new(move |method: &Method, path: &str| {
            status_route(&m, method, path, watch_bound, sink_bound, quiet)
        });
        let addr = SocketAddr::new(args.healthz_ip, args.healthz_port);
        let (bound, _) = serve_routes(addr, route, stop.clone()).await?;
        tracing::info!("eventer endpoints on http://{bound}");
    }
    // The Lease: wait for it (leader election), or take it for the progress record.
    let ls = lease_settings(&args);
    let mut elector = lease::Elector::new(
        kube::Api::namespaced(kube.clone(), &ls.namespace),
        ls.clone(),
    );
    let mut holding = false;
    let mut resume = None;
    if args.leader_elect {
        match acquire(&mut elector, &metrics, &mut stop).await {
            Some(r) => {
                resume = r;
                holding = true;
            }
            None => return Ok(crate::exit::OK),
        }
        metrics
            .ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            "leading: holding Lease {}/{} as {}",
            ls.namespace,
            ls.name,
            ls.identity
        );
    } else if args.record_progress {
        let mut observed = lease::Observed::default();
        match elector.try_acquire(&mut observed).await {
            Ok(Some(r)) => {
                resume = r;
                holding = true;
            }
            Ok(None) => tracing::warn!(
                "Lease {}/{} changed while taking it; running without a progress record",
                ls.namespace,
                ls.name
            ),
            Err(e) => {
                metrics.lease_errors.inc();
                tracing::warn!(
                    "{e}; running without a progress record (a restart delivers only new Events)"
                )
            }
        }
    }
    metrics.leader.set(1);
    match &resume {
        Some(r) => tracing::info!(
            "resuming after resourceVersion {} (+{} delivered above it)",
            r.resource_version,
            r.done.len()
        ),
        None if holding => tracing::info!("no progress record yet: delivering new Events"),
        None => {}
    }
    let progress = holding.then(|| progress::Progress::resume(resume.as_ref()));

    for s in &plan.sinks {
        if let Some((ns, name, slot)) = s.configmap() {
            let t = read_configmap(&kube, s.label(), ns, name).await?;
            *slot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
            tokio::spawn(follow_configmap(
                kube.clone(),
                s.label().to_string(),
                ns.to_string(),
                name.to_string(),
                slot.clone(),
                metrics.clone(),
            ));
        }
    }
    let settings = delivery::Settings {
        queue: args.sink_queue,
        retry_max: args.retry_max,
        backoff: args.retry_backoff,
        backoff_max: Duration::from_secs(30),
        dedup_window: args.dedup_window,
    };
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for s in &plan.sinks {
        let (h, t) = delivery::start(s.clone(), client.clone(), metrics.clone(), settings.clone());
        handles.push(h);
        tasks.extend(t);
    }
    let since = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(args.since).unwrap_or_default())
        .ok()
        .map(|t| jiff::Timestamp::from_second(t.as_second()).unwrap_or(t));
    let source_settings = source::SourceSettings {
        since,
        watch_timeout: u32::try_from(args.watch_timeout.as_secs().clamp(1, 3600)).unwrap_or(60),
        resume,
        progress: progress.clone(),
    };
    let src = tokio::spawn(source::run(
        kube,
        source_settings,
        metrics.clone(),
        move |item| {
            for h in &handles {
                h.offer(&item);
            }
        },
        stop.clone(),
    ));
    let held = match &progress {
        Some(p) => {
            let p = p.clone();
            elector.hold(move || p.record(), stop.clone()).await
        }
        None => {
            let _ = stop.changed().await;
            Ok(())
        }
    };
    if let Err(e) = held {
        // Another replica delivers now (or will): stop at once, restart as a standby.
        metrics.leader.set(0);
        tracing::error!("lost the leadership: {e}; exiting");
        return Ok(crate::exit::PROBLEM);
    }
    tracing::info!(
        "stopping: delivering what is queued for up to {:?}",
        args.shutdown_grace
    );
    // The source ends and drops the handles: the workers drain their queues and end.
    let _ = src.await;
    let drained =
        tokio::time::timeout(args.shutdown_grace, futures_util::future::join_all(tasks)).await;
    if drained.is_err() {
        tracing::warn!(
            "stopping with messages still queued or being retried (the next run delivers them)"
        );
    }
    if let Some(p) = &progress {
        // Before the runtime drops what is still queued: those stay undelivered in the record.
        let r = p.record();
        match tokio::time::timeout(Duration::from_secs(5), elector.release(&r)).await {
            Ok(Ok(())) => tracing::info!(
                "progress stored (resourceVersion {}); Lease released",
                r.resource_version
            ),
            Ok(Err(e)) => tracing::warn!("storing the progress record: {e}"),
            Err(_) => tracing::warn!("storing the progress record: no answer"),
        }
    }
    Ok(crate::exit::OK)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn status_route(
    m: &EventerMetrics,
    method: &Method,
    path: &str,
    watch_bound: Duration,
    sink_bound: Duration,
    quiet: Duration,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
    }
    match path {
        "/healthz" => {
            let bad = m.degraded(watch_bound, sink_bound, quiet);
            if bad.is_empty() {
                reply(StatusCode::OK, TEXT, "ok")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, bad.join("\n") + "\n")
            }
        }
        "/readyz" => {
            if m.ready.load(std::sync::atomic::Ordering::Relaxed) {
                reply(StatusCode::OK, TEXT, "ok")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "events not listed yet\n",
                )
            }
        }
        "/metrics" => reply(
            StatusCode::OK,
            crate::report::metrics::CONTENT_TYPE,
            m.render(),
        ),
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

/// Check that a path exists before using it in messages (helper for tests of the CLI).
pub fn exists(p: &Path) -> bool {
    p.exists()
}
