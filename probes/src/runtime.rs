//! `runtime`: is the container runtime daemon alive and ready? Replaces
//! `check_docker_offline.sh`, which asked `systemctl` whether a unit was active and curled
//! docker, but never asked containerd anything.
//!
//! # What is checked
//!
//! * **containerd** (gRPC on its socket): `Version/Version` (the daemon answers), then CRI
//!   `RuntimeService/Status`: `RuntimeReady=false` is a problem; `NetworkReady` (CNI
//!   configured or not) is reported in the text but is not a runtime outage. A containerd
//!   that does not serve CRI (docker's own containerd usually has the plugin disabled) is
//!   alive: that is reported, not a problem.
//! * **docker** (HTTP on its socket): `GET /_ping` must answer `200 OK`; `GET /version`
//!   adds the version to the text.
//!
//! Both runtimes are checked concurrently, each bounded by `--runtime-timeout` T (connect
//! and every call share one deadline). A socket that accepts connections but never answers
//! is the classic hung daemon: it is a problem, "not responding within T". The probe's own
//! deadline is T plus [`GRACE`], so this precise answer always comes before the generic
//! "check did not finish" of the scheduler, and a hung runtime never delays other probes:
//! every probe runs in its own task under its own deadline.
//!
//! # Where the sockets are, and what their absence means
//!
//! * Default: under `--host-root`, containerd at `/run/containerd/containerd.sock`, docker
//!   at `/run/docker.sock` then `/var/run/docker.sock` (`/var/run` is usually a symlink to
//!   `/run`; when it is an absolute one it would resolve inside our own container, so the
//!   real location is tried first).
//! * `--containerd-socket` / `--docker-socket` (env `NODEPROBE_CONTAINERD_SOCKET`,
//!   `NODEPROBE_DOCKER_SOCKET`): a path as this process sees it (not re-rooted under
//!   `--host-root`), e.g. `/host/run/k3s/containerd/containerd.sock`.
//!
//! Go daemons remove their socket on a clean shutdown, so a missing socket cannot tell
//! "not installed" from "stopped". Hence:
//!
//! | situation | runtime's state |
//! |---|---|
//! | configured socket missing, or refusing connections | offline |
//! | default socket present but refusing connections (stale: the daemon died) | offline |
//! | socket accepts but no answer within T | offline, "not responding within T" |
//! | answers, containerd CRI `RuntimeReady=false`, docker `/_ping` not `200 OK` | offline |
//! | permission denied on the socket | cannot tell (Unknown) |
//! | no socket at any default path | not found |
//!
//! **RuntimeOffline** is `True` when any runtime present is offline (the users' script
//! also required docker to be up wherever docker was installed); `Unknown` when a runtime's
//! state cannot be told and none is offline; `False` when at least one runtime answers and
//! none is offline. When **no runtime is found at all** (a machine without a runtime, like
//! a developer's laptop, or a node whose runtime was stopped cleanly) it is `Unknown`,
//! naming every path looked at: never a false problem and never a false OK.
//!
//! **DockerOffline** exists only where docker does: not applicable (no condition written)
//! when no docker socket is found at the default paths, otherwise `True` exactly when
//! docker is offline. Its problem reason is `DockerDaemonOffline`.
//!
//! # systemd seam
//!
//! With the unit's `ActiveState` (from D-Bus, through [`UnitStates`], set with
//! [`RuntimeProbe::with_unit_states`]) a missing socket becomes decidable: `failed` is
//! offline; `inactive` is offline when no other runtime answers (the node's only runtime
//! was stopped), and merely noted otherwise (docker installed but unused on a containerd
//! node); `active` without a socket is Unknown (it may listen elsewhere: set the flag).
//! Without the seam, or when D-Bus is unreachable, the socket alone decides as above.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clients::{containerd, docker};
use crate::{humanize, CheckFuture, ConditionSpec, Finding, Findings, HostPaths, Outcome, Probe, ProbeDecl, ProbeSettings};

/// RuntimeOffline, the users' condition; its temporary event is emitted once per outage
/// (on the transition to `True`) by the agent's state keeper.
pub const RUNTIME_OFFLINE: ConditionSpec = ConditionSpec::new("RuntimeOffline", "RuntimeDaemonNotOffline", "container runtime daemon is ok", "RuntimeDaemonOffline").with_problem_event("RuntimeDaemonOffline");

/// DockerOffline, declared by the users and never set by their script; written only where
/// docker is present.
pub const DOCKER_OFFLINE: ConditionSpec = ConditionSpec::new("DockerOffline", "DockerDaemonNotOffline", "docker daemon is ok", "DockerDaemonOffline");

const CONDITIONS: [ConditionSpec; 2] = [RUNTIME_OFFLINE, DOCKER_OFFLINE];

/// Added to `--runtime-timeout` for the probe's own deadline, so the runtime checks always
/// report their precise "not responding within T" first.
pub const GRACE: Duration = Duration::from_secs(1);

