//! NPD's command line, accepted unchanged: the flags of node-problem-detector (and of the
//! glog/klog logging it links) that nodeprobe has no flag of its own for. Each is mapped to
//! the nodeprobe equivalent, or accepted with a warning saying what nodeprobe does instead.
//! NPD's flags nodeprobe implements itself (`--config.system-log-monitor`,
//! `--enable-k8s-exporter`, `--port`, …) live with the settings they set.
//!
//! Pure: [`NpdArgs::log_filter`], [`NpdArgs::warnings`] and [`parse_apiserver_override`]
//! compute; `main` logs and applies.

use std::path::PathBuf;
use std::time::Duration;

use probes::plugins::{self, PluginError, PluginMapping, Remapped};
use probes::registry::{self, ProbeConfigs, ProbeDecl};
use probes::{HostPaths, Probe};

use crate::eventer::uri::{parse_query, Uri};

/// NPD flags (help heading "NPD compatibility").
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "NPD compatibility")]
pub struct NpdArgs {
    /// NPD custom-plugin monitor files (comma-separated, repeatable; NPD's older spelling
    /// --custom-plugin-monitors is accepted). Each file turns on the native probe that
    /// replaces its script, with the file's interval, timeout, source, condition and
    /// reasons; a probe replacing an NPD script runs only when a file names it (unless
    /// --probes is given). A file for a script no probe replaces is an error (exit 64)
    /// unless --skip-unknown-plugins.
    #[arg(
        id = "config.custom-plugin-monitor",
        long = "config.custom-plugin-monitor",
        visible_alias = "custom-plugin-monitors",
        env = "NODEPROBE_CUSTOM_PLUGIN_MONITORS",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub custom_plugin_monitors: Vec<PathBuf>,

    /// Skip custom-plugin files whose script no native probe replaces, with a warning,
    /// instead of refusing to start.
    #[arg(id = "skip-unknown-plugins", long = "skip-unknown-plugins",
          env = "NODEPROBE_SKIP_UNKNOWN_PLUGINS", action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub skip_unknown_plugins: bool,

    /// NPD's system-stats-monitor files: not supported (warned); nodeprobe exports its own
    /// metrics.
    #[arg(
        id = "config.system-stats-monitor",
        long = "config.system-stats-monitor",
        env = "NODEPROBE_SYSTEM_STATS_MONITORS",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub system_stats_monitors: Vec<PathBuf>,

