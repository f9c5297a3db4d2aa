//! `network`: real network checks under one condition, `NetworkProblem`. Replaces
//! `network_problem.sh`, which could never fail.
//!
//! Checks, each with its own reason when it fails:
//! - **conntrack** (`ConntrackTableFull`): `<proc>/sys/net/netfilter/nf_conntrack_count` over
//!   `nf_conntrack_max` above `--network-conntrack-threshold` (default 90 %). Missing files mean
//!   the conntrack module is not loaded: not a problem, nothing to fill up.
//! - **default route** (`NoDefaultRoute`): an up, non-reject `0.0.0.0/0` route in
//!   `<proc>/net/route` or `::/0` in `<proc>/net/ipv6_route`. A node needs **either**: one with
//!   only an IPv4 (or only an IPv6) default route is fine, so the problem is "neither". A missing
//!   `ipv6_route` means IPv6 is disabled and counts as "no IPv6 default route". Off with
//!   `--network-require-default-route=false` for nodes routed without a default.
//! - **DNS** (`DNSResolutionFailed`, only when `--network-dns-name` is given): A and AAAA
//!   queries for the name, as given (no search list), to the nameservers of
//!   `<host-root>/etc/resolv.conf` in order (or `--network-dns-server`), each within
//!   `--network-dns-timeout`. Resolved by any server → fine; NXDOMAIN or no A/AAAA records →
//!   problem at once; timeouts and server errors try the next server, and are a problem when
//!   every server fails.
//!
//! Combining: one failing check → its own reason and message; several → the generic reason
//! `NodeHasNetworkProblem` with every message joined by `"; "`. A check that cannot run (an
//! unreadable file) makes the condition Unknown only when no other check found a problem; with
//! a problem, it is appended to the message as "could not check ...".
//!
//! `/proc/net/*` and the conntrack counter are per network namespace: the DaemonSet must run
//! with `hostNetwork: true` (as NPD's does) for these to be the node's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::clients::dns::{self, Resolution};
use crate::{blocking, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new("NetworkProblem", "NodeHasNoNetworkProblem", "node has no network problem", "NodeHasNetworkProblem");

pub const REASON_CONNTRACK: &str = "ConntrackTableFull";
pub const REASON_NO_ROUTE: &str = "NoDefaultRoute";
pub const REASON_DNS: &str = "DNSResolutionFailed";

/// A DNS name flag; empty means "off" (so a ConfigMap can leave it blank).
fn parse_dns_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Ok(String::new());
    }
    dns::build_query(0, s, dns::TYPE_A)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}")),
    }
}

crate::probe_settings! {
    /// Settings of the network probe.
    pub struct NetworkConfig for "network" ("NETWORK") {
        /// Problem when the conntrack table is fuller than this percentage.
        #[arg(id = "network-conntrack-threshold", long = "network-conntrack-threshold", env = "NODEPROBE_NETWORK_CONNTRACK_THRESHOLD", default_value = "90", value_parser = crate::parse_percent)]
        pub conntrack_threshold: f64,
        /// Problem when there is neither an IPv4 nor an IPv6 default route.
        #[arg(id = "network-require-default-route", long = "network-require-default-route", env = "NODEPROBE_NETWORK_REQUIRE_DEFAULT_ROUTE", default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
        pub require_default_route: bool,
        /// Name to resolve (A/AAAA, as given, no search list); the DNS check is off without it.
        #[arg(id = "network-dns-name", long = "network-dns-name", env = "NODEPROBE_NETWORK_DNS_NAME", value_parser = parse_dns_name)]
        pub dns_name: Option<String>,
        /// Nameserver ip:port instead of those of <host-root>/etc/resolv.conf.
        #[arg(
            id = "network-dns-server",
            long = "network-dns-server",
            env = "NODEPROBE_NETWORK_DNS_SERVER"
        )]
        pub dns_server: Option<SocketAddr>,
        /// Deadline of the DNS answer from each nameserver.
        #[arg(id = "network-dns-timeout", long = "network-dns-timeout", env = "NODEPROBE_NETWORK_DNS_TIMEOUT", default_value = "2s", value_parser = crate::parse_duration)]
        pub dns_timeout: Duration,
    }
    schedule: timeout "30s", interval "60s";
}

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Pass(String),
    Fail {
        reason: &'static str,
        message: String,
    },
    CannotCheck(String),
}