crate::probe_settings! {
    /// Settings of the runtime probe (flags and env twins).
    pub struct RuntimeConfig for "runtime" ("RUNTIME") {
        /// containerd gRPC socket as this process sees it; when set, a missing or refusing
        /// socket is offline [default: <host-root>/run/containerd/containerd.sock, checked if present].
        #[arg(
            id = "containerd-socket",
            long = "containerd-socket",
            env = "NODEPROBE_CONTAINERD_SOCKET",
            value_name = "PATH"
        )]
        pub containerd_socket: Option<PathBuf>,
        /// Docker API socket as this process sees it; when set, a missing or refusing socket is
        /// offline [default: <host-root>/run/docker.sock, then <host-root>/var/run/docker.sock, checked if present].
        #[arg(
            id = "docker-socket",
            long = "docker-socket",
            env = "NODEPROBE_DOCKER_SOCKET",
            value_name = "PATH"
        )]
        pub docker_socket: Option<PathBuf>,
    }
    schedule:
        /// How long a runtime daemon may take to answer (connect and all calls); a socket
        /// silent for longer is "not responding".
        timeout "10s", interval "30s";
}

/// The runtimes this probe knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    Docker,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Docker => "docker",
        }
    }
    /// The systemd unit usually running it.
    pub fn unit(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd.service",
            Runtime::Docker => "docker.service",
        }
    }
    /// Default socket locations, host paths in the order tried.
    pub fn default_sockets(self) -> &'static [&'static str] {
        match self {
            Runtime::Containerd => &["/run/containerd/containerd.sock"],
            Runtime::Docker => &["/run/docker.sock", "/var/run/docker.sock"],
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Runtime::Containerd => "--containerd-socket",
            Runtime::Docker => "--docker-socket",
        }
    }
}

/// What one check found out about one runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// No socket at any default location.
    NotFound { looked_at: Vec<PathBuf> },
    /// The daemon answers; `summary` says what it is and how ready.
    Up { socket: PathBuf, summary: String },
    /// The daemon is offline, hung or not ready.
    Down { socket: PathBuf, why: String },
    /// Present, but whether it works cannot be told.
    Indeterminate { socket: PathBuf, why: String },
}

/// A runtime's systemd unit state (the systemd seam).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    /// `ActiveState`: `active`, `reloading`, `inactive`, `failed`, `activating`,
    /// `deactivating`.
    pub active_state: String,
}

/// One runtime's result: what its socket said, plus (when a caller provides it) its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeReport {
    pub runtime: Runtime,
    pub liveness: Liveness,
    /// Filled from D-Bus when a [`UnitStates`] source is wired in; `None` = no information.
    pub unit: Option<UnitState>,
}

/// The future a [`UnitStates`] query returns.
pub type UnitFuture<'a> = Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;

/// Seam for the systemd client: the `ActiveState` of a unit.
///
/// Return `Some(state)` only for a unit systemd has loaded (`LoadState=loaded`), and
/// `None` when it is not found or systemd cannot be asked. The probe bounds each query by
/// its own deadline.
pub trait UnitStates: Send + Sync {
    fn active_state<'a>(&'a self, unit: &'a str) -> UnitFuture<'a>;
}

/// [`UnitStates`] from the host's systemd over D-Bus (the system bus under the host root, or
/// `DBUS_SYSTEM_BUS_ADDRESS`). A bus that is absent or does not answer gives `None`.
pub struct SystemdUnits {
    address: String,
    timeout: Duration,
}

impl SystemdUnits {
    pub fn new(host: &HostPaths, timeout: Duration) -> Self {
        SystemdUnits {
            address: crate::clients::systemd::system_bus_address(host),
            timeout: crate::clients::systemd::dbus_budget(timeout),
        }
    }
}

impl UnitStates for SystemdUnits {
    fn active_state<'a>(&'a self, unit: &'a str) -> UnitFuture<'a> {
        Box::pin(async move {
            let client =
                crate::clients::systemd::SystemdClient::connect(&self.address, self.timeout)
                    .await
                    .ok()?;
            client.unit_active_state(unit).await.ok().flatten()
        })
    }
}

// === pure judgement ===

/// The result of one gRPC call, as [`judge_containerd`] weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call<T> {
    Answer(T),
    Unimplemented,
    TimedOut(&'static str),
    Failed(String),
}

fn not_responding(timeout: Duration, step: &str) -> String {
    format!(
        "not responding within {} (no answer to {step})",
        humanize(timeout)
    )
}

