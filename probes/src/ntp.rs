//! `ntp`: is the clock actually synchronised? Replaces `check_ntp.sh`, which only asked
//! whether `ntpd` or `chronyd` was "running".
//!
//! Two sources:
//! - the kernel's own answer, `adjtimex(2)` read-only ([`crate::sys::adjtimex_read`]):
//!   `STA_UNSYNC` / state `TIME_ERROR`, `maxerror`, `esterror`, decoded by the pure
//!   [`decode_timex`];
//! - which time daemon is active, over D-Bus (`--ntp-units`, default chronyd/chrony,
//!   ntpd/ntp/ntpsec, systemd-timesyncd: unit names differ by distro).
//!
//! The kernel's answer wins: a clock the kernel calls synchronised with a maximum error
//! within `--ntp-max-error` is healthy whatever runs (ptp4l/phc2sys, a vendor agent or any
//! daemon outside `--ntp-units` disciplines it); a missing daemon is then only noted.
//!
//! Problems (reason NodeHasNTPProblem; the message says which):
//! - **no time daemon active** while the clock is not synchronised within the bound (none
//!   of the units is `active` or `reloading`, or being started: `activating` other than a
//!   crash loop's `auto-restart`; the kernel state is added);
//! - **clock not synchronised for longer than `--ntp-grace`**;
//! - **maximum error above `--ntp-max-error`** while the kernel calls the clock synchronised
//!   (an unsynchronised kernel pins maxerror at 16 s, which says nothing more).
//!
//! How long has the clock been unsynchronised? The kernel does not say, so the probe takes
//! the start of the current unsynchronised period as the latest of what it knows:
//! - when the active daemon (the most recently started one) entered the active state
//!   (`ActiveEnterTimestampMonotonic`): a boot or a daemon restart starts a fresh grace, so
//!   they do not flap;
//! - if this process has seen the clock synchronised before, the first unsynchronised
//!   observation after that: a step of the clock (which sets `STA_UNSYNC` until the daemon's
//!   next update) starts a fresh grace too.
//!
//! In `--oneshot`, or right after nodeprobe starts, only the daemon's start time is known.
//!
//! Without D-Bus the daemons are unknown. Then a synchronised kernel (maxerror within the
//! bound) is healthy — something disciplines the clock — and an unsynchronised one is
//! Unknown, unless this process has itself seen it unsynchronised for longer than the grace
//! (a problem whatever runs). Both name the bus address tried.

use std::sync::Mutex;
use std::time::Duration;

use crate::clients::systemd::{
    dbus_budget, system_bus_address, SystemdClient, SystemdError, UnitState,
};
use crate::{humanize, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new("NTPProblem", "NodeHasNoNTPProblem", "node has no NTP problem", "NodeHasNTPProblem");

/// The default time daemon units, in the order they are reported.
pub const DEFAULT_UNITS: &[&str] = &[
    "chronyd.service",
    "chrony.service",
    "ntpd.service",
    "ntp.service",
    "ntpsec.service",
    "systemd-timesyncd.service",
];

/// `STA_UNSYNC`: the clock is not synchronised.
pub const STA_UNSYNC: i32 = 0x0040;
/// `STA_CLOCKERR`: clock hardware fault.
pub const STA_CLOCKERR: i32 = 0x1000;
/// `adjtimex` return value `TIME_ERROR`: clock not synchronised.
pub const TIME_ERROR: i32 = 5;

crate::probe_settings! {
    /// Settings of the ntp probe (flags and env twins).
    pub struct NtpConfig for "ntp" ("NTP") {
        /// Time daemon units, comma-separated; any one active is enough.
        #[arg(
            id = "ntp-units",
            long = "ntp-units",
            env = "NODEPROBE_NTP_UNITS",
            value_delimiter = ',',
            default_value = "chronyd.service,chrony.service,ntpd.service,ntp.service,ntpsec.service,systemd-timesyncd.service"
        )]
        pub units: Vec<String>,
        /// How long the clock may stay unsynchronised after the time daemon (re)started or the
        /// clock was stepped before it is a problem.
        #[arg(id = "ntp-grace", long = "ntp-grace", env = "NODEPROBE_NTP_GRACE", default_value = "10m", value_parser = crate::parse_duration)]
        pub grace: Duration,
        /// Problem when the kernel's maximum clock error is above this while synchronised.
        #[arg(id = "ntp-max-error", long = "ntp-max-error", env = "NODEPROBE_NTP_MAX_ERROR", default_value = "1s", value_parser = crate::parse_duration)]
        pub max_error: Duration,
    }
    schedule:
        /// Deadline of one check (D-Bus included).
        timeout "10s", interval "60s";
}

