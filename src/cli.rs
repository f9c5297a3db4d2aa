//! Command line. Every setting has an environment twin so the DaemonSet can set it from a
//! ConfigMap.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use probes::registry::ProbeConfigs;

/// Script-free node problem detector for Kubernetes.
///
/// `nodeprobe --oneshot` runs every enabled probe once, and the kernel-log rules over the
/// recent kernel log, and exits 0 when all are healthy, 1 when any reports a problem (a
/// log condition included), 2 when any is Unknown and none a problem, 64 on bad usage or
/// configuration.
#[derive(Debug, Parser)]
#[command(name = "nodeprobe", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    /// Run every enabled probe once, and the log rules over the recent kernel log
    /// (--oneshot-logs), print the result and exit.
    #[arg(long, env = "NODEPROBE_ONESHOT")]
    pub oneshot: bool,

    /// Output format of --oneshot.
    #[arg(long, env = "NODEPROBE_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// With --oneshot, also run the log monitors' rules (--log-monitors) over what the kernel
    /// log, and the journal for journald monitors, still hold within each rule file's
    /// `lookback`. `false` runs the probes only.
    #[arg(long, env = "NODEPROBE_ONESHOT_LOGS", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub oneshot_logs: bool,

    /// Where the host's file system is mounted (the DaemonSet passes /host).
    #[arg(long, env = "NODEPROBE_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,

    /// Run only these probes (comma-separated; default: all).
    #[arg(long, env = "NODEPROBE_PROBES", value_delimiter = ',')]
    pub probes: Vec<String>,

    /// Do not run these probes (comma-separated).
    #[arg(long, env = "NODEPROBE_DISABLE_PROBES", value_delimiter = ',')]
    pub disable_probes: Vec<String>,

    /// Node name; defaults to $NODE_NAME, then the hostname.
    #[arg(long, env = "NODEPROBE_HOSTNAME_OVERRIDE")]
    pub hostname_override: Option<String>,

    /// Log filter (tracing env-filter syntax), logs go to stderr [default: warn, or what
    /// NPD's --v stands for].
    #[arg(long, env = "NODEPROBE_LOG")]
    pub log_level: Option<String>,

    #[command(flatten, next_help_heading = "daemon mode")]
    pub daemon: DaemonArgs,

    #[command(flatten)]
    pub probe_configs: ProbeConfigs,

    #[command(flatten, next_help_heading = "log monitors")]
    pub log_monitors: probes::logs::LogMonitorArgs,

    #[command(flatten, next_help_heading = "NPD compatibility")]
    pub npd: crate::npd::NpdArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands (without one, nodeprobe runs its probes).
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup
pub enum Command {
    #[command(flatten)]
    Logs(crate::logs_cmd::Command),
    /// Forward every cluster Event to DingTalk, Feishu/Lark, webhooks or stdout
    /// (kube-eventer's job and command line). Runs as a cluster Deployment.
    Eventer(crate::eventer::EventerArgs),
}

/// Daemon-mode settings: Kubernetes exporter, endpoints, condition and event policy.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "daemon mode")]
pub struct DaemonArgs {
    /// Write node conditions and events to the Kubernetes API (NPD's flag). With `false`
    /// nodeprobe runs with metrics only.
    #[arg(id = "enable-k8s-exporter", long = "enable-k8s-exporter", env = "NODEPROBE_ENABLE_K8S_EXPORTER",
          default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub enable_k8s_exporter: bool,

