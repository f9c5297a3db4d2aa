//! Native node checks for nodeprobe.
//!
//! Every check implements one trait, [`Probe`]. A probe reads the host only through the
//! injected [`HostPaths`] root (never a literal `/proc`), runs under a deadline enforced by
//! [`run_probe`], and reports one tri-state [`Outcome`] per node condition it owns.
//! This crate knows nothing about Kubernetes: reporters live in the agent crate.

pub mod clients;
pub mod findings;
pub mod host;
pub mod logs;
pub mod plugins;
pub mod registry;
pub(crate) mod sys;
#[cfg(test)]
mod testing;
pub mod timefmt;

pub use sys::release_code_pages;

// The probes, in report order (see `registry`): one line each.
probe_table! {
    inodes: inodes::InodesConfig,
    pid_pressure: pid_pressure::PidPressureConfig,
    fd_pressure: fd_pressure::FdPressureConfig,
    psi: psi::PsiConfig,
    readonly_mounts: readonly_mounts::ReadonlyMountsConfig,
    hung_tasks: hung_tasks::HungTasksConfig,
    systemd: systemd::SystemdConfig,
    ntp: ntp::NtpConfig,
    runtime: runtime::RuntimeConfig,
    kubelet: kubelet::KubeletConfig,
    spot: spot::SpotConfig,
    network: network::NetworkConfig,
}

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use host::HostPaths;
pub use registry::{ProbeDecl, ProbeSettings};

/// The node condition a probe owns, with the names users already know (NPD polarity:
/// `True` means the problem is present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConditionSpec {
    /// Condition type, e.g. `InodesPressure`.
    pub condition: &'static str,
    /// Reason while healthy (`False`), e.g. `NodeHasNoInodesPressure`.
    pub healthy_reason: &'static str,
    /// Message while healthy.
    pub healthy_message: &'static str,
    /// Default reason while the problem is present (`True`).
    pub problem_reason: &'static str,
    /// Reason of the temporary event emitted once when the condition turns `True`, if any.
    pub problem_event: Option<&'static str>,
}

impl ConditionSpec {
    /// A condition without a problem event.
    pub const fn new(
        condition: &'static str,
        healthy_reason: &'static str,
        healthy_message: &'static str,
        problem_reason: &'static str,
    ) -> Self {
        ConditionSpec {
            condition,
            healthy_reason,
            healthy_message,
            problem_reason,
            problem_event: None,
        }
    }

    /// The same, with a temporary event `reason` when it turns `True`.
    pub const fn with_problem_event(self, reason: &'static str) -> Self {
        ConditionSpec {
            problem_event: Some(reason),
            ..self
        }
    }
}

/// The result of one check of one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Healthy. `detail` is an informative line for humans (`--oneshot`); the condition
    /// itself carries the healthy reason and message.
    Ok { detail: Option<String> },
    /// The problem is present.
    Problem { reason: String, message: String },
    /// The check could not run or could not decide; `error` says why.
    Unknown { error: String },
    /// The thing this condition watches does not exist here (e.g. no cloud for the spot
    /// probe, no docker for DockerOffline): no condition is written.
    NotApplicable { why: String },
}