// === pure parsers ===

const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

fn hex_u32(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 16).ok()
}

/// Interfaces with an up, non-reject IPv4 default route in `/proc/net/route` (pure).
pub fn ipv4_default_routes(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() || (n == 0 && f[0] == "Iface") {
            continue;
        }
        let (Some(dest), Some(flags), Some(mask)) = (
            f.get(1).and_then(|s| hex_u32(s)),
            f.get(3).and_then(|s| hex_u32(s)),
            f.get(7).and_then(|s| hex_u32(s)),
        ) else {
            return Err(format!(
                "unexpected line {} in route table: {line:?}",
                n + 1
            ));
        };
        if dest == 0 && mask == 0 && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 {
            out.push(f[0].to_string());
        }
    }
    Ok(out)
}

/// Interfaces with an up, non-reject `::/0` route in `/proc/net/ipv6_route` (pure).
pub fn ipv6_default_routes(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let ok = f.len() == 10
            && f[0].len() == 32
            && f[0].bytes().all(|b| b.is_ascii_hexdigit())
            && hex_u32(f[1]).is_some();
        let flags = f.get(8).and_then(|s| hex_u32(s));
        let (true, Some(flags)) = (ok, flags) else {
            return Err(format!(
                "unexpected line {} in IPv6 route table: {line:?}",
                n + 1
            ));
        };
        let default = f[0].bytes().all(|b| b == b'0') && hex_u32(f[1]) == Some(0);
        if default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 {
            out.push(f[9].to_string());
        }
    }
    Ok(out)
}

/// Judge the default routes (pure). `v6` is `Ok(empty)` when IPv6 is disabled.
pub fn evaluate_routes(v4: Result<Vec<String>, String>, v6: Result<Vec<String>, String>) -> Check {
    let show = |r: &Result<Vec<String>, String>| match r {
        Ok(v) if v.is_empty() => "none".to_string(),
        Ok(v) => format!("via {}", v.join(",")),
        Err(_) => "unreadable".to_string(),
    };
    let has = |r: &Result<Vec<String>, String>| r.as_ref().is_ok_and(|v| !v.is_empty());
    if has(&v4) || has(&v6) {
        return Check::Pass(format!(
            "default route: IPv4 {}, IPv6 {}",
            show(&v4),
            show(&v6)
        ));
    }
    let errors: Vec<String> = [v4, v6].into_iter().filter_map(Result::err).collect();
    if !errors.is_empty() {
        return Check::CannotCheck(errors.join("; "));
    }
    Check::Fail {
        reason: REASON_NO_ROUTE,
        message: "no default route (neither IPv4 0.0.0.0/0 nor IPv6 ::/0)".to_string(),
    }
}

/// Judge conntrack usage (pure).
pub fn evaluate_conntrack(count: u64, max: u64, threshold: f64) -> Check {
    if max == 0 {
        return Check::CannotCheck("nf_conntrack_max is 0".to_string());
    }
    let pct = count as f64 * 100.0 / max as f64;
    let text = format!("conntrack table {pct:.1}% full ({count} of {max} entries)");
    if pct > threshold {
        Check::Fail {
            reason: REASON_CONNTRACK,
            message: format!("{text}, over {threshold}%"),
        }
    } else {
        Check::Pass(text)
    }
}