/// containerd's liveness from its Version and CRI Status answers (pure).
pub fn judge_containerd(
    socket: PathBuf,
    timeout: Duration,
    version: Call<String>,
    cri: Call<containerd::CriStatus>,
) -> Liveness {
    let version = match version {
        Call::Answer(v) => Some(v),
        Call::Unimplemented => None,
        Call::TimedOut(step) => {
            return Liveness::Down {
                socket,
                why: not_responding(timeout, step),
            }
        }
        Call::Failed(e) => return Liveness::Down { socket, why: e },
    };
    let name = match &version {
        Some(v) => format!("containerd {v} at {}", socket.display()),
        None => format!("containerd (version not served) at {}", socket.display()),
    };
    let status = match cri {
        Call::Answer(s) => s,
        Call::Unimplemented if version.is_some() => {
            return Liveness::Up {
                socket,
                summary: format!("{name}, CRI not served (plugin disabled)"),
            }
        }
        Call::Unimplemented => {
            return Liveness::Indeterminate {
                socket,
                why: "answers gRPC but serves neither containerd Version nor CRI RuntimeService"
                    .into(),
            }
        }
        Call::TimedOut(step) => {
            return Liveness::Down {
                socket,
                why: format!("{name}: {}", not_responding(timeout, step)),
            }
        }
        Call::Failed(e) => {
            return Liveness::Down {
                socket,
                why: format!("{name}: {e}"),
            }
        }
    };
    let network = match status.condition("NetworkReady") {
        Some(c) if c.status => "NetworkReady=true".to_string(),
        Some(c) => format!("NetworkReady=false{}", reason_text(c)),
        None => "NetworkReady not reported".to_string(),
    };
    match status.condition("RuntimeReady") {
        Some(c) if c.status => Liveness::Up {
            socket,
            summary: format!("{name}: RuntimeReady, {network}"),
        },
        Some(c) => Liveness::Down {
            socket,
            why: format!(
                "{name}: CRI RuntimeReady=false{}; {network}",
                reason_text(c)
            ),
        },
        None => Liveness::Up {
            socket,
            summary: format!("{name}: RuntimeReady not reported, {network}"),
        },
    }
}

fn reason_text(c: &containerd::RuntimeCondition) -> String {
    match (c.reason.is_empty(), c.message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({})", c.reason),
        (true, false) => format!(" ({})", c.message),
        (false, false) => format!(" ({}: {})", c.reason, c.message),
    }
}

/// Liveness after a failed connect (pure): refused is a stale socket (the daemon died),
/// permission denied says nothing about the daemon.
pub fn judge_connect_error(socket: PathBuf, kind: std::io::ErrorKind, text: String) -> Liveness {
    use std::io::ErrorKind::*;
    match kind {
        NotFound => Liveness::Down {
            socket,
            why: "socket does not exist (daemon stopped, or wrong path)".into(),
        },
        ConnectionRefused => Liveness::Down {
            socket,
            why: "connection refused (stale socket: the daemon is not running)".into(),
        },
        PermissionDenied => Liveness::Indeterminate {
            socket,
            why: format!("cannot tell whether the daemon runs: {text}"),
        },
        _ => Liveness::Down { socket, why: text },
    }
}

/// Apply the unit state (the systemd seam) to a socket verdict (pure). `other_up`: some
/// other runtime answers.
pub fn with_unit(report: &RuntimeReport, other_up: bool) -> Liveness {
    let Some(unit) = &report.unit else {
        return report.liveness.clone();
    };
    let state = unit.active_state.as_str();
    let tag = format!("{} is {state}", unit.unit);
    match &report.liveness {
        Liveness::NotFound { looked_at } => {
            let socket = looked_at.first().cloned().unwrap_or_default();
            let looked = paths(looked_at);
            match state {
                "failed" => Liveness::Down {
                    socket,
                    why: format!("no socket at {looked} and {tag}"),
                },
                "inactive" | "deactivating" if !other_up => Liveness::Down {
                    socket,
                    why: format!("no socket at {looked} and {tag}"),
                },
                "active" | "reloading" | "activating" => Liveness::Indeterminate {
                    socket,
                    why: format!(
                        "{tag} but has no socket at {looked}; set {} if it listens elsewhere",
                        report.runtime.flag()
                    ),
                },
                _ => report.liveness.clone(),
            }
        }
        Liveness::Up { socket, summary } => Liveness::Up {
            socket: socket.clone(),
            summary: format!("{summary} ({tag})"),
        },
        Liveness::Down { socket, why } => Liveness::Down {
            socket: socket.clone(),
            why: format!("{why}; {tag}"),
        },
        Liveness::Indeterminate { socket, why } => Liveness::Indeterminate {
            socket: socket.clone(),
            why: format!("{why}; {tag}"),
        },
    }
}

