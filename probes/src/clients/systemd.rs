//! A small client for systemd's manager (`org.freedesktop.systemd1`) on the D-Bus system bus.
//!
//! The bus is the host's: `DBUS_SYSTEM_BUS_ADDRESS` when set, else
//! `unix:path=<host-root>/run/dbus/system_bus_socket`. Every operation (connecting and each
//! call) is bounded by the client's call timeout, so a bus that accepts and never answers
//! costs at most that long. Several probes use it (systemd, ntp, runtime): each opens its own
//! short-lived connection per check.
//!
//! ```text
//! let address = system_bus_address(&host);
//! let client = SystemdClient::connect(&address, Duration::from_secs(5)).await?;
//! match client.unit_active_state("containerd.service").await? {
//!     Some(state) => println!("containerd.service is {state}"),
//!     None => println!("no containerd.service on this host"),
//! }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use zbus::{Connection, OwnedObjectPath, OwnedVariant};

use crate::{humanize, HostPaths};

/// Environment variable naming the system bus (honoured like libdbus and sd-bus do).
pub const SYSTEM_BUS_ENV: &str = "DBUS_SYSTEM_BUS_ADDRESS";

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// Errors of the systemd client. Each names the bus address it tried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SystemdError {
    /// The bus could not be reached (no socket, refused, authentication failed).
    #[error("cannot connect to the D-Bus system bus at {address}: {reason}")]
    Connect { address: String, reason: String },
    /// The bus or systemd did not answer in time.
    #[error("no answer from the D-Bus system bus at {address} within {} ({what})", humanize(*timeout))]
    Timeout {
        address: String,
        what: String,
        timeout: Duration,
    },
    /// systemd (or the bus daemon) answered the call with a D-Bus error.
    #[error("{call} on the D-Bus system bus at {address} failed: {name}: {message}")]
    Rejected {
        address: String,
        call: String,
        name: String,
        message: String,
    },
    /// The call failed on the way (connection lost, malformed reply).
    #[error("{call} on the D-Bus system bus at {address} failed: {reason}")]
    Call {
        address: String,
        call: String,
        reason: String,
    },
}

impl SystemdError {
    /// The address of the bus this error is about.
    pub fn address(&self) -> &str {
        match self {
            SystemdError::Connect { address, .. }
            | SystemdError::Timeout { address, .. }
            | SystemdError::Rejected { address, .. }
            | SystemdError::Call { address, .. } => address,
        }
    }

    /// Whether systemd (or the bus) answered with an error, as opposed to not being reachable.
    pub fn is_rejection(&self) -> bool {
        matches!(self, SystemdError::Rejected { .. })
    }
}

/// The system bus address to use: `DBUS_SYSTEM_BUS_ADDRESS` when set and not empty, else the
/// host's socket under the host root.
pub fn system_bus_address(host: &HostPaths) -> String {
    address_from(std::env::var(SYSTEM_BUS_ENV).ok().as_deref(), host)
}

/// [`system_bus_address`] without the environment lookup (pure).
pub fn address_from(env_value: Option<&str>, host: &HostPaths) -> String {
    match env_value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(address) => address.to_string(),
        None => {
            let socket = host.path("/run/dbus/system_bus_socket");
            format!(
                "unix:path={}",
                escape_address_value(&socket.to_string_lossy())
            )
        }
    }
}

/// Escape a D-Bus address value: bytes outside `[-0-9A-Za-z_/.\*]` become `%XX`.
pub fn escape_address_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.' | b'\\' | b'*') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The share of a probe's deadline its D-Bus work may use, leaving time to report why.
pub fn dbus_budget(timeout: Duration) -> Duration {
    let margin = (timeout / 10).min(Duration::from_millis(250));
    timeout.saturating_sub(margin).max(Duration::from_millis(1))
}