/// The kernel's clock discipline state, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelClock {
    /// Neither `STA_UNSYNC` nor `STA_CLOCKERR` is set and the state is not `TIME_ERROR`.
    pub synced: bool,
    /// `adjtimex` return value.
    pub state: i32,
    /// `status` bits.
    pub status: i32,
    pub maxerror: Duration,
    pub esterror: Duration,
}

/// Decode a read-only `adjtimex` result (pure).
pub fn decode_timex(state: i32, status: i32, maxerror_us: i64, esterror_us: i64) -> KernelClock {
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    KernelClock {
        synced: state != TIME_ERROR && status & (STA_UNSYNC | STA_CLOCKERR) == 0,
        state,
        status,
        maxerror: us(maxerror_us),
        esterror: us(esterror_us),
    }
}

/// Name of an `adjtimex` clock state.
pub fn state_name(state: i32) -> String {
    match state {
        0 => "TIME_OK".into(),
        1 => "TIME_INS".into(),
        2 => "TIME_DEL".into(),
        3 => "TIME_OOP".into(),
        4 => "TIME_WAIT".into(),
        5 => "TIME_ERROR".into(),
        other => format!("state {other}"),
    }
}

impl KernelClock {
    /// e.g. `STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.status & STA_UNSYNC != 0 {
            parts.push("STA_UNSYNC".to_string());
        }
        if self.status & STA_CLOCKERR != 0 {
            parts.push("STA_CLOCKERR".to_string());
        }
        parts.push(format!("state {}", state_name(self.state)));
        parts.push(format!("maxerror {}", humanize(self.maxerror)));
        parts.push(format!("esterror {}", humanize(self.esterror)));
        parts.join(", ")
    }
}

/// What this process has seen of the clock across checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncMemory {
    /// First observation (CLOCK_MONOTONIC µs) of the current unsynchronised period.
    pub unsynced_since_us: Option<u64>,
    /// Whether this process has ever seen the clock synchronised.
    pub saw_synced: bool,
}

impl SyncMemory {
    /// Record one observation.
    pub fn observe(&mut self, synced: bool, now_us: u64) {
        if synced {
            self.saw_synced = true;
            self.unsynced_since_us = None;
        } else if self.unsynced_since_us.is_none() {
            self.unsynced_since_us = Some(now_us);
        }
    }
}

/// A unit being started (`activating`), but not waiting to be restarted after a crash.
fn is_starting(u: &UnitState) -> bool {
    u.active_state == "activating" && u.sub_state != "auto-restart"
}

/// Everything [`evaluate`] judges.
#[derive(Debug, Clone)]
pub struct NtpInputs {
    /// The kernel's clock state, or why it could not be read.
    pub kernel: Result<KernelClock, String>,
    /// The configured units' states, or why D-Bus could not tell.
    pub units: Result<Vec<UnitState>, String>,
    /// Now, CLOCK_MONOTONIC µs (the clock of `ActiveEnterTimestampMonotonic`).
    pub now_us: u64,
    /// Memory after recording this check's kernel observation.
    pub memory: SyncMemory,
    pub grace: Duration,
    pub max_error: Duration,
}