    /// NPD's API server URI (`URL?inClusterConfig=…&auth=KUBECONFIG&insecure=…`): `auth=`
    /// is the kubeconfig (unless --kubeconfig), the URL replaces the server.
    #[arg(
        id = "apiserver-override",
        long = "apiserver-override",
        env = "NODEPROBE_APISERVER_OVERRIDE",
        value_name = "URI"
    )]
    pub apiserver_override: Option<String>,

    /// Accepted and ignored: nodeprobe retries the first `GET node` with its own backoff.
    #[arg(id = "apiserver-wait-interval", long = "apiserver-wait-interval",
          env = "NODEPROBE_APISERVER_WAIT_INTERVAL", value_name = "DURATION", value_parser = probes::parse_duration)]
    pub apiserver_wait_interval: Option<Duration>,

    /// NPD: write Events. nodeprobe writes Events and conditions together; `false` is
    /// warned (use --enable-k8s-exporter=false for neither).
    #[arg(id = "k8s-exporter-write-events", long = "k8s-exporter-write-events",
          env = "NODEPROBE_K8S_EXPORTER_WRITE_EVENTS", action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", default_value_t = true)]
    pub write_events: bool,

    /// NPD: update Node conditions (see --k8s-exporter-write-events).
    #[arg(id = "k8s-exporter-update-node-conditions", long = "k8s-exporter-update-node-conditions",
          env = "NODEPROBE_K8S_EXPORTER_UPDATE_NODE_CONDITIONS", action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", default_value_t = true)]
    pub update_node_conditions: bool,

    /// Accepted and ignored: nodeprobe writes only changes and heartbeats.
    #[arg(
        id = "kube-api-qps",
        long = "kube-api-qps",
        env = "NODEPROBE_KUBE_API_QPS",
        value_name = "QPS"
    )]
    pub kube_api_qps: Option<f32>,

    /// Accepted and ignored (see --kube-api-qps).
    #[arg(
        id = "kube-api-burst",
        long = "kube-api-burst",
        env = "NODEPROBE_KUBE_API_BURST",
        value_name = "N"
    )]
    pub kube_api_burst: Option<u32>,

    /// NPD's Stackdriver exporter config: not supported (warned).
    #[arg(
        id = "exporter.stackdriver",
        long = "exporter.stackdriver",
        env = "NODEPROBE_EXPORTER_STACKDRIVER",
        value_name = "FILE"
    )]
    pub stackdriver: Option<PathBuf>,

    /// glog/klog: log to stderr. nodeprobe always does; accepted.
    #[arg(id = "logtostderr", long = "logtostderr", env = "NODEPROBE_LOGTOSTDERR",
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub logtostderr: Option<bool>,

    /// glog: also log to stderr. nodeprobe always does; accepted.
    #[arg(id = "alsologtostderr", long = "alsologtostderr", env = "NODEPROBE_ALSOLOGTOSTDERR",
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub alsologtostderr: Option<bool>,

    /// glog/klog verbosity: sets the log level when --log-level is not given (0-2 info,
    /// 3-4 nodeprobe's debug, 5 its trace, 6 and more the libraries' debug too).
    #[arg(
        id = "v",
        short = 'v',
        long = "v",
        env = "NODEPROBE_V",
        value_name = "N"
    )]
    pub v: Option<u8>,

    /// glog/klog per-file verbosity: accepted and ignored (warned).
    #[arg(
        id = "vmodule",
        long = "vmodule",
        env = "NODEPROBE_VMODULE",
        value_name = "SPEC"
    )]
    pub vmodule: Option<String>,

    /// glog: log files directory: accepted and ignored (warned); logs go to stderr.
    #[arg(
        id = "log_dir",
        long = "log_dir",
        env = "NODEPROBE_LOG_DIR",
        value_name = "DIR"
    )]
    pub log_dir: Option<PathBuf>,

    /// glog: severity copied to stderr: accepted and ignored (everything goes to stderr).
    #[arg(
        id = "stderrthreshold",
        long = "stderrthreshold",
        env = "NODEPROBE_STDERRTHRESHOLD",
        value_name = "SEVERITY"
    )]
    pub stderrthreshold: Option<String>,
}

/// The tracing filter NPD's `--v=N` stands for: nodeprobe's own detail rises with N (NPD
/// logs every plugin result at 3), the libraries' (HTTP client, TLS) only from 6.
pub fn level_of_v(v: u8) -> &'static str {
    match v {
        0..=2 => "info",
        3..=4 => "info,nodeprobe=debug,probes=debug",
        5 => "info,nodeprobe=trace,probes=trace",
        _ => "debug,nodeprobe=trace,probes=trace",
    }
}

impl NpdArgs {
    /// The log filter: `--log-level` if given, else what `--v` stands for, else `warn`.
    pub fn log_filter(&self, log_level: Option<&str>) -> String {
        match (log_level, self.v) {
            (Some(l), _) => l.to_string(),
            (None, Some(v)) => level_of_v(v).to_string(),
            (None, None) => "warn".to_string(),
        }
    }