fn paths(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

fn describe(runtime: Runtime, l: &Liveness) -> String {
    let name = runtime.name();
    match l {
        Liveness::NotFound { looked_at } => format!("{name}: no socket at {}", paths(looked_at)),
        Liveness::Up { summary, .. } => summary.clone(),
        Liveness::Down { socket, why } | Liveness::Indeterminate { socket, why } => {
            format!("{name} at {}: {why}", socket.display())
        }
    }
}

/// RuntimeOffline from every runtime's report (pure).
pub fn evaluate_runtime_offline(reports: &[RuntimeReport]) -> Outcome {
    let effective: Vec<(Runtime, Liveness)> = reports
        .iter()
        .map(|r| {
            let other_up = reports
                .iter()
                .any(|o| o.runtime != r.runtime && matches!(o.liveness, Liveness::Up { .. }));
            (r.runtime, with_unit(r, other_up))
        })
        .collect();
    let pick = |f: fn(&Liveness) -> bool| -> Vec<String> {
        effective
            .iter()
            .filter(|(_, l)| f(l))
            .map(|(rt, l)| describe(*rt, l))
            .collect()
    };
    let down = pick(|l| matches!(l, Liveness::Down { .. }));
    let unsure = pick(|l| matches!(l, Liveness::Indeterminate { .. }));
    let up = pick(|l| matches!(l, Liveness::Up { .. }));
    let missing = pick(|l| matches!(l, Liveness::NotFound { .. }));
    if !down.is_empty() {
        let mut msg = format!("runtime offline: {}", down.join("; "));
        let others: Vec<String> = unsure.into_iter().chain(up).collect();
        if !others.is_empty() {
            msg.push_str(&format!("; also {}", others.join("; ")));
        }
        return Outcome::problem(RUNTIME_OFFLINE.problem_reason, msg);
    }
    if !unsure.is_empty() {
        let mut msg = unsure.join("; ");
        if !up.is_empty() {
            msg.push_str(&format!("; {}", up.join("; ")));
        }
        return Outcome::unknown(msg);
    }
    if !up.is_empty() {
        let mut detail = up.join("; ");
        if !missing.is_empty() {
            detail.push_str(&format!("; {}", missing.join("; ")));
        }
        return Outcome::ok_with(detail);
    }
    Outcome::unknown(format!(
        "no container runtime found ({}); a daemon stopped cleanly removes its socket, so \
         this cannot tell a stopped runtime from a missing one: set --containerd-socket or \
         --docker-socket to check a runtime that must be there",
        missing.join("; ")
    ))
}

/// DockerOffline from docker's report (pure); `other_up`: another runtime answers.
pub fn evaluate_docker_offline(docker: &RuntimeReport, other_up: bool) -> Outcome {
    let l = with_unit(docker, other_up);
    match &l {
        Liveness::NotFound { looked_at } => Outcome::not_applicable(format!(
            "docker is not present: no socket at {}",
            paths(looked_at)
        )),
        Liveness::Up { .. } => Outcome::ok_with(describe(Runtime::Docker, &l)),
        Liveness::Down { .. } => {
            Outcome::problem(DOCKER_OFFLINE.problem_reason, describe(Runtime::Docker, &l))
        }
        Liveness::Indeterminate { .. } => Outcome::unknown(describe(Runtime::Docker, &l)),
    }
}

// === I/O ===

/// Where to look for one runtime's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Where {
    Configured(PathBuf),
    Defaults(Vec<PathBuf>),
}

/// The socket to talk to, or the `NotFound` verdict.
async fn locate(w: Where) -> Result<PathBuf, Liveness> {
    match w {
        // A configured socket is always tried: missing means offline (the connect says so).
        Where::Configured(p) => Ok(p),
        Where::Defaults(candidates) => {
            for c in &candidates {
                if tokio::fs::symlink_metadata(c).await.is_ok() {
                    return Ok(c.clone());
                }
            }
            Err(Liveness::NotFound {
                looked_at: candidates,
            })
        }
    }
}

fn call<T>(r: Result<T, containerd::Error>) -> Call<T> {
    match r {
        Ok(v) => Call::Answer(v),
        Err(e) if e.code() == Some(tonic::Code::Unimplemented) => Call::Unimplemented,
        Err(containerd::Error::Timeout { step }) => Call::TimedOut(step),
        Err(e) => Call::Failed(e.to_string()),
    }
}

async fn check_containerd(w: Where, timeout: Duration, deadline: Instant) -> Liveness {
    let socket = match locate(w).await {
        Ok(p) => p,
        Err(l) => return l,
    };
    let client = match containerd::ContainerdClient::connect(&socket, deadline).await {
        Ok(c) => c,
        Err(containerd::Error::Connect { source, .. }) => {
            return judge_connect_error(socket, source.kind(), source.to_string())
        }
        Err(containerd::Error::Timeout { step }) => {
            return Liveness::Down {
                socket,
                why: not_responding(timeout, step),
            }
        }
        Err(e) => {
            return Liveness::Down {
                socket,
                why: e.to_string(),
            }
        }
    };
    let version = call(client.version(deadline).await.map(|v| v.version));
    let cri = match version {
        Call::Answer(_) | Call::Unimplemented => call(client.cri_status(deadline).await),
        // Already decided; the CRI answer cannot change it.
        _ => Call::Unimplemented,
    };
    judge_containerd(socket, timeout, version, cri)
}

