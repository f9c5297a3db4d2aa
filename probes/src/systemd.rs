//! `systemd`: is the host's service manager healthy? Replaces `check_systemd.sh`, which only
//! asked whether `systemctl --version` and `systemctl get-default` run.
//!
//! Over D-Bus (see [`crate::clients::systemd`]) it reads the manager's `SystemState`, the
//! failed units (`ListUnitsFiltered ["failed"]`) and the default target. Verdicts:
//!
//! | SystemState | condition |
//! |---|---|
//! | `running` | False; the detail names the default target |
//! | `degraded` | True naming the failed units, minus `--systemd-ignore-units` (names or globs); False when every failed unit is ignored |
//! | `initializing`, `starting` (boot in progress) | failed units are judged as for `degraded`; with none, False ("boot in progress") — a slow boot is not a systemd error |
//! | `maintenance` (rescue or emergency mode) | True |
//! | `stopping` (shutdown in progress), `offline`, `unknown`, anything else | Unknown: health cannot be judged |
//!
//! A default target systemd cannot resolve (`GetDefaultTarget` answered with systemd's own
//! error) is a problem, as the users' script meant it; a call the bus or its policy refused
//! is only noted in the detail; a bus that cannot be reached or does not
//! answer within the deadline is Unknown naming the address tried.


use crate::clients::systemd::{
    dbus_budget, system_bus_address, ListedUnit, SystemdClient, SystemdError,
};
use crate::{single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new("SystemdCheck", "NodeHasNoSystemdError", "node has no systemd error", "NodeHasSystemdError");

crate::probe_settings! {
    /// Settings of the systemd probe (flags and env twins).
    pub struct SystemdConfig for "systemd" ("SYSTEMD") {
        /// Failed units that are not a problem: unit names or globs (`*`, `?`), comma-separated.
        #[arg(
            id = "systemd-ignore-units",
            long = "systemd-ignore-units",
            env = "NODEPROBE_SYSTEMD_IGNORE_UNITS",
            value_delimiter = ','
        )]
        pub ignore_units: Vec<String>,
    }
    schedule:
        /// Deadline of one check (connecting to D-Bus and every call included).
        timeout "10s", interval "60s";
}

/// What systemd told us (the input of [`evaluate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdView {
    pub state: String,
    pub failed: Vec<String>,
    pub default_target: DefaultTarget,
}

/// The answer to `GetDefaultTarget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultTarget {
    /// e.g. `multi-user.target`.
    Known(String),
    /// systemd itself could not resolve it (e.g. a dangling `default.target` link): the
    /// failure the users' `systemctl get-default` check was after.
    Unresolvable(String),
    /// The bus refused or did not route the call (access denied, unknown method): says
    /// nothing about systemd's health, only noted.
    Unreadable(String),
}

/// D-Bus error names that come from the bus or its policy rather than from systemd.
const BUS_LEVEL_ERRORS: &[&str] = &[
    "org.freedesktop.DBus.Error.AccessDenied",
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Timeout",
    "org.freedesktop.DBus.Error.LimitsExceeded",
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
];

/// Match a unit name against a pattern with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `unit` matches an ignore entry. An entry without a unit type suffix also matches
/// `<entry>.service`, as `systemctl` accepts `foo` for `foo.service`.
pub fn is_ignored(unit: &str, ignore: &[String]) -> bool {
    ignore
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .any(|p| {
            glob_match(p, unit) || (!p.contains('.') && glob_match(&format!("{p}.service"), unit))
        })
}

