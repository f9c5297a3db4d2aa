//! Command line. Every setting has an environment twin so the DaemonSet can set it from a
//! ConfigMap.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use probes::registry::ProbeConfigs;

/// Script-free node problem detector for Kubernetes.
///
/// `nodeprobe --oneshot` runs every enabled probe once and exits 0 when all are healthy,
/// 1 when any reports a problem, 2 when any is Unknown and none a problem, 64 on bad usage
/// or configuration.
#[derive(Debug, Parser)]
#[command(name = "nodeprobe", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    /// Run every enabled probe once, print the result and exit.
    #[arg(long, env = "NODEPROBE_ONESHOT")]
    pub oneshot: bool,

    /// Output format of --oneshot.
    #[arg(long, env = "NODEPROBE_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,

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

    /// Log filter (tracing env-filter syntax), logs go to stderr.
    #[arg(long, env = "NODEPROBE_LOG", default_value = "warn")]
    pub log_level: String,

    #[command(flatten)]
    pub probe_configs: ProbeConfigs,

    #[command(flatten)]
    pub log_monitors: probes::logs::LogMonitorArgs,

    #[command(subcommand)]
    pub command: Option<crate::logs_cmd::Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Cli {
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
    fn hostname_override_wins() {
        let cli = Cli::parse_from(["nodeprobe", "--hostname-override", "node-a"]);
        assert_eq!(cli.node_name(), "node-a");
    }
}