async fn check_docker(w: Where, timeout: Duration, deadline: Instant) -> Liveness {
    let socket = match locate(w).await {
        Ok(p) => p,
        Err(l) => return l,
    };
    let fail = |socket: PathBuf, e: docker::Error| match e {
        docker::Error::Connect { source, .. } => {
            judge_connect_error(socket, source.kind(), source.to_string())
        }
        docker::Error::Timeout { step } => Liveness::Down {
            socket,
            why: not_responding(timeout, step),
        },
        e => Liveness::Down {
            socket,
            why: e.to_string(),
        },
    };
    let mut client = match docker::DockerClient::connect(&socket, deadline).await {
        Ok(c) => c,
        Err(e) => return fail(socket, e),
    };
    let ping = match client.ping(deadline).await {
        Ok(p) => p,
        Err(e) => return fail(socket, e),
    };
    // /_ping decided liveness; /version only adds text.
    let summary = match client.version(deadline).await {
        Ok(v) => format!(
            "docker {} (API {}) at {}: ping OK",
            v.version,
            v.api_version,
            socket.display()
        ),
        Err(e) => format!(
            "docker (API {}) at {}: ping OK, version unavailable: {e}",
            ping.api_version.as_deref().unwrap_or("?"),
            socket.display()
        ),
    };
    Liveness::Up { socket, summary }
}

pub struct RuntimeProbe {
    host: HostPaths,
    config: RuntimeConfig,
    units: Option<Arc<dyn UnitStates>>,
}

impl RuntimeProbe {
    pub fn new(host: HostPaths, config: RuntimeConfig) -> Self {
        RuntimeProbe {
            host,
            config,
            units: None,
        }
    }

    /// Wire in the systemd unit states (see the module docs).
    pub fn with_unit_states(mut self, units: Arc<dyn UnitStates>) -> Self {
        self.units = Some(units);
        self
    }

    /// What [`RuntimeProbe::locations`] needs, to move onto a blocking thread.
    fn clone_locator(&self) -> RuntimeProbe {
        RuntimeProbe {
            host: self.host.clone(),
            config: self.config.clone(),
            units: None,
        }
    }

    fn locations(&self, runtime: Runtime) -> Where {
        let configured = match runtime {
            Runtime::Containerd => &self.config.containerd_socket,
            Runtime::Docker => &self.config.docker_socket,
        };
        match configured {
            Some(p) => Where::Configured(p.clone()),
            None => Where::Defaults(
                runtime
                    .default_sockets()
                    .iter()
                    .map(|p| self.host.resolve(p))
                    .fold(Vec::new(), |mut v, p| {
                        // /var/run is usually a link to /run: look at each place once.
                        if !v.contains(&p) {
                            v.push(p);
                        }
                        v
                    }),
            ),
        }
    }
}

async fn unit_state(
    units: Option<&dyn UnitStates>,
    runtime: Runtime,
    deadline: Instant,
) -> Option<UnitState> {
    let units = units?;
    let state = tokio::time::timeout_at(deadline, units.active_state(runtime.unit()))
        .await
        .ok()
        .flatten()?;
    Some(UnitState {
        unit: runtime.unit().to_string(),
        active_state: state,
    })
}

impl ProbeSettings for RuntimeConfig {
    const DECL: ProbeDecl = ProbeDecl {
        name: NAME,
        source: "docker-offline-custom-plugin-monitor",
        conditions: &CONDITIONS,
    };
    fn build(&self, host: &HostPaths) -> Box<dyn Probe> {
        Box::new(
            RuntimeProbe::new(host.clone(), self.clone())
                .with_unit_states(Arc::new(SystemdUnits::new(host, self.timeout))),
        )
    }
}