fn since(now_us: u64, then_us: u64) -> Duration {
    Duration::from_micros(now_us.saturating_sub(then_us))
}

/// Format a long duration for a message (`2h13m`, `45s`, `250ms`).
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        format!("{}ms", d.as_millis())
    } else if s < 120 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 2 * 86400 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{}h", s / 86400, (s % 86400) / 3600)
    }
}

/// Judge the clock (pure).
pub fn evaluate(i: &NtpInputs) -> Outcome {
    let mut problems: Vec<String> = Vec::new();
    let mut unknowns: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // Which daemon runs, and since when.
    // Active daemons with the time they became active; one being started (not a crash
    // loop's `auto-restart`) counts as active from now, so a restart does not flap.
    let mut active: Vec<(&UnitState, u64)> = Vec::new();
    let mut no_daemon: Option<String> = None;
    match &i.units {
        Ok(units) => {
            let mut seen = Vec::new();
            for u in units {
                let enter = if u.is_active() {
                    u.active_enter_monotonic_us
                } else if is_starting(u) {
                    i.now_us
                } else {
                    continue;
                };
                if !seen.contains(&u.object_path) {
                    seen.push(u.object_path.clone());
                    active.push((u, enter));
                }
            }
            if active.is_empty() {
                let states: Vec<String> = units
                    .iter()
                    .map(|u| {
                        if u.exists() {
                            format!("{} {}", u.name, u.active_state)
                        } else {
                            format!("{} not found", u.name)
                        }
                    })
                    .collect();
                no_daemon = Some(format!("no time daemon active ({})", states.join(", ")));
            }
        }
        Err(e) => notes.push(format!("time daemons not checked: {e}")),
    }
    let daemon_names = active
        .iter()
        .map(|(u, _)| u.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    // The most recently started active daemon, if systemd told us when.
    let daemon_start = active
        .iter()
        .filter(|(_, enter)| *enter > 0)
        .max_by_key(|(_, enter)| *enter)
        .copied();

    match &i.kernel {
        Err(e) => {
            // the kernel cannot vouch for the clock: a missing daemon stays a problem
            problems.extend(no_daemon.take());
            unknowns.push(format!("cannot read the kernel clock state: {e}"))
        }
        Ok(k) if k.synced => {
            if k.maxerror > i.max_error {
                problems.extend(no_daemon.take());
                problems.push(format!(
                    "clock maximum error {} exceeds {} ({})",
                    humanize(k.maxerror),
                    humanize(i.max_error),
                    k.describe()
                ));
            } else {
                notes.insert(0, format!("clock synchronised ({})", k.describe()));
                if let Some(n) = no_daemon.take() {
                    notes.push(format!("{n}: the clock is disciplined by something else"));
                }
            }
        }
        Ok(k) if !active.is_empty() => {
            // A daemon runs: how long has it had to synchronise the clock?
            let observed = i.memory.unsynced_since_us.filter(|_| i.memory.saw_synced);
            // The start of the period judged, and how to say what it is measured from.
            let (start, basis, starting) = match (daemon_start, observed) {
                (Some((_, enter)), Some(o)) if o > enter => (
                    Some(o),
                    "since it was last seen synchronised".to_string(),
                    None,
                ),
                (Some((d, enter)), _) if !d.is_active() => (Some(enter), String::new(), Some(d)),
                (Some((d, enter)), _) => {
                    (Some(enter), format!("since {} became active", d.name), None)
                }
                (None, Some(o)) => (
                    Some(o),
                    "since it was last seen synchronised".to_string(),
                    None,
                ),
                (None, None) => (
                    i.memory.unsynced_since_us,
                    "since nodeprobe first saw it".to_string(),
                    None,
                ),
            };
            let elapsed = start.map(|s| since(i.now_us, s)).unwrap_or_default();
            let phrase = match starting {
                Some(d) => format!("{} is starting", d.name),
                None => format!("{} {basis}", age(elapsed)),
            };
            if elapsed > i.grace {
                problems.push(format!(
                    "clock not synchronised for {} {basis}, longer than the {} grace ({}; active: {daemon_names})",
                    age(elapsed),
                    age(i.grace),
                    k.describe()
                ));
            } else {
                notes.insert(
                    0,
                    format!(
                        "clock not synchronised yet, {phrase}, within the {} grace ({})",
                        age(i.grace),
                        k.describe()
                    ),
                );
            }
        }
        Ok(k) if i.units.is_ok() => {
            // No daemon active and the kernel not synchronised.
            problems.extend(no_daemon.take());
            problems.push(format!("clock not synchronised ({})", k.describe()));
        }
        Ok(k) => {
            // D-Bus unknown: only our own observations can make it a problem.
            let seen_for = i
                .memory
                .unsynced_since_us
                .map(|s| since(i.now_us, s))
                .unwrap_or_default();
            if seen_for > i.grace {
                problems.push(format!(
                    "clock not synchronised for at least {} (seen by nodeprobe), longer than the {} grace ({})",
                    age(seen_for),
                    age(i.grace),
                    k.describe()
                ));
            } else {
                let why = i.units.as_ref().err().cloned().unwrap_or_default();
                unknowns.push(format!(
                    "clock not synchronised ({}) and the time daemons cannot be checked: {why}",
                    k.describe()
                ));
            }
        }
    }

    if !problems.is_empty() {
        let mut msg = problems.join("; ");
        if let Err(e) = &i.units {
            msg.push_str(&format!("; time daemons not checked: {e}"));
        }
        return Outcome::problem(CONDITION.problem_reason, msg);
    }
    if !unknowns.is_empty() {
        return Outcome::unknown(unknowns.join("; "));
    }
    if !active.is_empty() {
        notes.push(format!("active: {daemon_names}"));
    }
    Outcome::ok_with(notes.join("; "))
}

/// CLOCK_MONOTONIC in microseconds (the clock systemd's `*TimestampMonotonic` use).
fn monotonic_us() -> Result<u64, String> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(|e| format!("clock_gettime(CLOCK_MONOTONIC): {}", e.desc()))?;
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000).saturating_add(nanos / 1000))
}