    /// kubeconfig for runs outside a cluster (else $KUBECONFIG, else the in-cluster account).
    #[arg(id = "kubeconfig", long = "kubeconfig", env = "NODEPROBE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Re-write every condition at least this often (lastHeartbeatTime).
    #[arg(id = "k8s-exporter-heartbeat-period", long = "k8s-exporter-heartbeat-period",
          env = "NODEPROBE_K8S_EXPORTER_HEARTBEAT_PERIOD", default_value = "5m",
          value_parser = probes::parse_duration)]
    pub heartbeat_period: Duration,

    /// How long startup waits for the first `GET node` before going on without it.
    #[arg(id = "apiserver-wait-timeout", long = "apiserver-wait-timeout",
          env = "NODEPROBE_APISERVER_WAIT_TIMEOUT", default_value = "5m",
          value_parser = probes::parse_duration)]
    pub apiserver_wait_timeout: Duration,

    /// Namespace of the events nodeprobe writes.
    #[arg(
        id = "event-namespace",
        long = "event-namespace",
        env = "NODEPROBE_EVENT_NAMESPACE",
        default_value = "default"
    )]
    pub event_namespace: String,

    /// Delete condition types nodeprobe owns but does not run (disabled probes) from the Node.
    #[arg(
        id = "remove-stale-conditions",
        long = "remove-stale-conditions",
        env = "NODEPROBE_REMOVE_STALE_CONDITIONS"
    )]
    pub remove_stale_conditions: bool,

    /// Consecutive problem results before a condition turns True: `N` for every probe and/or
    /// `probe=N` (comma-separated).
    #[arg(
        id = "failure-threshold",
        long = "failure-threshold",
        env = "NODEPROBE_FAILURE_THRESHOLD",
        value_delimiter = ',',
        default_value = "1"
    )]
    pub failure_threshold: Vec<String>,

    /// Consecutive healthy results before a condition turns False again (`N` and/or `probe=N`).
    #[arg(
        id = "recovery-threshold",
        long = "recovery-threshold",
        env = "NODEPROBE_RECOVERY_THRESHOLD",
        value_delimiter = ',',
        default_value = "1"
    )]
    pub recovery_threshold: Vec<String>,

    /// Identical events (source, reason, message) within this window update one Event's count.
    #[arg(id = "event-dedup-window", long = "event-dedup-window", env = "NODEPROBE_EVENT_DEDUP_WINDOW",
          default_value = "10m", value_parser = probes::parse_duration)]
    pub event_dedup_window: Duration,

    /// Event writes allowed at once per (source, reason); recoveries are exempt.
    #[arg(
        id = "event-budget-burst",
        long = "event-budget-burst",
        env = "NODEPROBE_EVENT_BUDGET_BURST",
        default_value_t = 10
    )]
    pub event_budget_burst: u32,

    /// One more event write per (source, reason) is allowed after this long.
    #[arg(id = "event-budget-refill", long = "event-budget-refill", env = "NODEPROBE_EVENT_BUDGET_REFILL",
          default_value = "5m", value_parser = probes::parse_duration)]
    pub event_budget_refill: Duration,

    /// Address of /healthz, /readyz and /conditions.
    #[arg(
        id = "address",
        long = "address",
        env = "NODEPROBE_ADDRESS",
        default_value = "127.0.0.1"
    )]
    pub address: IpAddr,

    /// Port of /healthz, /readyz and /conditions (0 disables).
    #[arg(
        id = "port",
        long = "port",
        env = "NODEPROBE_PORT",
        default_value_t = 20256
    )]
    pub port: u16,

    /// Address of /metrics.
    #[arg(
        id = "prometheus-address",
        long = "prometheus-address",
        env = "NODEPROBE_PROMETHEUS_ADDRESS",
        default_value = "127.0.0.1"
    )]
    pub prometheus_address: IpAddr,

    /// Port of /metrics (0 disables).
    #[arg(
        id = "prometheus-port",
        long = "prometheus-port",
        env = "NODEPROBE_PROMETHEUS_PORT",
        default_value_t = 20257
    )]
    pub prometheus_port: u16,

    /// On SIGTERM, how long to try to write pending condition changes before exiting.
    #[arg(id = "shutdown-grace", long = "shutdown-grace", env = "NODEPROBE_SHUTDOWN_GRACE",
          default_value = "5s", value_parser = probes::parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Cli {
    /// The log filter: --log-level, else NPD's --v, else `warn`.
    pub fn log_filter(&self) -> String {
        self.npd.log_filter(self.log_level.as_deref())
    }

    /// Node name in NPD's order: --hostname-override, $NODE_NAME, the hostname.
    pub fn node_name(&self) -> String {
        if let Some(n) = self.hostname_override.as_deref().filter(|n| !n.is_empty()) {
            return n.to_string();
        }
        if let Ok(n) = std::env::var("NODE_NAME") {
            if !n.is_empty() {
                return n;
            }
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_env_twin_in_help() {
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--oneshot",
            "--output",
            "--host-root",
            "--probes",
            "--disable-probes",
            "--inodes-threshold",
            "--inodes-mounts",
            "--pid-pressure-threshold",
            "--log-monitors",
            "--config.system-log-monitor",
            "--state-dir",
            "--kmsg-path",
        ] {
            assert!(help.contains(flag), "{flag} missing from help");
        }
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "flag {id} has no env twin");
        }
    }

    #[test]
    fn eventer_takes_kube_eventer_flags_each_with_an_env_twin() {
        let cli = Cli::parse_from([
            "nodeprobe",
            "eventer",
            "--source=kubernetes:https://kubernetes.default",
            "--sink=dingtalk:https://oapi.dingtalk.com/robot/send?access_token=x&label=c",
            "--sink=webhook:http://h/p?namespaces=a,b",
            "--frequency=30s",
            "--healthz-port=8084",
        ]);
        let Some(Command::Eventer(a)) = cli.command else {
            panic!("not the eventer")
        };
        assert_eq!(a.sinks.len(), 2);
        assert_eq!(a.frequency, Duration::from_secs(30));
        let cmd = Cli::command();
        let ev = cmd.find_subcommand("eventer").expect("eventer");
        for arg in ev.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
            assert!(
                env.starts_with("NODEPROBE_EVENTER_"),
                "flag {id} has no NODEPROBE_EVENTER_ env twin"
            );
        }
    }

    #[test]
    fn log_monitor_flags_accept_npd_spelling() {
        let cli = Cli::parse_from([
            "nodeprobe",
            "--config.system-log-monitor",
            "a.json,b.json",
            "rules",
            "check",
            "a.json",
        ]);
        assert_eq!(
            cli.log_monitors.log_monitors,
            vec![PathBuf::from("a.json"), PathBuf::from("b.json")]
        );
        assert_eq!(
            cli.log_monitors.state_dir,
            PathBuf::from("/var/lib/nodeprobe")
        );
        let cli = Cli::parse_from(["nodeprobe", "watch-logs", "--state-dir", "/tmp/x"]);
        assert_eq!(cli.log_monitors.state_dir, PathBuf::from("/tmp/x"));
        assert!(cli.command.is_some());
    }

    #[test]
    fn daemon_defaults_follow_npd() {
        let cli = Cli::parse_from(["nodeprobe"]);
        let d = &cli.daemon;
        assert!(d.enable_k8s_exporter);
        assert_eq!(d.heartbeat_period, Duration::from_secs(300));
        assert_eq!(d.event_namespace, "default");
        assert_eq!((d.address.to_string(), d.port), ("127.0.0.1".into(), 20256));
        assert_eq!(d.prometheus_port, 20257);
        let cli = Cli::parse_from(["nodeprobe", "--enable-k8s-exporter=false"]);
        assert!(!cli.daemon.enable_k8s_exporter);
    }

    /// Where a default lives twice (a flag's and a library type's), they agree.
    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let cli = Cli::parse_from(["nodeprobe"]);
        let d = crate::daemon::DaemonConfig::from_cli(&cli, Vec::new(), &[]).unwrap();
        let s = crate::state::StateConfig::default();
        assert_eq!(d.state.default_thresholds, s.default_thresholds);
        assert_eq!(d.state.dedup_window, s.dedup_window);
        assert_eq!(d.state.budget, s.budget);
        assert!(d.state.probe_thresholds.is_empty());
        assert_eq!(
            cli.log_monitors.options(),
            probes::logs::MonitorOptions::new(probes::logs::DEFAULT_STATE_DIR)
        );
        assert_eq!(
            format!("{:?}", cli.probe_configs),
            format!("{:?}", ProbeConfigs::default())
        );
    }

    #[test]
    fn hostname_override_wins() {
        let cli = Cli::parse_from(["nodeprobe", "--hostname-override", "node-a"]);
        assert_eq!(cli.node_name(), "node-a");
    }
}