impl Outcome {
    pub fn ok() -> Self {
        Outcome::Ok { detail: None }
    }
    pub fn ok_with(detail: impl Into<String>) -> Self {
        Outcome::Ok {
            detail: Some(detail.into()),
        }
    }
    pub fn problem(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Problem {
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub fn unknown(error: impl Into<String>) -> Self {
        Outcome::Unknown {
            error: error.into(),
        }
    }
    pub fn not_applicable(why: impl Into<String>) -> Self {
        Outcome::NotApplicable { why: why.into() }
    }

    /// Condition status in NPD polarity, `None` when not applicable.
    pub fn status(&self) -> Option<ConditionStatus> {
        match self {
            Outcome::Ok { .. } => Some(ConditionStatus::False),
            Outcome::Problem { .. } => Some(ConditionStatus::True),
            Outcome::Unknown { .. } => Some(ConditionStatus::Unknown),
            Outcome::NotApplicable { .. } => None,
        }
    }

    /// Reason and message of the condition this outcome produces.
    pub fn reason_message(&self, spec: &ConditionSpec) -> (String, String) {
        match self {
            Outcome::Ok { .. } => (
                spec.healthy_reason.to_string(),
                spec.healthy_message.to_string(),
            ),
            Outcome::Problem { reason, message } => (reason.clone(), message.clone()),
            // NPD keeps the default reason for Unknown and puts the error in the message.
            Outcome::Unknown { error } => (spec.healthy_reason.to_string(), error.clone()),
            Outcome::NotApplicable { why } => ("NotApplicable".to_string(), why.clone()),
        }
    }
}

/// Node condition status, NPD polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One condition's outcome from one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub spec: ConditionSpec,
    pub outcome: Outcome,
}

/// What a check returns: one finding per condition the probe owns.
pub type Findings = Vec<Finding>;

/// The future a check returns (boxed so probes can live behind `dyn Probe`).
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Findings> + Send + 'a>>;

/// One native check.
///
/// `check` must not block the async runtime: file-system work goes through
/// [`blocking`]. It need not enforce its own deadline: [`run_probe`] does, and a check
/// that overruns it reports `Unknown` for every condition it owns.
pub trait Probe: Send + Sync {
    /// The probe's declaration: name, event source, conditions.
    fn decl(&self) -> &'static ProbeDecl;
    /// Stable name used by `--probes` / `--disable-probes`.
    fn name(&self) -> &'static str {
        self.decl().name
    }
    /// The conditions this probe owns, in report order.
    fn conditions(&self) -> &[ConditionSpec] {
        self.decl().conditions
    }
    /// Deadline of one check.
    fn timeout(&self) -> Duration;
    /// Period between checks in daemon mode.
    fn interval(&self) -> Duration;
    /// Run the check once.
    fn check(&self) -> CheckFuture<'_>;
}

/// A probe whose check is a function (scripted checks, tests).
pub struct FnProbe {
    pub decl: &'static ProbeDecl,
    pub timeout: Duration,
    pub interval: Duration,
    pub check: Box<dyn Fn() -> CheckFuture<'static> + Send + Sync>,
}

impl Probe for FnProbe {
    fn decl(&self) -> &'static ProbeDecl {
        self.decl
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn check(&self) -> CheckFuture<'_> {
        (self.check)()
    }
}

/// The result of running one probe once, under its deadline.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    pub probe: &'static str,
    /// Event `source.component` of its events.
    pub source: &'static str,
    pub findings: Findings,
    pub duration: Duration,
}

impl ProbeRun {
    fn of(probe: &dyn Probe, findings: Findings, started: Instant) -> Self {
        ProbeRun {
            probe: probe.name(),
            source: probe.decl().source,
            findings,
            duration: started.elapsed(),
        }
    }
}

/// Run `probe` once under its own deadline. Never fails: a timeout becomes `Unknown`
/// for every condition the probe owns.
pub async fn run_probe(probe: &dyn Probe) -> ProbeRun {
    let started = Instant::now();
    let timeout = probe.timeout();
    let findings = match tokio::time::timeout(timeout, probe.check()).await {
        Ok(findings) => findings,
        Err(_) => all_unknown(probe, &timed_out(probe)),
    };
    ProbeRun::of(probe, findings, started)
}

fn timed_out(probe: &dyn Probe) -> String {
    format!(
        "{} check did not finish within {}",
        probe.name(),
        humanize(probe.timeout())
    )
}

fn all_unknown(probe: &dyn Probe, error: &str) -> Findings {
    probe
        .conditions()
        .iter()
        .map(|spec| Finding {
            spec: *spec,
            outcome: Outcome::unknown(error.to_string()),
        })
        .collect()
}

/// Blocking calls of one probe's checks that have not returned yet (see [`PeriodicProbe`]).
#[derive(Debug, Default)]
struct InFlight(std::sync::atomic::AtomicUsize);

tokio::task_local! {
    static IN_FLIGHT: std::sync::Arc<InFlight>;
}