/// Read the kernel clock state (a single non-blocking system call).
pub fn read_kernel_clock() -> Result<KernelClock, String> {
    crate::sys::adjtimex_read()
        .map(|t| decode_timex(t.state, t.status, t.maxerror_us, t.esterror_us))
        .map_err(|e| format!("adjtimex: {e}"))
}

/// The states of `units` over one connection.
pub async fn unit_states(
    client: &SystemdClient,
    units: &[String],
) -> Result<Vec<UnitState>, SystemdError> {
    let mut out = Vec::with_capacity(units.len());
    for name in units.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
        out.push(client.unit(name).await?);
    }
    Ok(out)
}

pub struct NtpProbe {
    address: String,
    config: NtpConfig,
    memory: Mutex<SyncMemory>,
}

impl NtpProbe {
    /// The bus address comes from `DBUS_SYSTEM_BUS_ADDRESS` or the host root.
    pub fn new(host: HostPaths, config: NtpConfig) -> Self {
        Self::with_address(system_bus_address(&host), config)
    }

    /// A probe on an explicit bus address.
    pub fn with_address(address: impl Into<String>, config: NtpConfig) -> Self {
        NtpProbe {
            address: address.into(),
            config,
            memory: Mutex::new(SyncMemory::default()),
        }
    }

    async fn units(&self) -> Result<Vec<UnitState>, String> {
        let budget = dbus_budget(self.config.timeout);
        let work = async {
            let client = SystemdClient::connect(&self.address, budget).await?;
            unit_states(&client, &self.config.units).await
        };
        match tokio::time::timeout(budget, work).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(SystemdError::Timeout {
                address: self.address.clone(),
                what: "time daemon units".to_string(),
                timeout: budget,
            }
            .to_string()),
        }
    }
}