    /// What is accepted but not done, one warning each (logged at startup).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.system_stats_monitors.is_empty() {
            let files: Vec<String> = self
                .system_stats_monitors
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            w.push(format!(
                "--config.system-stats-monitor is not supported, ignoring {}: nodeprobe \
                 exports its own metrics on --prometheus-port",
                files.join(", ")
            ));
        }
        if let Some(p) = &self.stackdriver {
            w.push(format!(
                "--exporter.stackdriver is not supported, ignoring {}: nodeprobe reports to \
                 the Kubernetes API and Prometheus",
                p.display()
            ));
        }
        if !self.write_events || !self.update_node_conditions {
            w.push(
                "--k8s-exporter-write-events=false / --k8s-exporter-update-node-conditions=false \
                 are not supported: nodeprobe writes both conditions and events \
                 (--enable-k8s-exporter=false writes neither)"
                    .into(),
            );
        }
        if self.vmodule.as_deref().is_some_and(|v| !v.is_empty()) {
            w.push("--vmodule is ignored: use --log-level with tracing filter directives".into());
        }
        if let Some(d) = &self.log_dir {
            w.push(format!(
                "--log_dir {} is ignored: nodeprobe logs to stderr only",
                d.display()
            ));
        }
        if self.logtostderr == Some(false) {
            w.push("--logtostderr=false is ignored: nodeprobe logs to stderr only".into());
        }
        w
    }
}

/// `--apiserver-override`, read as NPD reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiServerOverride {
    /// `scheme://host[:port]` of the URL, if it has one.
    pub server: Option<String>,
    /// `inClusterConfig` (default true): the service account's credentials.
    pub in_cluster: bool,
    /// `auth=`: a kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// `insecure=true`: do not verify the server's certificate.
    pub insecure: bool,
}

/// A bad `--apiserver-override` (exit 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--apiserver-override {value:?}: {why}")]
pub struct OverrideError {
    pub value: String,
    pub why: String,
}

/// Parse NPD's `--apiserver-override` (pure): `[URL][?inClusterConfig=B&auth=PATH&insecure=B&…]`.
pub fn parse_apiserver_override(value: &str) -> Result<ApiServerOverride, OverrideError> {
    let err = |why: String| OverrideError {
        value: value.to_string(),
        why,
    };
    let (base, q) = value.trim().split_once('?').unwrap_or((value.trim(), ""));
    let opts = parse_query(q);
    let get = |k: &str| {
        opts.iter()
            .find(|(key, _, _)| key == k)
            .map(|(_, v, _)| v.as_str())
    };
    let boolean = |k: &str, default: bool| match get(k) {
        None | Some("") => Ok(default),
        Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(true),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(err(format!("{k}={v:?} is not true or false"))),
    };
    let server = if base.is_empty() {
        None
    } else {
        let u = Uri::parse(base, "URL").map_err(|e| err(e.to_string()))?;
        Some(format!("{}://{}", u.scheme, u.authority))
    };
    let o = ApiServerOverride {
        server,
        in_cluster: boolean("inClusterConfig", true)?,
        kubeconfig: get("auth").filter(|a| !a.is_empty()).map(PathBuf::from),
        insecure: boolean("insecure", false)?,
    };
    if !o.in_cluster && o.kubeconfig.is_none() && o.server.is_none() {
        return Err(err(
            "inClusterConfig=false needs a server URL or auth=KUBECONFIG".into(),
        ));
    }
    Ok(o)
}

/// The custom-plugin files of `--config.custom-plugin-monitor`, mapped.
#[derive(Debug, Clone, Default)]
pub struct PluginPlan {
    pub mappings: Vec<PluginMapping>,
    /// Files skipped under `--skip-unknown-plugins` (each an [`PluginError::UnknownScript`]).
    pub skipped: Vec<PluginError>,
    /// Whether any file was given (then only the probes of the files run).
    pub given: bool,
}

/// Read and map every plugin file (duplicates skipped, as NPD does). An unknown script is
/// an error unless `skip_unknown`.
pub fn load_plugins(paths: &[PathBuf], skip_unknown: bool) -> Result<PluginPlan, PluginError> {
    let mut plan = PluginPlan {
        given: !paths.is_empty(),
        ..PluginPlan::default()
    };
    let mut seen: Vec<&PathBuf> = Vec::new();
    for p in paths {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        match plugins::load(p) {
            Ok(m) => plan.mappings.push(m),
            Err(e) if skip_unknown && e.is_unknown_script() => plan.skipped.push(e),
            Err(e) => return Err(e),
        }
    }
    Ok(plan)
}