/// Decrements the in-flight count when the blocking closure returns or panics.
struct InFlightGuard(std::sync::Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Runs one probe periodically (daemon mode) without piling up stuck blocking calls.
///
/// A check that overruns its deadline reports `Unknown` like [`run_probe`] and is
/// cancelled, but a [`blocking`] call it made (a `statvfs` on a hung NFS mount) cannot be:
/// it keeps a thread of the runtime's small blocking pool. While such a call has not
/// returned, later runs report `Unknown` ("previous check still running") without starting
/// another check, so a hung mount holds at most one pool thread per probe instead of one
/// more every interval.
pub struct PeriodicProbe {
    probe: std::sync::Arc<dyn Probe>,
    in_flight: std::sync::Arc<InFlight>,
    /// Start of the last check that overran its deadline.
    overran_at: Option<std::time::SystemTime>,
}

impl PeriodicProbe {
    pub fn new(probe: std::sync::Arc<dyn Probe>) -> Self {
        PeriodicProbe {
            probe,
            in_flight: std::sync::Arc::default(),
            overran_at: None,
        }
    }

    pub fn probe(&self) -> &dyn Probe {
        self.probe.as_ref()
    }

    /// Run the probe once under its deadline (see the type's documentation).
    pub async fn run(&mut self) -> ProbeRun {
        let started = Instant::now();
        let probe = self.probe.as_ref();
        if self.in_flight.0.load(std::sync::atomic::Ordering::Acquire) > 0 {
            let since = self
                .overran_at
                .map(timefmt::rfc3339)
                .unwrap_or_else(|| "an earlier check".to_string());
            let error = format!(
                "{} check not started: the previous check is still running (stuck since {since})",
                probe.name()
            );
            return ProbeRun::of(probe, all_unknown(probe, &error), started);
        }
        let since = std::time::SystemTime::now();
        let check = IN_FLIGHT.scope(std::sync::Arc::clone(&self.in_flight), probe.check());
        let findings = match tokio::time::timeout(probe.timeout(), check).await {
            Ok(findings) => findings,
            Err(_) => {
                self.overran_at = Some(since);
                all_unknown(probe, &timed_out(probe))
            }
        };
        ProbeRun::of(probe, findings, started)
    }
}

/// Run blocking host I/O off the async runtime. If the blocking task dies, the error is
/// returned as a string so the caller can report `Unknown`.
pub async fn blocking<T, F>(f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // Inside a [`PeriodicProbe`] check: count the call until the closure returns, even when
    // the check is cancelled at its deadline.
    let guard = IN_FLIGHT
        .try_with(|c| {
            c.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            InFlightGuard(std::sync::Arc::clone(c))
        })
        .ok();
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        f()
    })
    .await
    .map_err(|e| format!("check task failed: {e}"))
}

/// Convenience for single-condition probes.
pub fn single(spec: ConditionSpec, outcome: Outcome) -> Findings {
    vec![Finding { spec, outcome }]
}

