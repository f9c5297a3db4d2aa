//! The catalogue of probes: names, their settings, and selection by allow/deny lists.
//! Adding a probe = one module, one entry in [`PROBES`], one field in [`ProbeConfigs`],
//! one arm in [`build`].

use crate::{inodes, network, ntp, pid_pressure, runtime, spot, systemd, HostPaths, Probe};

/// Every probe name, in report order.
pub const PROBES: &[&str] = &[
    inodes::NAME,
    pid_pressure::NAME,
    systemd::NAME,
    ntp::NAME,
    runtime::NAME,
    spot::NAME,
    network::NAME,
];

/// Settings of every probe (each probe's flags and env twins).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProbeConfigs {
    #[command(flatten, next_help_heading = "inodes probe")]
    pub inodes: inodes::InodesConfig,
    #[command(flatten, next_help_heading = "pid-pressure probe")]
    pub pid_pressure: pid_pressure::PidPressureConfig,
    #[command(flatten, next_help_heading = "systemd probe")]
    pub systemd: systemd::SystemdConfig,
    #[command(flatten, next_help_heading = "ntp probe")]
    pub ntp: ntp::NtpConfig,
    #[command(flatten, next_help_heading = "runtime probe")]
    pub runtime: runtime::RuntimeConfig,
    #[command(flatten, next_help_heading = "spot probe")]
    pub spot: spot::SpotConfig,
    #[command(flatten, next_help_heading = "network probe")]
    pub network: network::NetworkConfig,
}

/// A probe name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown probe {name:?} in {flag}; valid probes: {}", PROBES.join(", "))]
pub struct UnknownProbe {
    pub name: String,
    pub flag: &'static str,
}

/// Resolve `--probes` (allow-list; empty = all) and `--disable-probes` (deny-list).
pub fn select(allow: &[String], deny: &[String]) -> Result<Vec<&'static str>, UnknownProbe> {
    let check = |names: &[String], flag: &'static str| -> Result<Vec<&'static str>, UnknownProbe> {
        names
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(|n| {
                PROBES
                    .iter()
                    .copied()
                    .find(|p| *p == n)
                    .ok_or_else(|| UnknownProbe {
                        name: n.to_string(),
                        flag,
                    })
            })
            .collect()
    };
    let allow = check(allow, "--probes")?;
    let deny = check(deny, "--disable-probes")?;
    Ok(PROBES
        .iter()
        .copied()
        .filter(|p| allow.is_empty() || allow.contains(p))
        .filter(|p| !deny.contains(p))
        .collect())
}

/// Build the selected probes.
pub fn build(host: &HostPaths, configs: &ProbeConfigs, names: &[&str]) -> Vec<Box<dyn Probe>> {
    names
        .iter()
        .filter_map(|name| -> Option<Box<dyn Probe>> {
            match *name {
                inodes::NAME => Some(Box::new(inodes::InodesProbe::new(
                    host.clone(),
                    configs.inodes.clone(),
                ))),
                pid_pressure::NAME => Some(Box::new(pid_pressure::PidPressureProbe::new(
                    host.clone(),
                    configs.pid_pressure.clone(),
                ))),
                systemd::NAME => Some(Box::new(systemd::SystemdProbe::new(
                    host.clone(),
                    configs.systemd.clone(),
                ))),
                ntp::NAME => Some(Box::new(ntp::NtpProbe::new(
                    host.clone(),
                    configs.ntp.clone(),
                ))),
                runtime::NAME => Some(Box::new(
                    runtime::RuntimeProbe::new(host.clone(), configs.runtime.clone())
                        .with_unit_states(std::sync::Arc::new(runtime::SystemdUnits::new(
                            host,
                            configs.runtime.timeout,
                        ))),
                )),
                spot::NAME => Some(Box::new(spot::SpotProbe::new(
                    host.clone(),
                    configs.spot.clone(),
                ))),
                network::NAME => Some(Box::new(network::NetworkProbe::new(
                    host.clone(),
                    configs.network.clone(),
                ))),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn allow_and_deny_lists() {
        assert_eq!(select(&[], &[]).unwrap(), PROBES.to_vec());
        assert_eq!(select(&s(&["inodes"]), &[]).unwrap(), vec!["inodes"]);
        let without_inodes: Vec<_> = PROBES.iter().copied().filter(|p| *p != "inodes").collect();
        assert_eq!(select(&[], &s(&["inodes"])).unwrap(), without_inodes);
        assert_eq!(
            select(&s(&["inodes", "pid-pressure"]), &s(&["inodes"])).unwrap(),
            vec!["pid-pressure"]
        );
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let e = select(&s(&["inode"]), &[]).unwrap_err();
        assert_eq!(e.flag, "--probes");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "unknown probe \"inode\" in --probes; valid probes: inodes, pid-pressure"
            ),
            "{text}"
        );
        assert_eq!(
            select(&[], &s(&["bogus"])).unwrap_err().flag,
            "--disable-probes"
        );
    }

    #[test]
    fn build_makes_every_probe() {
        let probes = build(&HostPaths::default(), &ProbeConfigs::default(), PROBES);
        let names: Vec<_> = probes.iter().map(|p| p.name()).collect();
        assert_eq!(names, PROBES.to_vec());
    }
}