crate::probe_impl!(NtpConfig => NtpProbe, "ntp-problem-custom-plugin-monitor", [CONDITION]);

impl NtpProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let units = self.units().await;
            let kernel = read_kernel_clock();
            let now_us = match monotonic_us() {
                Ok(n) => n,
                Err(e) => return single(CONDITION, Outcome::unknown(e)),
            };
            let memory = {
                let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(k) = &kernel {
                    m.observe(k.synced, now_us);
                }
                *m
            };
            let outcome = evaluate(&NtpInputs {
                kernel,
                units,
                now_us,
                memory,
                grace: self.config.grace,
                max_error: self.config.max_error,
            });
            single(CONDITION, outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    /// What this machine's kernel reports: nothing disciplines the clock.
    fn unsynced() -> KernelClock {
        decode_timex(5, 0x40, 16_000_000, 16_000_000)
    }

    /// A kernel disciplined by chrony: PLL mode, state TIME_OK.
    fn synced(maxerror_us: i64) -> KernelClock {
        decode_timex(0, 0x2001, maxerror_us, 1_500)
    }

    fn unit(name: &str, load: &str, active: &str, enter_s: u64) -> UnitState {
        UnitState {
            name: name.into(),
            id: name.into(),
            load_state: load.into(),
            active_state: active.into(),
            sub_state: String::new(),
            active_enter_monotonic_us: enter_s * SEC,
            object_path: format!("/unit/{name}"),
        }
    }

    fn inputs(kernel: KernelClock, units: Result<Vec<UnitState>, String>, now_s: u64) -> NtpInputs {
        let mut memory = SyncMemory::default();
        memory.observe(kernel.synced, now_s * SEC);
        NtpInputs {
            kernel: Ok(kernel),
            units,
            now_us: now_s * SEC,
            memory,
            grace: Duration::from_secs(600),
            max_error: Duration::from_secs(1),
        }
    }

    fn chrony_since(enter_s: u64) -> Result<Vec<UnitState>, String> {
        Ok(vec![
            unit("chronyd.service", "loaded", "active", enter_s),
            unit("ntpd.service", "not-found", "inactive", 0),
        ])
    }

    #[test]
    fn decodes_the_unsynced_kernel_of_this_machine() {
        let k = unsynced();
        assert!(!k.synced);
        assert_eq!(k.maxerror, Duration::from_secs(16));
        assert_eq!(
            k.describe(),
            "STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s"
        );
    }

    #[test]
    fn decodes_a_synced_kernel() {
        let k = synced(25_000);
        assert!(k.synced);
        assert_eq!(k.maxerror, Duration::from_millis(25));
        assert_eq!(k.esterror, Duration::from_micros(1_500));
        assert_eq!(k.describe(), "state TIME_OK, maxerror 25ms, esterror 1ms");
        // A pending leap second is still synchronised.
        assert!(decode_timex(1, 0x2011, 10_000, 0).synced);
    }

    #[test]
    fn error_state_or_flags_alone_mean_unsynced() {
        assert!(!decode_timex(5, 0, 1000, 0).synced);
        assert!(!decode_timex(0, STA_UNSYNC, 1000, 0).synced);
        assert!(!decode_timex(0, STA_CLOCKERR, 1000, 0).synced);
        // Negative values from a broken kernel do not panic.
        assert_eq!(decode_timex(0, 0, -1, -5).maxerror, Duration::ZERO);
    }

    #[test]
    fn synced_with_a_daemon_is_ok() {
        let out = evaluate(&inputs(synced(25_000), chrony_since(100), 5000));
        assert_eq!(
            out,
            Outcome::ok_with(
                "clock synchronised (state TIME_OK, maxerror 25ms, esterror 1ms); active: chronyd.service"
            )
        );
    }

    #[test]
    fn maxerror_over_the_bound_is_a_problem() {
        let out = evaluate(&inputs(synced(2_500_000), chrony_since(100), 5000));
        assert_eq!(
            out,
            Outcome::problem(
                "NodeHasNTPProblem",
                "clock maximum error 2500ms exceeds 1s (state TIME_OK, maxerror 2500ms, esterror 1ms)"
            )
        );
    }

    #[test]
    fn no_daemon_active_is_a_problem_saying_so() {
        let units = Ok(vec![
            unit("chronyd.service", "not-found", "inactive", 0),
            unit("ntpd.service", "loaded", "failed", 0),
        ]);
        let out = evaluate(&inputs(unsynced(), units, 5000));
        assert_eq!(
            out,
            Outcome::problem(
                "NodeHasNTPProblem",
                "no time daemon active (chronyd.service not found, ntpd.service failed); clock not synchronised (STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s)"
            )
        );
        // Over the error bound: both said.
        let units = Ok(vec![unit("chronyd.service", "loaded", "inactive", 0)]);
        match evaluate(&inputs(synced(2_500_000), units, 5000)) {
            Outcome::Problem { message, .. } => assert!(
                message.starts_with(
                    "no time daemon active (chronyd.service inactive); clock maximum error 2500ms"
                ),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_kernel_synchronised_within_the_bound_wins_whatever_runs() {
        // ptp4l/phc2sys or a vendor agent outside --ntp-units keeps the clock right.
        let units = Ok(vec![unit("chronyd.service", "loaded", "inactive", 0)]);
        assert_eq!(
            evaluate(&inputs(synced(1000), units, 5000)),
            Outcome::ok_with(
                "clock synchronised (state TIME_OK, maxerror 1ms, esterror 1ms); no time daemon active (chronyd.service inactive): the clock is disciplined by something else"
            )
        );
    }

    #[test]
    fn unsynced_within_grace_after_daemon_start_is_not_a_problem() {
        // chronyd started 60 s ago (boot or restart): not yet a problem.
        let out = evaluate(&inputs(unsynced(), chrony_since(4940), 5000));
        assert_eq!(
            out,
            Outcome::ok_with(
                "clock not synchronised yet, 60s since chronyd.service became active, within the 10m0s grace (STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s); active: chronyd.service"
            )
        );
    }

    #[test]
    fn unsynced_past_grace_is_a_problem_saying_unsynchronised() {
        let out = evaluate(&inputs(unsynced(), chrony_since(100), 5000));
        assert_eq!(
            out,
            Outcome::problem(
                "NodeHasNTPProblem",
                "clock not synchronised for 1h21m since chronyd.service became active, longer than the 10m0s grace (STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s; active: chronyd.service)"
            )
        );
    }

    #[test]
    fn a_step_after_being_synced_starts_a_fresh_grace() {
        // Seen synced, then unsynced from t=4900 (a clock step); chronyd active for ages.
        let mut memory = SyncMemory::default();
        memory.observe(true, 4800 * SEC);
        memory.observe(false, 4900 * SEC);
        memory.observe(false, 5000 * SEC);
        assert_eq!(memory.unsynced_since_us, Some(4900 * SEC));
        let mut i = inputs(unsynced(), chrony_since(100), 5000);
        i.memory = memory;
        assert!(
            matches!(evaluate(&i), Outcome::Ok { .. }),
            "{:?}",
            evaluate(&i)
        );
        i.now_us = 5600 * SEC;
        match evaluate(&i) {
            Outcome::Problem { message, .. } => assert!(
                message.starts_with(
                    "clock not synchronised for 11m40s since it was last seen synchronised"
                ),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_daemon_being_restarted_is_not_missing_but_a_crash_loop_is() {
        let mut u = unit("chronyd.service", "loaded", "activating", 100);
        u.sub_state = "start".into();
        assert_eq!(
            evaluate(&inputs(unsynced(), Ok(vec![u.clone()]), 5000)),
            Outcome::ok_with(
                "clock not synchronised yet, chronyd.service is starting, within the 10m0s grace (STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s); active: chronyd.service"
            )
        );
        u.sub_state = "auto-restart".into();
        match evaluate(&inputs(unsynced(), Ok(vec![u]), 5000)) {
            Outcome::Problem { message, .. } => assert!(
                message.starts_with("no time daemon active (chronyd.service activating)"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aliases_count_once_and_the_latest_start_wins() {
        let mut a = unit("chronyd.service", "loaded", "active", 4900);
        a.object_path = "/unit/chrony_2eservice".into();
        let mut b = unit("chrony.service", "loaded", "active", 4900);
        b.object_path = "/unit/chrony_2eservice".into();
        let old = unit("systemd-timesyncd.service", "loaded", "active", 10);
        let out = evaluate(&inputs(unsynced(), Ok(vec![a, b, old]), 5000));
        match out {
            Outcome::Ok { detail: Some(d) } => {
                assert!(
                    d.contains("100s since chronyd.service became active"),
                    "{d}"
                );
                assert!(
                    d.ends_with("active: chronyd.service, systemd-timesyncd.service"),
                    "{d}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_dbus_a_synced_kernel_is_ok_and_an_unsynced_one_unknown() {
        let err = Err("cannot connect to the D-Bus system bus at unix:path=/x: No such file or directory (os error 2)".to_string());
        match evaluate(&inputs(synced(20_000), err.clone(), 5000)) {
            Outcome::Ok { detail: Some(d) } => {
                assert!(d.starts_with("clock synchronised"), "{d}");
                assert!(
                    d.contains("time daemons not checked: cannot connect"),
                    "{d}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            evaluate(&inputs(unsynced(), err.clone(), 5000)),
            Outcome::unknown(
                "clock not synchronised (STA_UNSYNC, state TIME_ERROR, maxerror 16s, esterror 16s) and the time daemons cannot be checked: cannot connect to the D-Bus system bus at unix:path=/x: No such file or directory (os error 2)"
            )
        );
        // Seen unsynchronised by this process for longer than the grace: a problem anyway.
        let mut i = inputs(unsynced(), err, 5000);
        i.memory.unsynced_since_us = Some(4000 * SEC);
        match evaluate(&i) {
            Outcome::Problem { message, .. } => {
                assert!(
                    message.starts_with(
                        "clock not synchronised for at least 16m40s (seen by nodeprobe)"
                    ),
                    "{message}"
                );
                assert!(message.contains("unix:path=/x"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreadable_kernel_state_is_unknown_unless_no_daemon_runs() {
        let mut i = inputs(unsynced(), chrony_since(100), 5000);
        i.kernel = Err("adjtimex: Operation not permitted".into());
        assert_eq!(
            evaluate(&i),
            Outcome::unknown(
                "cannot read the kernel clock state: adjtimex: Operation not permitted"
            )
        );
        i.units = Ok(vec![unit("chronyd.service", "not-found", "inactive", 0)]);
        assert!(matches!(evaluate(&i), Outcome::Problem { .. }));
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(Duration::from_millis(250)), "250ms");
        assert_eq!(age(Duration::from_secs(45)), "45s");
        assert_eq!(age(Duration::from_secs(600)), "10m0s");
        assert_eq!(age(Duration::from_secs(3 * 3600 + 60)), "3h1m");
        assert_eq!(age(Duration::from_secs(3 * 86400 + 7200)), "3d2h");
    }

    #[test]
    fn the_real_kernel_reads_and_decodes() {
        let k = read_kernel_clock().expect("adjtimex read-only");
        assert!((0..=5).contains(&k.state));
        assert!(monotonic_us().unwrap() > 0);
    }
}