impl Probe for RuntimeProbe {
    fn decl(&self) -> &'static ProbeDecl {
        &RuntimeConfig::DECL
    }
    fn timeout(&self) -> Duration {
        self.config.timeout + GRACE
    }
    fn interval(&self) -> Duration {
        self.config.interval
    }
    fn check(&self) -> CheckFuture<'_> {
        let timeout = self.config.timeout;
        Box::pin(async move {
            // Following /var/run links reads the host's file system (a hung /host mount
            // blocks it): not on the runtime's thread.
            let (ctr, dkr) = (self.clone_locator(), self.clone_locator());
            let wheres = crate::blocking(move || {
                (
                    ctr.locations(Runtime::Containerd),
                    dkr.locations(Runtime::Docker),
                )
            })
            .await;
            let (ctr_where, dkr_where) = match wheres {
                Ok(w) => w,
                Err(e) => {
                    return [RUNTIME_OFFLINE, DOCKER_OFFLINE]
                        .into_iter()
                        .map(|spec| Finding {
                            spec,
                            outcome: Outcome::unknown(e.clone()),
                        })
                        .collect()
                }
            };
            let deadline = Instant::now() + timeout;
            let units = self.units.as_deref();
            let (ctr, dkr, ctr_unit, dkr_unit) = tokio::join!(
                check_containerd(ctr_where, timeout, deadline),
                check_docker(dkr_where, timeout, deadline),
                unit_state(units, Runtime::Containerd, deadline),
                unit_state(units, Runtime::Docker, deadline),
            );
            let reports = [
                RuntimeReport {
                    runtime: Runtime::Containerd,
                    liveness: ctr,
                    unit: ctr_unit,
                },
                RuntimeReport {
                    runtime: Runtime::Docker,
                    liveness: dkr,
                    unit: dkr_unit,
                },
            ];
            let containerd_up = matches!(reports[0].liveness, Liveness::Up { .. });
            let findings: Findings = vec![
                Finding {
                    spec: RUNTIME_OFFLINE,
                    outcome: evaluate_runtime_offline(&reports),
                },
                Finding {
                    spec: DOCKER_OFFLINE,
                    outcome: evaluate_docker_offline(&reports[1], containerd_up),
                },
            ];
            findings
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;
    use containerd::{CriStatus, RuntimeCondition};

    const T: Duration = Duration::from_secs(10);

    fn sock(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn cond(kind: &str, status: bool, reason: &str, message: &str) -> RuntimeCondition {
        RuntimeCondition {
            r#type: kind.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn cri(conditions: Vec<RuntimeCondition>) -> Call<CriStatus> {
        Call::Answer(CriStatus {
            api: "runtime.v1",
            conditions,
        })
    }

    fn report(runtime: Runtime, liveness: Liveness) -> RuntimeReport {
        RuntimeReport {
            runtime,
            liveness,
            unit: None,
        }
    }

    fn up(runtime: Runtime, summary: &str) -> RuntimeReport {
        report(
            runtime,
            Liveness::Up {
                socket: sock("/s"),
                summary: summary.into(),
            },
        )
    }

    fn down(runtime: Runtime, why: &str) -> RuntimeReport {
        report(
            runtime,
            Liveness::Down {
                socket: sock("/s"),
                why: why.into(),
            },
        )
    }

    fn missing(runtime: Runtime) -> RuntimeReport {
        report(
            runtime,
            Liveness::NotFound {
                looked_at: runtime
                    .default_sockets()
                    .iter()
                    .map(PathBuf::from)
                    .collect(),
            },
        )
    }

    #[test]
    fn ready_containerd_is_up_and_reports_network_readiness() {
        let l = judge_containerd(
            sock("/c.sock"),
            T,
            Call::Answer("1.6.20".into()),
            cri(vec![
                cond("RuntimeReady", true, "", ""),
                cond(
                    "NetworkReady",
                    false,
                    "NetworkPluginNotReady",
                    "cni plugin not initialized",
                ),
            ]),
        );
        assert_eq!(
            l,
            Liveness::Up {
                socket: sock("/c.sock"),
                summary: "containerd 1.6.20 at /c.sock: RuntimeReady, NetworkReady=false \
                          (NetworkPluginNotReady: cni plugin not initialized)"
                    .into()
            }
        );
        let l = judge_containerd(
            sock("/c.sock"),
            T,
            Call::Answer("2.0.0".into()),
            cri(vec![
                cond("RuntimeReady", true, "", ""),
                cond("NetworkReady", true, "", ""),
            ]),
        );
        assert!(
            matches!(&l, Liveness::Up { summary, .. } if summary.ends_with("NetworkReady=true")),
            "{l:?}"
        );
    }

    #[test]
    fn runtime_not_ready_is_down() {
        let l = judge_containerd(
            sock("/c.sock"),
            T,
            Call::Answer("1.7.0".into()),
            cri(vec![cond("RuntimeReady", false, "Broken", "runc missing")]),
        );
        assert_eq!(
            l,
            Liveness::Down {
                socket: sock("/c.sock"),
                why: "containerd 1.7.0 at /c.sock: CRI RuntimeReady=false (Broken: runc missing); \
                      NetworkReady not reported"
                    .into()
            }
        );
    }

    #[test]
    fn silence_is_down_with_the_step_and_the_bound() {
        let l = judge_containerd(
            sock("/c"),
            T,
            Call::TimedOut("Version"),
            Call::Unimplemented,
        );
        assert_eq!(
            l,
            Liveness::Down {
                socket: sock("/c"),
                why: "not responding within 10s (no answer to Version)".into()
            }
        );
        let l = judge_containerd(
            sock("/c"),
            Duration::from_millis(1500),
            Call::Answer("1.6".into()),
            Call::TimedOut("CRI Status"),
        );
        assert!(
            matches!(&l, Liveness::Down { why, .. } if why == "containerd 1.6 at /c: not responding within 1500ms (no answer to CRI Status)"),
            "{l:?}"
        );
    }

    #[test]
    fn containerd_without_cri_is_alive_and_a_stranger_is_undetermined() {
        let l = judge_containerd(
            sock("/c"),
            T,
            Call::Answer("1.6".into()),
            Call::Unimplemented,
        );
        assert!(
            matches!(&l, Liveness::Up { summary, .. } if summary.contains("CRI not served")),
            "{l:?}"
        );
        let l = judge_containerd(sock("/c"), T, Call::Unimplemented, Call::Unimplemented);
        assert!(matches!(l, Liveness::Indeterminate { .. }), "{l:?}");
        let l = judge_containerd(
            sock("/c"),
            T,
            Call::Answer("1.6".into()),
            Call::Failed("CRI Status failed: Internal: boom".into()),
        );
        assert!(matches!(l, Liveness::Down { .. }), "{l:?}");
    }

    #[test]
    fn connect_errors() {
        use std::io::ErrorKind;
        assert!(matches!(
            judge_connect_error(sock("/x"), ErrorKind::ConnectionRefused, "refused".into()),
            Liveness::Down { why, .. } if why.contains("stale socket")
        ));
        assert!(matches!(
            judge_connect_error(sock("/x"), ErrorKind::NotFound, "nf".into()),
            Liveness::Down { why, .. } if why.contains("does not exist")
        ));
        assert!(matches!(
            judge_connect_error(sock("/x"), ErrorKind::PermissionDenied, "denied".into()),
            Liveness::Indeterminate { .. }
        ));
    }

    #[test]
    fn no_runtime_anywhere_is_unknown_naming_the_paths_and_docker_not_applicable() {
        let reports = [missing(Runtime::Containerd), missing(Runtime::Docker)];
        match evaluate_runtime_offline(&reports) {
            Outcome::Unknown { error } => {
                assert!(error.starts_with("no container runtime found"), "{error}");
                for p in [
                    "/run/containerd/containerd.sock",
                    "/run/docker.sock",
                    "/var/run/docker.sock",
                ] {
                    assert!(error.contains(p), "{p} not in {error}");
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            evaluate_docker_offline(&reports[1], false),
            Outcome::NotApplicable { .. }
        ));
    }

    #[test]
    fn one_runtime_up_and_none_down_is_ok() {
        let reports = [
            up(Runtime::Containerd, "containerd 1.6: RuntimeReady"),
            missing(Runtime::Docker),
        ];
        match evaluate_runtime_offline(&reports) {
            Outcome::Ok { detail: Some(d) } => {
                assert!(d.starts_with("containerd 1.6: RuntimeReady;"), "{d}");
                assert!(d.contains("docker: no socket at"), "{d}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_runtime_down_is_a_problem_even_with_another_up() {
        let reports = [
            up(Runtime::Containerd, "containerd 1.6: RuntimeReady"),
            down(Runtime::Docker, "socket does not exist"),
        ];
        assert_eq!(
            evaluate_runtime_offline(&reports),
            Outcome::problem(
                "RuntimeDaemonOffline",
                "runtime offline: docker at /s: socket does not exist; also containerd 1.6: \
                 RuntimeReady"
            )
        );
        assert_eq!(
            evaluate_docker_offline(&reports[1], true),
            Outcome::problem("DockerDaemonOffline", "docker at /s: socket does not exist")
        );
        assert!(matches!(
            evaluate_docker_offline(&up(Runtime::Docker, "docker 20"), true),
            Outcome::Ok { .. }
        ));
    }

    #[test]
    fn undetermined_without_down_is_unknown() {
        let reports = [
            report(
                Runtime::Containerd,
                Liveness::Indeterminate {
                    socket: sock("/c"),
                    why: "permission denied".into(),
                },
            ),
            missing(Runtime::Docker),
        ];
        assert!(matches!(
            evaluate_runtime_offline(&reports),
            Outcome::Unknown { .. }
        ));
    }

    fn with(mut r: RuntimeReport, state: &str) -> RuntimeReport {
        r.unit = Some(UnitState {
            unit: r.runtime.unit().into(),
            active_state: state.into(),
        });
        r
    }

    #[test]
    fn unit_state_decides_a_missing_socket() {
        // The node's only runtime, stopped cleanly: socket gone, unit inactive.
        let reports = [
            with(missing(Runtime::Containerd), "inactive"),
            missing(Runtime::Docker),
        ];
        match evaluate_runtime_offline(&reports) {
            Outcome::Problem { message, .. } => {
                assert!(
                    message.contains("containerd.service is inactive"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        // docker installed but stopped on a containerd node: noted, not a problem.
        let reports = [
            up(Runtime::Containerd, "containerd 1.6: RuntimeReady"),
            with(missing(Runtime::Docker), "inactive"),
        ];
        assert!(matches!(
            evaluate_runtime_offline(&reports),
            Outcome::Ok { .. }
        ));
        assert!(matches!(
            evaluate_docker_offline(&reports[1], true),
            Outcome::NotApplicable { .. }
        ));
        // A crashed unit is offline whatever else runs.
        let reports = [
            up(Runtime::Containerd, "containerd 1.6: RuntimeReady"),
            with(missing(Runtime::Docker), "failed"),
        ];
        assert!(matches!(
            evaluate_runtime_offline(&reports),
            Outcome::Problem { .. }
        ));
        assert!(matches!(
            evaluate_docker_offline(&reports[1], true),
            Outcome::Problem { .. }
        ));
        // Active without a socket: it may listen elsewhere.
        let l = with_unit(&with(missing(Runtime::Containerd), "active"), false);
        assert!(
            matches!(&l, Liveness::Indeterminate { why, .. } if why.contains("--containerd-socket")),
            "{l:?}"
        );
        // Unit state is appended to live runtimes' text.
        let l = with_unit(
            &with(up(Runtime::Containerd, "containerd 1.6"), "active"),
            false,
        );
        assert!(
            matches!(&l, Liveness::Up { summary, .. } if summary.ends_with("(containerd.service is active)")),
            "{l:?}"
        );
    }

    #[tokio::test]
    async fn probe_on_an_empty_host_root_tells_the_truth_fast() {
        let dir = tempfile::tempdir().unwrap();
        let probe = RuntimeProbe::new(HostPaths::new(dir.path()), RuntimeConfig::default());
        let f = probe.check().await;
        assert!(matches!(f[0].outcome, Outcome::Unknown { .. }), "{f:?}");
        assert!(
            matches!(f[1].outcome, Outcome::NotApplicable { .. }),
            "{f:?}"
        );
        assert_eq!(probe.timeout(), Duration::from_secs(11));
    }

    struct FixedUnits(&'static str);
    impl UnitStates for FixedUnits {
        fn active_state<'a>(&'a self, unit: &'a str) -> UnitFuture<'a> {
            Box::pin(async move { (unit == "containerd.service").then(|| self.0.to_string()) })
        }
    }

    #[tokio::test]
    async fn unit_states_seam_is_consulted() {
        let dir = tempfile::tempdir().unwrap();
        let probe = RuntimeProbe::new(HostPaths::new(dir.path()), RuntimeConfig::default())
            .with_unit_states(Arc::new(FixedUnits("failed")));
        let f = probe.check().await;
        match &f[0].outcome {
            Outcome::Problem { message, .. } => {
                assert!(
                    message.contains("containerd.service is failed"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// In daemon mode a hung runtime is checked every interval: each check must close its
    /// connections when it gives up, or the agent would pile up sockets and tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn giving_up_on_a_hung_daemon_closes_every_connection() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.sock");
        let d = dir.path().join("d.sock");
        let (tx, rx) = std::sync::mpsc::channel();
        for path in [&c, &d] {
            let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                while let Ok((conn, _)) = listener.accept() {
                    if tx.send(conn).is_err() {
                        return;
                    }
                }
            });
        }
        let probe = RuntimeProbe::new(
            HostPaths::new(dir.path()),
            RuntimeConfig {
                containerd_socket: Some(c),
                docker_socket: Some(d),
                timeout: Duration::from_millis(200),
                ..Default::default()
            },
        );
        for _ in 0..3 {
            let f = probe.check().await;
            assert!(matches!(f[0].outcome, Outcome::Problem { .. }), "{f:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let conns: Vec<_> = rx.try_iter().collect();
        assert_eq!(conns.len(), 6, "one connection per runtime per check");
        for mut conn in conns {
            // Whatever the client wrote (HTTP/2 preface, an HTTP request), then EOF.
            conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut sink = Vec::new();
            conn.read_to_end(&mut sink)
                .expect("client side still open: connection leaked");
        }
    }

    #[tokio::test]
    async fn stale_and_silent_sockets_are_offline() {
        let dir = tempfile::tempdir().unwrap();
        // A stale socket: bound, then the listener is gone (the file stays).
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        // A silent socket: listening, never answering.
        let silent = dir.path().join("silent.sock");
        let _l = std::os::unix::net::UnixListener::bind(&silent).unwrap();
        let probe = RuntimeProbe::new(
            HostPaths::new(dir.path()),
            RuntimeConfig {
                containerd_socket: Some(silent.clone()),
                docker_socket: Some(stale.clone()),
                timeout: Duration::from_millis(300),
                ..Default::default()
            },
        );
        let f = probe.check().await;
        match &f[0].outcome {
            Outcome::Problem { reason, message } => {
                assert_eq!(reason, "RuntimeDaemonOffline");
                assert!(message.contains("not responding within 300ms"), "{message}");
                assert!(message.contains("stale socket"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&f[1].outcome, Outcome::Problem { reason, .. } if reason == "DockerDaemonOffline")
        );
    }
}
