//! `nodeprobe` binary: parse flags, set up logging, dispatch. All logic lives in the lib.

use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use nodeprobe::cli::{Cli, Command, Output};
use nodeprobe::{daemon, exit, npd, oneshot};

fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            // help/version go to stdout and succeed; every real usage error gets EX_USAGE
            // (clap's own default, 2, would collide with "Unknown").
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    init_logging(&cli.log_filter());
    for w in cli.npd.warnings() {
        tracing::warn!("{w}");
    }
    // A flag given on the command line or in the environment (not its default).
    let explicit = move |id: &str| {
        matches!(
            matches
                .try_get_raw(id)
                .ok()
                .flatten()
                // value_source panics on an id that does not exist: ask only for real ones
                .and_then(|_| matches.value_source(id)),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    match run(cli, &explicit) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("nodeprobe: {e:#}");
            ExitCode::from(exit::USAGE as u8)
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: `kubectl logs` and log shippers read plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli, explicit: &dyn Fn(&str) -> bool) -> anyhow::Result<i32> {
    match &cli.command {
        Some(Command::Logs(cmd)) => {
            return Ok(nodeprobe::logs_cmd::run(
                cmd,
                &cli.log_monitors,
                &cli.host_root,
            )?)
        }
        Some(Command::Eventer(args)) => {
            return Ok(
                nodeprobe::eventer::run_blocking(args.clone()).unwrap_or_else(|e| {
                    eprintln!("nodeprobe eventer: {e}");
                    e.exit_code()
                }),
            )
        }
        None => {}
    }
    // NPD's custom-plugin files: each turns on the native probe replacing its script.
    let plugins = npd::load_plugins(
        &cli.npd.custom_plugin_monitors,
        cli.npd.skip_unknown_plugins,
    )?;
    for e in &plugins.skipped {
        tracing::warn!("skipping custom-plugin file (--skip-unknown-plugins): {e}");
    }
    for m in &plugins.mappings {
        tracing::info!(file = %m.file, probe = m.probe, matched_by = %m.matched_by,
            "custom-plugin file mapped to a native probe");
        for n in &m.notes {
            tracing::warn!("{}: {n}", m.file);
        }
    }
    let names = npd::select_probes(&plugins, &cli.probes, &cli.disable_probes)?;
    for m in plugins
        .mappings
        .iter()
        .filter(|m| !names.contains(&m.probe))
    {
        tracing::warn!(
            "{}: probe {} is not run (--probes / --disable-probes)",
            m.file,
            m.probe
        );
    }
    let host = probes::HostPaths::new(&cli.host_root);
    if !cli.host_root.is_dir() {
        anyhow::bail!("--host-root {} is not a directory", cli.host_root.display());
    }
    let probe_set = npd::build_probes(&host, &cli.probe_configs, &names, &plugins, explicit);
    if !cli.oneshot {
        return run_daemon(&cli, &host, probe_set);
    }
    let node = cli.node_name();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let scan_options = probes::logs::scan::ScanOptions {
        host: host.clone(),
        kmsg_path: cli.log_monitors.kmsg_path.clone(),
    };
    // The rule files load on the log thread while the probes run: a bad one is a usage error
    // reported instead of any result.
    let logs = cli.oneshot_logs.then(|| cli.log_monitors.clone());
    let ran = runtime.block_on(oneshot::run_with_logs(probe_set, logs, scan_options));
    // A check stuck in the kernel (statvfs on a hung NFS mount) already timed out into
    // Unknown; do not wait for its thread on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    let (runs, scans) = match ran {
        Ok(r) => r,
        Err(oneshot::OneshotLogsError::Rules(e)) => return Err(e.into()),
        Err(e) => {
            eprintln!("nodeprobe: {e}");
            return Ok(exit::INTERNAL);
        }
    };
    let mut report = oneshot::Report::from_runs(node, &runs);
    if let Some(scans) = &scans {
        report.add_logs(scans);
    }
    match cli.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Table => print!("{}", report.to_table()),
    }
    Ok(report.exit_code())
}

fn run_daemon(
    cli: &Cli,
    host: &probes::HostPaths,
    probe_set: Vec<Box<dyn probes::Probe>>,
) -> anyhow::Result<i32> {
    // Every condition type nodeprobe can own, for --remove-stale-conditions.
    let all: Vec<probes::ConditionSpec> =
        probes::registry::build(host, &cli.probe_configs, probes::registry::PROBES)
            .iter()
            .flat_map(|p| p.conditions().to_vec())
            .collect();
    // Rule files are loaded and validated before anything starts: a bad file is a usage error.
    let logs = daemon::LogMonitorSetup {
        host: host.clone(),
        configs: cli.log_monitors.load_configs()?,
        options: cli.log_monitors.options(),
    };
    let config = daemon::DaemonConfig::from_cli(cli, probe_set, &all)?;
    let metrics = std::sync::Arc::new(nodeprobe::report::metrics::Metrics::new());
    match daemon::run_blocking_with_logs(config, metrics, logs) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("nodeprobe: {e}");
            Ok(exit::INTERNAL)
        }
    }
}