/// The state of one unit as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// The name asked for (an alias resolves to its unit, which `id` names).
    pub name: String,
    /// The unit's primary name (`Id`).
    pub id: String,
    /// `loaded`, `not-found`, `masked`, `error`, `bad-setting`...
    pub load_state: String,
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`...
    pub active_state: String,
    /// `running`, `dead`, `exited`, `failed`...
    pub sub_state: String,
    /// When the unit last entered the active state, CLOCK_MONOTONIC microseconds (0 = never).
    pub active_enter_monotonic_us: u64,
    /// The unit's D-Bus object (the same for a unit and its aliases).
    pub object_path: String,
}

impl UnitState {
    /// Whether a unit of that name exists at all (it has a unit file or is loaded).
    pub fn exists(&self) -> bool {
        self.load_state != "not-found"
    }

    /// Whether the unit is up (`active`, or `reloading` which is active too).
    pub fn is_active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }
}

/// One unit as `ListUnitsFiltered` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUnit {
    pub name: String,
    pub description: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
}

/// The wire shape of one `ListUnits*` entry: `(ssssssouso)`.
type RawListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// A connection to systemd's manager on one bus.
#[derive(Debug, Clone)]
pub struct SystemdClient {
    conn: Connection,
    address: String,
    timeout: Duration,
}

impl SystemdClient {
    /// Connect and authenticate to the bus at `address`, within `timeout`. Every later call
    /// of this client is bounded by the same timeout.
    pub async fn connect(address: &str, timeout: Duration) -> Result<Self, SystemdError> {
        let build = zbus::connection::Builder::address(address)
            .method_timeout(timeout)
            .build();
        let conn = match tokio::time::timeout(timeout, build).await {
            Err(_) => {
                return Err(SystemdError::Timeout {
                    address: address.to_string(),
                    what: "connecting".to_string(),
                    timeout,
                })
            }
            Ok(Err(e)) => {
                return Err(SystemdError::Connect {
                    address: address.to_string(),
                    reason: connect_reason(&e),
                })
            }
            Ok(Ok(conn)) => conn,
        };
        Ok(SystemdClient {
            conn,
            address: address.to_string(),
            timeout,
        })
    }

    /// The bus address this client is connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Manager `SystemState`: `initializing`, `starting`, `running`, `degraded`,
    /// `maintenance`, `stopping`, `offline` or `unknown`.
    pub async fn system_state(&self) -> Result<String, SystemdError> {
        let v = self
            .get_property(MANAGER_PATH, MANAGER, "SystemState")
            .await?;
        self.convert("SystemState", String::try_from(v))
    }

    /// The units in state `failed` (`ListUnitsFiltered(["failed"])`).
    pub async fn failed_units(&self) -> Result<Vec<ListedUnit>, SystemdError> {
        let call = "ListUnitsFiltered";
        let reply = self
            .call(call, MANAGER_PATH, MANAGER, call, &(vec!["failed"],))
            .await?;
        let raw: Vec<RawListedUnit> = self.convert(call, reply.body().deserialize())?;
        Ok(raw
            .into_iter()
            .map(|u| ListedUnit {
                name: u.0,
                description: u.1,
                load_state: u.2,
                active_state: u.3,
                sub_state: u.4,
            })
            .collect())
    }

    /// Manager `GetDefaultTarget` (e.g. `multi-user.target`).
    pub async fn default_target(&self) -> Result<String, SystemdError> {
        let call = "GetDefaultTarget";
        let reply = self.call(call, MANAGER_PATH, MANAGER, call, &()).await?;
        self.convert(call, reply.body().deserialize())
    }

    /// The state of unit `name`. A unit that does not exist is reported with `load_state`
    /// `not-found` (see [`UnitState::exists`]).
    pub async fn unit(&self, name: &str) -> Result<UnitState, SystemdError> {
        let path = self.unit_path(name).await?;
        let call = format!("GetAll({UNIT}) of {name}");
        let reply = self
            .call(&call, path.as_str(), PROPERTIES, "GetAll", &(UNIT,))
            .await?;
        let props: HashMap<String, OwnedVariant> =
            self.convert(&call, reply.body().deserialize())?;
        let text = |key: &str| -> String {
            props
                .get(key)
                .and_then(|v| <&str>::try_from(v).ok())
                .unwrap_or_default()
                .to_string()
        };
        Ok(UnitState {
            name: name.to_string(),
            id: text("Id"),
            load_state: text("LoadState"),
            active_state: text("ActiveState"),
            sub_state: text("SubState"),
            active_enter_monotonic_us: props
                .get("ActiveEnterTimestampMonotonic")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            object_path: path.as_str().to_string(),
        })
    }

    /// `ActiveState` of unit `name`, `None` when no such unit exists on this host.
    pub async fn unit_active_state(&self, name: &str) -> Result<Option<String>, SystemdError> {
        let unit = self.unit(name).await?;
        Ok(unit.exists().then_some(unit.active_state))
    }

    /// The object path of a unit: `GetUnit` when it is loaded, else `LoadUnit` (which
    /// yields a `not-found` unit for names without a unit file).
    async fn unit_path(&self, name: &str) -> Result<OwnedObjectPath, SystemdError> {
        let get = format!("GetUnit({name})");
        match self
            .call(&get, MANAGER_PATH, MANAGER, "GetUnit", &(name,))
            .await
        {
            Ok(reply) => self.convert(&get, reply.body().deserialize()),
            Err(SystemdError::Rejected { name: err, .. }) if err == NO_SUCH_UNIT => {
                let load = format!("LoadUnit({name})");
                let reply = self
                    .call(&load, MANAGER_PATH, MANAGER, "LoadUnit", &(name,))
                    .await?;
                self.convert(&load, reply.body().deserialize())
            }
            Err(e) => Err(e),
        }
    }

    async fn get_property(
        &self,
        path: &str,
        interface: &str,
        property: &str,
    ) -> Result<OwnedVariant, SystemdError> {
        let call = format!("Get({property})");
        let reply = self
            .call(&call, path, PROPERTIES, "Get", &(interface, property))
            .await?;
        self.convert(&call, reply.body().deserialize())
    }

    /// One method call to systemd, bounded by the client timeout.
    async fn call<B>(
        &self,
        what: &str,
        path: &str,
        interface: &str,
        method: &str,
        body: &B,
    ) -> Result<zbus::Message, SystemdError>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        let fut = self
            .conn
            .call_method(Some(DEST), path, Some(interface), method, body);
        self.bounded(what, fut)
            .await?
            .map_err(|e| self.call_error(what, e))
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = T>,
    ) -> Result<T, SystemdError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| SystemdError::Timeout {
                address: self.address.clone(),
                what: what.to_string(),
                timeout: self.timeout,
            })
    }

    fn convert<T>(&self, what: &str, r: Result<T, zbus::Error>) -> Result<T, SystemdError> {
        r.map_err(|e| self.call_error(what, e))
    }

    fn call_error(&self, what: &str, e: zbus::Error) -> SystemdError {
        match e {
            zbus::Error::MethodError(name, message, _) => SystemdError::Rejected {
                address: self.address.clone(),
                call: what.to_string(),
                name: name.as_str().to_string(),
                message: message.unwrap_or_default(),
            },
            zbus::Error::FDO(fdo) => {
                let text = fdo.to_string();
                let (name, message) = match text.split_once(": ") {
                    Some((n, m)) => (n.to_string(), m.to_string()),
                    None => (text.clone(), String::new()),
                };
                SystemdError::Rejected {
                    address: self.address.clone(),
                    call: what.to_string(),
                    name,
                    message,
                }
            }
            zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                SystemdError::Timeout {
                    address: self.address.clone(),
                    what: what.to_string(),
                    timeout: self.timeout,
                }
            }
            other => SystemdError::Call {
                address: self.address.clone(),
                call: what.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// The useful part of a connection error (zbus repeats the address, which ours names).
fn connect_reason(e: &zbus::Error) -> String {
    match e {
        zbus::Error::Connection(io, _) => io.to_string(),
        zbus::Error::InputOutput(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_prefers_the_environment() {
        let host = HostPaths::new("/host");
        assert_eq!(
            address_from(Some("unix:path=/tmp/x/bus"), &host),
            "unix:path=/tmp/x/bus"
        );
        assert_eq!(
            address_from(None, &host),
            "unix:path=/host/run/dbus/system_bus_socket"
        );
        assert_eq!(
            address_from(Some("  "), &HostPaths::default()),
            "unix:path=/run/dbus/system_bus_socket"
        );
    }

    #[test]
    fn address_values_are_escaped() {
        assert_eq!(escape_address_value("/a b/c,d=e"), "/a%20b/c%2cd%3de");
        assert_eq!(
            address_from(None, &HostPaths::new("/my host")),
            "unix:path=/my%20host/run/dbus/system_bus_socket"
        );
    }

    #[test]
    fn unit_state_existence_and_activity() {
        let mut u = UnitState {
            name: "chronyd.service".into(),
            id: "chronyd.service".into(),
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            active_enter_monotonic_us: 0,
            object_path: "/org/freedesktop/systemd1/unit/chronyd_2eservice".into(),
        };
        assert!(!u.exists());
        assert!(!u.is_active());
        u.load_state = "loaded".into();
        u.active_state = "reloading".into();
        assert!(u.exists() && u.is_active());
    }

    #[test]
    fn budget_leaves_a_margin() {
        assert_eq!(
            dbus_budget(Duration::from_secs(10)),
            Duration::from_millis(9750)
        );
        assert_eq!(
            dbus_budget(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
        assert!(dbus_budget(Duration::from_millis(1)) > Duration::ZERO);
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error_naming_the_address() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}/nope", dir.path().display());
        let e = SystemdClient::connect(&address, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, SystemdError::Connect { .. }), "{e:?}");
        assert_eq!(e.address(), address);
        assert!(e.to_string().contains(&address), "{e}");
    }

    #[tokio::test]
    async fn silent_socket_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        // Accept and hold connections without ever answering.
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let address = format!("unix:path={}", path.display());
        let e = SystemdClient::connect(&address, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, SystemdError::Timeout { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("no answer from the D-Bus system bus at {address} within 300ms (connecting)")
        );
        holder.abort();
    }
}