/// Judge what systemd reported (pure).
pub fn evaluate(view: &SystemdView, ignore: &[String]) -> Outcome {
    let (ignored, failed): (Vec<&String>, Vec<&String>) =
        view.failed.iter().partition(|u| is_ignored(u, ignore));
    let list = |units: &[&String]| {
        units
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut problems = Vec::new();
    let state = view.state.as_str();
    let judge_failed = matches!(state, "running" | "degraded" | "initializing" | "starting");
    if judge_failed && !failed.is_empty() {
        problems.push(format!(
            "systemd is {state}: {} failed unit{}: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            list(&failed)
        ));
    }
    if state == "maintenance" {
        problems.push("systemd is in maintenance (rescue or emergency) mode".to_string());
    }
    if let DefaultTarget::Unresolvable(e) = &view.default_target {
        problems.push(format!("default target cannot be resolved: {e}"));
    }
    if !problems.is_empty() {
        let mut msg = problems.join("; ");
        if !ignored.is_empty() {
            msg.push_str(&format!(" (ignored failed: {})", list(&ignored)));
        }
        return Outcome::problem(CONDITION.problem_reason, msg);
    }
    if !judge_failed {
        return Outcome::unknown(format!(
            "systemd is {state}: its health cannot be judged in this state"
        ));
    }
    let target = match &view.default_target {
        DefaultTarget::Known(t) => t.clone(),
        DefaultTarget::Unresolvable(e) | DefaultTarget::Unreadable(e) => {
            format!("unreadable ({e})")
        }
    };
    let mut detail = match state {
        "initializing" | "starting" => {
            format!(
                "systemd is {state} (boot in progress), no failed unit, default target {target}"
            )
        }
        _ => format!("systemd is {state}, default target {target}"),
    };
    if !ignored.is_empty() {
        detail.push_str(&format!("; ignored failed units: {}", list(&ignored)));
    } else if state == "degraded" {
        detail.push_str("; no failed unit listed any more");
    }
    Outcome::ok_with(detail)
}

/// Ask systemd for everything [`evaluate`] needs.
pub async fn gather(client: &SystemdClient) -> Result<SystemdView, SystemdError> {
    let state = client.system_state().await?;
    let failed: Vec<ListedUnit> = client.failed_units().await?;
    let default_target = match client.default_target().await {
        Ok(t) => DefaultTarget::Known(t),
        Err(SystemdError::Rejected { name, message, .. }) => {
            if BUS_LEVEL_ERRORS.contains(&name.as_str()) {
                DefaultTarget::Unreadable(format!("{name}: {message}"))
            } else {
                DefaultTarget::Unresolvable(format!("{name}: {message}"))
            }
        }
        Err(e) => return Err(e),
    };
    Ok(SystemdView {
        state,
        failed: failed.into_iter().map(|u| u.name).collect(),
        default_target,
    })
}

pub struct SystemdProbe {
    address: String,
    config: SystemdConfig,
}

impl SystemdProbe {
    /// The bus address comes from `DBUS_SYSTEM_BUS_ADDRESS` or the host root.
    pub fn new(host: HostPaths, config: SystemdConfig) -> Self {
        SystemdProbe {
            address: system_bus_address(&host),
            config,
        }
    }

    /// A probe on an explicit bus address.
    pub fn with_address(address: impl Into<String>, config: SystemdConfig) -> Self {
        SystemdProbe {
            address: address.into(),
            config,
        }
    }
}

crate::probe_impl!(SystemdConfig => SystemdProbe, "systemd-check-custom-plugin-monitor", [CONDITION]);

impl SystemdProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let budget = dbus_budget(self.config.timeout);
            let work = async {
                let client = SystemdClient::connect(&self.address, budget).await?;
                gather(&client).await
            };
            let outcome = match tokio::time::timeout(budget, work).await {
                Ok(Ok(view)) => evaluate(&view, &self.config.ignore_units),
                Ok(Err(e)) => Outcome::unknown(e.to_string()),
                Err(_) => Outcome::unknown(
                    SystemdError::Timeout {
                        address: self.address.clone(),
                        what: "systemd check".to_string(),
                        timeout: budget,
                    }
                    .to_string(),
                ),
            };
            single(CONDITION, outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;

    fn view(state: &str, failed: &[&str]) -> SystemdView {
        SystemdView {
            state: state.into(),
            failed: failed.iter().map(|s| s.to_string()).collect(),
            default_target: DefaultTarget::Known("multi-user.target".into()),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn globs() {
        assert!(glob_match("foo.service", "foo.service"));
        assert!(!glob_match("foo.service", "foo.servicex"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("kube*.service", "kubelet.service"));
        assert!(glob_match("*@*.service", "getty@tty1.service"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(!glob_match("*a*b", "xxaxxbxx"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn ignore_entries_accept_bare_service_names() {
        assert!(is_ignored("foo.service", &s(&["foo"])));
        assert!(!is_ignored("foo.socket", &s(&["foo"])));
        assert!(is_ignored("foo.socket", &s(&["foo.*"])));
        assert!(!is_ignored("foo.service", &s(&["", " "])));
    }

    #[test]
    fn running_is_ok_with_the_default_target() {
        assert_eq!(
            evaluate(&view("running", &[]), &[]),
            Outcome::ok_with("systemd is running, default target multi-user.target")
        );
    }

    #[test]
    fn degraded_names_the_failed_units() {
        assert_eq!(
            evaluate(&view("degraded", &["a.service", "b.mount"]), &[]),
            Outcome::problem(
                "NodeHasSystemdError",
                "systemd is degraded: 2 failed units: a.service, b.mount"
            )
        );
    }

    #[test]
    fn ignored_units_are_left_out_and_mentioned() {
        assert_eq!(
            evaluate(
                &view("degraded", &["a.service", "noisy@1.service"]),
                &s(&["noisy@*"])
            ),
            Outcome::problem(
                "NodeHasSystemdError",
                "systemd is degraded: 1 failed unit: a.service (ignored failed: noisy@1.service)"
            )
        );
    }

    #[test]
    fn degraded_only_by_ignored_units_is_ok() {
        assert_eq!(
            evaluate(&view("degraded", &["noisy.service"]), &s(&["noisy.service"])),
            Outcome::ok_with(
                "systemd is degraded, default target multi-user.target; ignored failed units: noisy.service"
            )
        );
    }

    #[test]
    fn boot_in_progress_is_ok_unless_units_failed() {
        assert!(matches!(
            evaluate(&view("starting", &[]), &[]),
            Outcome::Ok { .. }
        ));
        assert!(matches!(
            evaluate(&view("initializing", &["x.service"]), &[]),
            Outcome::Problem { .. }
        ));
    }

    #[test]
    fn maintenance_is_a_problem_and_stopping_is_unknown() {
        assert_eq!(
            evaluate(&view("maintenance", &[]), &[]),
            Outcome::problem(
                "NodeHasSystemdError",
                "systemd is in maintenance (rescue or emergency) mode"
            )
        );
        assert_eq!(
            evaluate(&view("stopping", &["x.service"]), &[]),
            Outcome::unknown("systemd is stopping: its health cannot be judged in this state")
        );
        assert!(matches!(
            evaluate(&view("offline", &[]), &[]),
            Outcome::Unknown { .. }
        ));
    }

    #[test]
    fn unresolvable_default_target_is_a_problem_but_a_refused_call_is_not() {
        let mut v = view("running", &[]);
        v.default_target = DefaultTarget::Unresolvable(
            "org.freedesktop.DBus.Error.FileNotFound: No such file".into(),
        );
        assert_eq!(
            evaluate(&v, &[]),
            Outcome::problem(
                "NodeHasSystemdError",
                "default target cannot be resolved: org.freedesktop.DBus.Error.FileNotFound: No such file"
            )
        );
        v.default_target =
            DefaultTarget::Unreadable("org.freedesktop.DBus.Error.AccessDenied: denied".into());
        assert_eq!(
            evaluate(&v, &[]),
            Outcome::ok_with(
                "systemd is running, default target unreadable (org.freedesktop.DBus.Error.AccessDenied: denied)"
            )
        );
    }

    #[tokio::test]
    async fn no_bus_is_unknown_naming_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}/no-bus", dir.path().display());
        let probe = SystemdProbe::with_address(address, SystemdConfig::default());
        let f = probe.check().await;
        match &f[0].outcome {
            Outcome::Unknown { error } => {
                assert!(error.contains(&probe.address), "{error}");
                assert!(error.starts_with("cannot connect to the D-Bus system bus at unix:path="));
            }
            other => panic!("{other:?}"),
        }
    }
}