/// Format a duration the way the flags take it (`30s`, `1500ms`).
pub fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Parse a duration flag: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 5m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => match logs::rules::parse_go_duration(s) {
            // NPD's flags take Go durations (`5m0s`, `1h30m`): accept them too.
            Ok(d) => d.as_secs_f64(),
            Err(_) => {
                return Err(format!(
                    "invalid duration {s:?}: unit must be ms, s, m or h"
                ))
            }
        },
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("invalid duration {s:?}: must be greater than zero"));
    }
    // Far beyond any sensible period, and safe to add to an Instant.
    const MAX_SECS: f64 = 366.0 * 86_400.0;
    if secs > MAX_SECS {
        return Err(format!("invalid duration {s:?}: at most 366 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse a percentage flag in `(0, 100]`.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("invalid percentage {s:?}"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(format!("percentage {s:?} must be in (0, 100]"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ConditionSpec = ConditionSpec::new(
        "TestCondition",
        "TestIsFine",
        "test is fine",
        "TestIsBroken",
    );

    /// A test probe declared by `decl` whose check is `check` (deadline 50 ms).
    fn scripted(
        decl: &'static ProbeDecl,
        check: impl Fn() -> CheckFuture<'static> + Send + Sync + 'static,
    ) -> FnProbe {
        FnProbe {
            decl,
            timeout: Duration::from_millis(50),
            interval: Duration::from_secs(1),
            check: Box::new(check),
        }
    }

    const SLEEPY: ProbeDecl = ProbeDecl {
        name: "sleepy",
        source: "sleepy-custom-plugin-monitor",
        conditions: &[SPEC],
    };

    #[tokio::test]
    async fn deadline_turns_a_hung_check_into_unknown() {
        let sleepy = scripted(&SLEEPY, || {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                single(SPEC, Outcome::ok())
            })
        });
        let run = run_probe(&sleepy).await;
        assert_eq!(run.findings.len(), 1);
        match &run.findings[0].outcome {
            Outcome::Unknown { error } => {
                assert_eq!(error, "sleepy check did not finish within 50ms")
            }
            other => panic!("expected Unknown, got {other:?}"),
        }
    }

    const HUNG: ProbeDecl = ProbeDecl {
        name: "hung",
        source: "hung-custom-plugin-monitor",
        conditions: &[SPEC],
    };

    #[tokio::test]
    async fn a_stuck_blocking_call_is_not_started_again() {
        use std::sync::atomic::Ordering;
        let (tx, rx) = std::sync::mpsc::channel();
        let checks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Its blocking work waits on a channel (a statvfs on a hung mount).
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (c, t) = (checks.clone(), threads.clone());
        let hung = scripted(&HUNG, move || {
            c.fetch_add(1, Ordering::SeqCst);
            let (rx, threads) = (std::sync::Arc::clone(&rx), std::sync::Arc::clone(&t));
            Box::pin(async move {
                let got = blocking(move || {
                    threads.fetch_add(1, Ordering::SeqCst);
                    let rx = rx.lock().map_err(|_| ())?;
                    rx.recv_timeout(Duration::from_secs(20)).map_err(|_| ())
                })
                .await;
                match got {
                    Ok(Ok(())) => single(SPEC, Outcome::ok()),
                    other => single(SPEC, Outcome::unknown(format!("{other:?}"))),
                }
            })
        });
        let mut p = PeriodicProbe::new(std::sync::Arc::new(hung));
        let unknown = |run: &ProbeRun| match &run.findings[..] {
            [Finding {
                outcome: Outcome::Unknown { error },
                ..
            }] => error.clone(),
            other => panic!("expected one Unknown, got {other:?}"),
        };

        let first = p.run().await;
        assert_eq!(unknown(&first), "hung check did not finish within 50ms");
        for _ in 0..3 {
            let again = p.run().await;
            let error = unknown(&again);
            assert!(
                error.starts_with(
                    "hung check not started: the previous check is still running (stuck since 20"
                ),
                "{error}"
            );
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1, "no second check started");
        assert_eq!(threads.load(Ordering::SeqCst), 1, "no second blocking call");

        // The mount recovers: the stuck call returns, and the next run checks again.
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.in_flight.0.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "stuck call never returned");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let recovered = p.run().await;
        assert_eq!(recovered.findings[0].outcome, Outcome::ok());
        assert_eq!(checks.load(Ordering::SeqCst), 2);
        assert_eq!(threads.load(Ordering::SeqCst), 2);

        // Outside a PeriodicProbe, blocking() is not counted.
        assert_eq!(blocking(|| 7).await, Ok(7));
        assert_eq!(p.in_flight.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn outcome_polarity_and_condition_text() {
        assert_eq!(Outcome::ok().status(), Some(ConditionStatus::False));
        assert_eq!(
            Outcome::problem("R", "m").status(),
            Some(ConditionStatus::True)
        );
        assert_eq!(
            Outcome::unknown("e").status(),
            Some(ConditionStatus::Unknown)
        );
        assert_eq!(Outcome::not_applicable("n").status(), None);
        assert_eq!(
            Outcome::ok_with("detail").reason_message(&SPEC),
            ("TestIsFine".into(), "test is fine".into())
        );
        assert_eq!(
            Outcome::unknown("no bus").reason_message(&SPEC),
            ("TestIsFine".into(), "no bus".into())
        );
    }

    #[test]
    fn durations_and_percentages() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("100000000000000000000").is_err());
        assert!(parse_duration("367d").is_err());
        assert_eq!(
            parse_duration("8784h"),
            Ok(Duration::from_secs(366 * 86_400))
        );
        assert!(parse_duration("3 days").is_err());
        assert_eq!(parse_duration("5m0s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0h0m").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1500ms");
        assert_eq!(parse_percent("80"), Ok(80.0));
        assert_eq!(parse_percent("85%"), Ok(85.0));
        assert!(parse_percent("0").is_err());
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("x").is_err());
    }
}