/// Combine the checks into the condition outcome (pure); see the module doc.
pub fn combine(checks: &[Check]) -> Outcome {
    let mut fails = Vec::new();
    let mut cannot = Vec::new();
    let mut passes = Vec::new();
    for c in checks {
        match c {
            Check::Pass(d) => passes.push(d.as_str()),
            Check::Fail { reason, message } => fails.push((*reason, message.as_str())),
            Check::CannotCheck(e) => cannot.push(e.as_str()),
        }
    }
    let cannot_text = if cannot.is_empty() {
        String::new()
    } else {
        format!("; could not check: {}", cannot.join("; "))
    };
    match fails.as_slice() {
        [] if !cannot.is_empty() => Outcome::unknown(cannot.join("; ")),
        [] => Outcome::ok_with(passes.join("; ")),
        [(reason, message)] => Outcome::problem(*reason, format!("{message}{cannot_text}")),
        many => Outcome::problem(
            CONDITION.problem_reason,
            format!(
                "{}{cannot_text}",
                many.iter()
                    .map(|(r, m)| format!("{r}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

// === host I/O ===

fn read_u64(path: &Path) -> std::io::Result<Result<u64, String>> {
    let s = HostPaths::read_trimmed(path)?;
    Ok(s.parse()
        .map_err(|_| format!("{}: not a number: {s:?}", path.display())))
}

fn check_conntrack(proc_root: &Path, threshold: f64) -> Check {
    let dir = proc_root.join("sys").join("net").join("netfilter");
    let (count_p, max_p) = (dir.join("nf_conntrack_count"), dir.join("nf_conntrack_max"));
    let read = |p: &Path| match read_u64(p) {
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(e)) => Err(e),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("read {}: {e}", p.display())),
    };
    match (read(&count_p), read(&max_p)) {
        (Ok(Some(c)), Ok(Some(m))) => evaluate_conntrack(c, m, threshold),
        (Err(e), _) | (_, Err(e)) => Check::CannotCheck(e),
        _ => Check::Pass("conntrack not loaded".to_string()),
    }
}

fn read_routes(
    path: &Path,
    missing_ok: bool,
    parse: fn(&str) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

fn check_routes(proc_root: &Path) -> Check {
    let net = proc_root.join("net");
    evaluate_routes(
        read_routes(&net.join("route"), false, ipv4_default_routes),
        read_routes(&net.join("ipv6_route"), true, ipv6_default_routes),
    )
}

/// Nameservers of the host's resolv.conf. `/etc/resolv.conf` is often an absolute symlink
/// (`/run/systemd/resolve/stub-resolv.conf`): it is followed inside the host root.
fn host_nameservers(host: &HostPaths) -> Result<Vec<SocketAddr>, String> {
    let path = host.resolve("/etc/resolv.conf");
    std::fs::read_to_string(&path)
        .map(|text| dns::parse_resolv_conf(&text))
        .map_err(|e| format!("read {}: {e}", path.display()))
}

async fn check_dns(name: &str, servers: Vec<SocketAddr>, timeout: Duration) -> Check {
    let mut failures = Vec::new();
    for server in &servers {
        match dns::resolve(*server, name, timeout).await {
            Ok(Resolution::Addresses(a)) => {
                return Check::Pass(format!(
                    "dns: {name} resolves to {} via {server}",
                    a.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ))
            }
            Ok(Resolution::NxDomain) => {
                return Check::Fail {
                    reason: REASON_DNS,
                    message: format!("DNS: {name} does not exist (NXDOMAIN from {server})"),
                }
            }
            Ok(Resolution::NoData) => {
                return Check::Fail {
                    reason: REASON_DNS,
                    message: format!("DNS: {name} has no A/AAAA records (from {server})"),
                }
            }
            Ok(Resolution::ServerError(rc)) => {
                failures.push(format!("{server} answered {}", dns::rcode_name(rc)))
            }
            Ok(Resolution::Timeout) => failures.push(format!(
                "{server} did not answer within {}",
                crate::humanize(timeout)
            )),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Check::Fail {
        reason: REASON_DNS,
        message: format!("DNS: cannot resolve {name}: {}", failures.join("; ")),
    }
}

pub struct NetworkProbe {
    host: HostPaths,
    config: NetworkConfig,
}

impl NetworkProbe {
    pub fn new(host: HostPaths, config: NetworkConfig) -> Self {
        NetworkProbe { host, config }
    }
}

crate::probe_impl!(NetworkConfig => NetworkProbe, "network-problem-custom-plugin-monitor", [CONDITION]);

impl NetworkProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let proc_root = self.host.proc();
        let threshold = self.config.conntrack_threshold;
        let routes = self.config.require_default_route;
        let host = self.host.clone();
        Box::pin(async move {
            let files = blocking(move || {
                let mut v = vec![check_conntrack(&proc_root, threshold)];
                if routes {
                    v.push(check_routes(&proc_root));
                }
                v
            });
            let dns = async {
                let name = self.config.dns_name.as_deref().filter(|n| !n.is_empty())?;
                let servers = match self.config.dns_server {
                    Some(s) => vec![s],
                    None => match blocking(move || host_nameservers(&host)).await {
                        Ok(Ok(servers)) => servers,
                        Ok(Err(e)) | Err(e) => return Some(Check::CannotCheck(e)),
                    },
                };
                Some(check_dns(name, servers, self.config.dns_timeout).await)
            };
            let (files, dns) = tokio::join!(files, dns);
            let mut checks = match files {
                Ok(v) => v,
                Err(e) => vec![Check::CannotCheck(e)],
            };
            checks.extend(dns);
            single(CONDITION, combine(&checks))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;

    // From a real host: default via eth0, a link route, and a reject default on another table
    // would not appear here (main table only).
    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
    const ROUTE_NO_DEFAULT: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
eth1\t00000000\t00000000\t0200\t0\t0\t0\t00000000\t0\t0\t0\n";
    const V6: &str = "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
    const V6_REJECT_ONLY: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";

    #[test]
    fn ipv4_route_table() {
        assert_eq!(ipv4_default_routes(ROUTE), Ok(vec!["eth0".to_string()]));
        assert_eq!(ipv4_default_routes(ROUTE_NO_DEFAULT), Ok(vec![]));
        assert_eq!(ipv4_default_routes(""), Ok(vec![]));
        assert!(ipv4_default_routes("Iface x\neth0 zz 0 0003").is_err());
    }

    #[test]
    fn ipv6_route_table() {
        assert_eq!(ipv6_default_routes(V6), Ok(vec!["eth0".to_string()]));
        assert_eq!(ipv6_default_routes(V6_REJECT_ONLY), Ok(vec![]));
        assert!(ipv6_default_routes("garbage line").is_err());
    }

    #[test]
    fn default_route_needs_either_family() {
        let v = |s: &[&str]| Ok(s.iter().map(|x| x.to_string()).collect());
        assert_eq!(
            evaluate_routes(v(&["eth0"]), v(&[])),
            Check::Pass("default route: IPv4 via eth0, IPv6 none".into())
        );
        assert!(matches!(
            evaluate_routes(v(&[]), v(&["eth0"])),
            Check::Pass(_)
        ));
        assert!(matches!(
            evaluate_routes(Err("read x: denied".into()), v(&["eth0"])),
            Check::Pass(_)
        ));
        assert_eq!(
            evaluate_routes(v(&[]), v(&[])),
            Check::Fail {
                reason: REASON_NO_ROUTE,
                message: "no default route (neither IPv4 0.0.0.0/0 nor IPv6 ::/0)".into()
            }
        );
        assert_eq!(
            evaluate_routes(Err("read x: denied".into()), v(&[])),
            Check::CannotCheck("read x: denied".into())
        );
    }

    #[test]
    fn conntrack_threshold() {
        assert_eq!(
            evaluate_conntrack(95, 100, 90.0),
            Check::Fail {
                reason: REASON_CONNTRACK,
                message: "conntrack table 95.0% full (95 of 100 entries), over 90%".into()
            }
        );
        assert_eq!(
            evaluate_conntrack(90, 100, 90.0),
            Check::Pass("conntrack table 90.0% full (90 of 100 entries)".into())
        );
        assert!(matches!(
            evaluate_conntrack(1, 0, 90.0),
            Check::CannotCheck(_)
        ));
    }

    #[test]
    fn combining_checks() {
        let pass = Check::Pass("p".into());
        let ct = Check::Fail {
            reason: REASON_CONNTRACK,
            message: "ct".into(),
        };
        let rt = Check::Fail {
            reason: REASON_NO_ROUTE,
            message: "rt".into(),
        };
        let cc = Check::CannotCheck("dunno".into());
        assert_eq!(
            combine(&[pass.clone(), Check::Pass("q".into())]),
            Outcome::ok_with("p; q")
        );
        assert_eq!(
            combine(&[pass.clone(), ct.clone()]),
            Outcome::problem(REASON_CONNTRACK, "ct")
        );
        assert_eq!(
            combine(&[ct.clone(), rt.clone()]),
            Outcome::problem(
                "NodeHasNetworkProblem",
                "ConntrackTableFull: ct; NoDefaultRoute: rt"
            )
        );
        assert_eq!(
            combine(&[rt, cc.clone()]),
            Outcome::problem(REASON_NO_ROUTE, "rt; could not check: dunno")
        );
        assert_eq!(combine(&[pass, cc]), Outcome::unknown("dunno"));
    }

    fn fixture(count: Option<&str>, route: &str, v6: Option<&str>) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("proc");
        std::fs::create_dir_all(p.join("net")).unwrap();
        std::fs::write(p.join("net/route"), route).unwrap();
        if let Some(v6) = v6 {
            std::fs::write(p.join("net/ipv6_route"), v6).unwrap();
        }
        if let Some(c) = count {
            let nf = p.join("sys/net/netfilter");
            std::fs::create_dir_all(&nf).unwrap();
            std::fs::write(nf.join("nf_conntrack_count"), c).unwrap();
            std::fs::write(nf.join("nf_conntrack_max"), "1000\n").unwrap();
        }
        d
    }

    #[tokio::test]
    async fn fixture_host_roots() {
        let probe = |d: &tempfile::TempDir| {
            NetworkProbe::new(HostPaths::new(d.path()), NetworkConfig::default())
        };
        let healthy = fixture(None, ROUTE, None);
        let f = probe(&healthy).check().await;
        assert_eq!(
            f[0].outcome,
            Outcome::ok_with("conntrack not loaded; default route: IPv4 via eth0, IPv6 none")
        );
        let full = fixture(Some("950\n"), ROUTE_NO_DEFAULT, Some(V6_REJECT_ONLY));
        let f = probe(&full).check().await;
        assert_eq!(
            f[0].outcome,
            Outcome::problem(
                "NodeHasNetworkProblem",
                "ConntrackTableFull: conntrack table 95.0% full (950 of 1000 entries), over 90%; NoDefaultRoute: no default route (neither IPv4 0.0.0.0/0 nor IPv6 ::/0)"
            )
        );
        let v6only = fixture(Some("10"), ROUTE_NO_DEFAULT, Some(V6));
        assert!(matches!(
            probe(&v6only).check().await[0].outcome,
            Outcome::Ok { .. }
        ));
        let garbage = fixture(Some("lots"), ROUTE, None);
        let f = probe(&garbage).check().await;
        assert!(
            matches!(&f[0].outcome, Outcome::Unknown { error } if error.contains("not a number")),
            "{f:?}"
        );
        let empty = tempfile::tempdir().unwrap();
        let f = probe(&empty).check().await;
        assert!(
            matches!(&f[0].outcome, Outcome::Unknown { error } if error.contains("route")),
            "{f:?}"
        );
    }

    #[tokio::test]
    async fn dns_from_resolv_conf_under_the_host_root() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let d = fixture(None, ROUTE, None);
        let cfg = NetworkConfig {
            dns_name: Some("silent.nodeprobe.invalid".into()),
            dns_timeout: Duration::from_millis(100),
            ..NetworkConfig::default()
        };
        // No resolv.conf under the host root: the DNS check cannot run (no traffic sent).
        let f = NetworkProbe::new(HostPaths::new(d.path()), cfg.clone())
            .check()
            .await;
        assert!(
            matches!(&f[0].outcome, Outcome::Unknown { error } if error.contains("etc/resolv.conf")),
            "{f:?}"
        );
        // Override: a silent server → problem naming the timeout.
        let cfg = NetworkConfig {
            dns_server: Some(server.local_addr().unwrap()),
            ..cfg
        };
        let f = NetworkProbe::new(HostPaths::new(d.path()), cfg)
            .check()
            .await;
        match &f[0].outcome {
            Outcome::Problem { reason, message } => {
                assert_eq!(reason, REASON_DNS);
                assert!(message.contains("did not answer within 100ms"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolv_conf_symlinks_are_followed_inside_the_host_root() {
        let d = tempfile::tempdir().unwrap();
        let stub = d.path().join("run/systemd/resolve");
        std::fs::create_dir_all(&stub).unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(stub.join("stub-resolv.conf"), "nameserver 127.0.0.53\n").unwrap();
        std::os::unix::fs::symlink(
            "/run/systemd/resolve/stub-resolv.conf",
            d.path().join("etc/resolv.conf"),
        )
        .unwrap();
        assert_eq!(
            host_nameservers(&HostPaths::new(d.path())),
            Ok(vec!["127.0.0.53:53".parse().unwrap()])
        );
        let e = host_nameservers(&HostPaths::new(d.path().join("nope"))).unwrap_err();
        assert!(e.contains("etc/resolv.conf"), "{e}");
    }

    #[test]
    fn flags_validate() {
        assert!(parse_dns_name("kubernetes.default.svc.cluster.local").is_ok());
        assert!(parse_dns_name("a..b").is_err());
        assert_eq!(parse_dns_name(""), Ok(String::new()));
        assert_eq!(parse_bool("false"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }
}