/// Which probes run (pure): `--probes`/`--disable-probes` as always. With plugin files and
/// no `--probes`, a probe that replaces an NPD script runs only when a file maps to it (NPD
/// runs only the monitors it is given); probes NPD had no script for run as by default.
pub fn select_probes(
    plan: &PluginPlan,
    allow: &[String],
    deny: &[String],
) -> Result<Vec<&'static str>, StartupError> {
    let selected = registry::select(allow, deny)?;
    let names: Vec<&'static str> = if plan.given && allow.iter().all(|a| a.trim().is_empty()) {
        selected
            .into_iter()
            .filter(|p| {
                plan.mappings.iter().any(|m| m.probe == *p)
                    || !plugins::KNOWN_SCRIPTS.iter().any(|(_, q)| q == p)
            })
            .collect()
    } else {
        selected
    };
    let running: Vec<&'static ProbeDecl> = names.iter().filter_map(|n| registry::decl(n)).collect();
    plugins::check_set(&plan.mappings, &running)?;
    Ok(names)
}

/// Build the selected probes, the plugin files' probes under the files' names and schedule.
/// `explicit(flag id)` says whether a flag was given (command line or environment): an
/// explicit `--<probe>-timeout` / `--<probe>-interval` wins over the file's.
pub fn build_probes(
    host: &HostPaths,
    configs: &ProbeConfigs,
    names: &[&'static str],
    plan: &PluginPlan,
    explicit: &dyn Fn(&str) -> bool,
) -> Vec<Box<dyn Probe>> {
    let mut configs = configs.clone();
    for m in &plan.mappings {
        let timeout = (!explicit(&format!("{}-timeout", m.probe))).then_some(m.timeout);
        let interval = (!explicit(&format!("{}-interval", m.probe))).then_some(m.interval);
        configs.set_schedule(m.probe, timeout, interval);
    }
    registry::build(host, &configs, names)
        .into_iter()
        .map(
            |p| match plan.mappings.iter().find(|m| m.probe == p.name()) {
                Some(m) => Box::new(Remapped::new(p, m)) as Box<dyn Probe>,
                None => p,
            },
        )
        .collect()
}

/// Why the probes cannot start as configured (exit 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Probe(#[from] registry::UnknownProbe),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Override(#[from] OverrideError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    /// The users' DaemonSet command line, verbatim (seed `000_…txt`).
    const SEED_COMMAND: &[&str] = &[
        "/node-problem-detector",
        "--logtostderr",
        "--v=3",
        "--system-log-monitors=/config/kernel-monitor.json,/config/docker-monitor.json",
        "--custom-plugin-monitors=/config/ntp-problem-monitor.json",
        "--custom-plugin-monitors=/config/network-problem-monitor.json",
        "--custom-plugin-monitors=/config/inodes-problem-monitor.json",
        "--custom-plugin-monitors=/config/pid-pressure-problem-monitor.json",
        "--custom-plugin-monitors=/config/docker-offline-monitor.json",
        "--custom-plugin-monitors=/config/instance_expired_checker.json",
        "--custom-plugin-monitors=/config/systemd-check-monitor.json",
    ];

    #[test]
    fn the_users_command_line_parses() {
        let cli = Cli::try_parse_from(SEED_COMMAND).unwrap();
        assert_eq!(
            cli.log_monitors.log_monitors,
            vec![
                PathBuf::from("/config/kernel-monitor.json"),
                PathBuf::from("/config/docker-monitor.json")
            ]
        );
        assert_eq!(cli.npd.custom_plugin_monitors.len(), 7);
        assert_eq!(
            cli.npd.custom_plugin_monitors[6],
            PathBuf::from("/config/systemd-check-monitor.json")
        );
        assert_eq!(cli.npd.logtostderr, Some(true));
        assert_eq!(cli.log_filter(), "info,nodeprobe=debug,probes=debug");
        assert!(cli.npd.warnings().is_empty());
        assert!(cli.command.is_none() && !cli.oneshot);
    }

    #[test]
    fn npd_spellings_and_value_forms() {
        let cli = Cli::try_parse_from([
            "nodeprobe",
            "--config.custom-plugin-monitor",
            "a.json,b.json",
            "--custom-plugin-monitors=c.json",
            "--config.system-log-monitor=k.json",
            "--logtostderr=false",
            "--alsologtostderr",
            "--v",
            "5",
            "--apiserver-override=https://10.0.0.1:6443?inClusterConfig=false&auth=/etc/kubeconfig",
            "--address=0.0.0.0",
            "--port",
            "0",
            "--prometheus-address=0.0.0.0",
            "--prometheus-port=9256",
            "--enable-k8s-exporter=false",
            "--k8s-exporter-heartbeat-period=5m0s",
            "--apiserver-wait-timeout=1m30s",
            "--apiserver-wait-interval=5s",
            "--event-namespace=kube-system",
            "--hostname-override=node-a",
            "--k8s-exporter-write-events=false",
            "--kube-api-qps=50",
            "--kube-api-burst=100",
            "--config.system-stats-monitor=/config/system-stats-monitor.json",
            "--vmodule=foo=2",
            "--skip-unknown-plugins",
        ])
        .unwrap();
        let n = &cli.npd;
        assert_eq!(
            n.custom_plugin_monitors,
            ["a.json", "b.json", "c.json"].map(PathBuf::from).to_vec()
        );
        assert_eq!(cli.log_monitors.log_monitors, vec![PathBuf::from("k.json")]);
        assert_eq!(
            (n.logtostderr, n.alsologtostderr),
            (Some(false), Some(true))
        );
        assert_eq!(cli.log_filter(), "info,nodeprobe=trace,probes=trace");
        assert!(n.skip_unknown_plugins);
        let d = &cli.daemon;
        assert_eq!(d.address.to_string(), "0.0.0.0");
        assert_eq!((d.port, d.prometheus_port), (0, 9256));
        assert!(!d.enable_k8s_exporter);
        assert_eq!(d.heartbeat_period, Duration::from_secs(300));
        assert_eq!(d.apiserver_wait_timeout, Duration::from_secs(90));
        assert_eq!(cli.node_name(), "node-a");
        let w = n.warnings().join("\n");
        for want in [
            "--config.system-stats-monitor is not supported, ignoring /config/system-stats-monitor.json",
            "--k8s-exporter-write-events=false",
            "--vmodule is ignored",
            "--logtostderr=false is ignored",
        ] {
            assert!(w.contains(want), "{want} missing from {w}");
        }
        // --log-level wins over --v
        let cli = Cli::try_parse_from(["nodeprobe", "--v=4", "--log-level=error"]).unwrap();
        assert_eq!(cli.log_filter(), "error");
        assert_eq!(
            Cli::try_parse_from(["nodeprobe"]).unwrap().log_filter(),
            "warn"
        );
        assert_eq!(
            Cli::try_parse_from(["nodeprobe", "--v=0"])
                .unwrap()
                .log_filter(),
            "info"
        );
        assert!(Cli::try_parse_from(["nodeprobe", "--v=x"]).is_err());
        // pflag gives one-letter Go flags a shorthand: NPD takes -v=2 and -v 2 too
        for v in [&["-v=2"][..], &["-v", "2"]] {
            let mut a = vec!["nodeprobe"];
            a.extend_from_slice(v);
            assert_eq!(Cli::try_parse_from(a).unwrap().npd.v, Some(2));
        }
    }

    #[test]
    fn plugin_files_set_names_and_schedule_and_explicit_flags_win() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("integration/tests/fixtures/npd-config");
        let files = [
            dir.join("docker-offline-monitor.json"),
            dir.join("ntp-problem-monitor.json"),
            dir.join("ntp-problem-monitor.json"), // NPD skips a repeated path
        ];
        let plan = load_plugins(&files, false).unwrap();
        assert_eq!(plan.mappings.len(), 2);
        let names = select_probes(&plan, &[], &[]).unwrap();
        let scripted = |p: &&str| plugins::KNOWN_SCRIPTS.iter().any(|(_, q)| q == p);
        // of the probes replacing a script, only the files' two; the others as by default
        assert_eq!(
            names.iter().copied().filter(scripted).collect::<Vec<_>>(),
            vec!["ntp", "runtime"]
        );
        assert!(names.contains(&"fd-pressure"), "{names:?}");
        let host = HostPaths::default();
        let configs = ProbeConfigs::default();
        let at = |name: &str| names.iter().position(|p| *p == name).unwrap();
        let probes = build_probes(&host, &configs, &names, &plan, &|_| false);
        let (ntp, runtime) = (&probes[at("ntp")], &probes[at("runtime")]);
        assert_eq!(ntp.interval(), Duration::from_secs(60));
        assert_eq!(ntp.timeout(), Duration::from_secs(30));
        assert_eq!(ntp.decl().source, "ntp-problem-custom-plugin-monitor");
        assert_eq!(runtime.interval(), Duration::from_secs(30));
        let native_runtime = registry::build(&host, &configs, &["runtime"]).remove(0);
        // the runtime probe's deadline is its setting plus a grace: 25s from the file
        assert_eq!(
            runtime.timeout() - native_runtime.timeout(),
            Duration::from_secs(25) - configs.runtime.timeout
        );
        // an explicit --ntp-interval wins over the file
        let probes = build_probes(&host, &configs, &names, &plan, &|id| id == "ntp-interval");
        assert_eq!(probes[at("ntp")].interval(), configs.ntp.interval);
        assert_eq!(probes[at("ntp")].timeout(), Duration::from_secs(30));
        // --probes: the files only configure; --disable-probes drops a file's probe
        let only = select_probes(&plan, &["inodes".to_string()], &[]).unwrap();
        assert_eq!(only, vec!["inodes"]);
        let without = select_probes(&plan, &[], &["ntp".to_string()]).unwrap();
        assert_eq!(
            without.iter().copied().filter(scripted).collect::<Vec<_>>(),
            vec!["runtime"]
        );
        // an unknown script: an error, or skipped
        let gpu = std::env::temp_dir().join(format!("npd-gpu-{}.json", std::process::id()));
        std::fs::write(
            &gpu,
            r#"{"plugin":"custom","rules":[{"type":"temporary","reason":"X","path":"/p/gpu.sh"}]}"#,
        )
        .unwrap();
        let e = load_plugins(std::slice::from_ref(&gpu), false).unwrap_err();
        assert!(e.is_unknown_script(), "{e}");
        let plan = load_plugins(std::slice::from_ref(&gpu), true).unwrap();
        let _ = std::fs::remove_file(&gpu);
        assert_eq!((plan.mappings.len(), plan.skipped.len()), (0, 1));
        // every file skipped: no probe replacing a script runs (NPD runs only what it is
        // given); probes NPD had no script for would
        let run = select_probes(&plan, &[], &[]).unwrap();
        assert!(
            run.iter()
                .all(|p| !plugins::KNOWN_SCRIPTS.iter().any(|(_, q)| q == p)),
            "{run:?}"
        );
    }

    #[test]
    fn apiserver_override_as_npd_reads_it() {
        let o = parse_apiserver_override(
            "https://10.0.0.1:6443?inClusterConfig=false&auth=/etc/k/config&insecure=true",
        )
        .unwrap();
        assert_eq!(o.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(o.kubeconfig, Some(PathBuf::from("/etc/k/config")));
        assert!(!o.in_cluster && o.insecure);
        let o = parse_apiserver_override("https://kubernetes.default").unwrap();
        assert!(o.in_cluster && o.kubeconfig.is_none());
        let o = parse_apiserver_override("http://127.0.0.1:8080?inClusterConfig=false").unwrap();
        assert_eq!(o.server.as_deref(), Some("http://127.0.0.1:8080"));
        for (bad, why) in [
            (
                "?inClusterConfig=maybe",
                "inClusterConfig=\"maybe\" is not true or false",
            ),
            (
                "?inClusterConfig=false",
                "needs a server URL or auth=KUBECONFIG",
            ),
            ("ftp://x", "not http or https"),
        ] {
            let e = parse_apiserver_override(bad).unwrap_err().to_string();
            assert!(e.starts_with("--apiserver-override "), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
