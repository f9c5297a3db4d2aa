//! The catalogue of probes: one declaration per probe ([`ProbeDecl`]: name, event source,
//! conditions), its settings ([`ProbeSettings`]: flags with env twins and their defaults,
//! and how to build the probe from them), selection by allow/deny lists.
//!
//! Adding a probe touches its own file and one line of the table in `lib.rs`
//! ([`crate::probe_table!`]): the file holds the settings struct (`clap::Args`, with its
//! `next_help_heading`), the declaration (`probe_impl!` for the usual shape, else `impl
//! ProbeSettings` and `impl Probe` by hand), the probe and its tests; the table line
//! declares the module and registers the settings. The settings'
//! `Default` is generated from the flags' own defaults, so defaults live in one place.

use crate::{ConditionSpec, HostPaths, Probe};

/// What the agent knows of a probe before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeDecl {
    /// The name `--probes` / `--disable-probes` take.
    pub name: &'static str,
    /// Event `source.component`: the NPD monitor it replaces, so kube-eventer filters keep
    /// working.
    pub source: &'static str,
    /// The conditions it owns, in report order.
    pub conditions: &'static [ConditionSpec],
}

/// A probe's settings: its flags (and env twins, and defaults) and how to build the probe.
pub trait ProbeSettings: clap::Args + clap::FromArgMatches + Clone {
    const DECL: ProbeDecl;
    fn build(&self, host: &HostPaths) -> Box<dyn Probe>;
}

/// The defaults of a group of flags: what an empty command line gives (the environment is
/// not read). This is how every probe's settings implement `Default`.
pub fn defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|a| a.env(None::<&str>));
    let matches = cmd
        .try_get_matches_from(std::iter::empty::<&str>())
        .unwrap_or_else(|e| panic!("the flags' defaults do not parse: {e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("the flags' defaults: {e}"))
}

/// A probe's settings struct (`clap::Args`, `Debug`, `Clone`, help heading `<probe> probe`)
/// with its own fields and the two every probe has, `--<probe>-timeout` (deadline of one
/// check) and `--<probe>-interval` (period in daemon mode), env twins
/// `NODEPROBE_<ENV>_TIMEOUT` / `_INTERVAL`, defaults given once here:
///
/// ```ignore
/// probe_settings! {
///     /// Settings of the inodes probe.
///     pub struct InodesConfig for "inodes" ("INODES") {
///         /// A flag of its own.
///         #[arg(...)]
///         pub threshold: f64,
///     }
///     schedule: timeout "5s", interval "120s";
/// }
/// ```
///
/// Doc comments before `timeout` replace the default help of `--<probe>-timeout`.
#[macro_export]
macro_rules! probe_settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident for $probe:literal ($env:literal) {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
        }
        schedule: timeout $timeout:literal, interval $interval:literal;
    ) => {
        $crate::probe_settings! {
            $(#[$meta])*
            pub struct $name for $probe ($env) {
                $($(#[$fmeta])* pub $field: $ty,)*
            }
            schedule:
                /// Deadline of one check.
                timeout $timeout, interval $interval;
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident for $probe:literal ($env:literal) {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
        }
        schedule: $(#[$tmeta:meta])+ timeout $timeout:literal, interval $interval:literal;
    ) => {
        /// The probe's name (`--probes`).
        pub const NAME: &str = $probe;

        $(#[$meta])*
        #[derive(Debug, Clone, clap::Args)]
        #[command(next_help_heading = concat!($probe, " probe"))]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            $(#[$tmeta])+
            #[arg(
                id = concat!($probe, "-timeout"),
                long = concat!($probe, "-timeout"),
                env = concat!("NODEPROBE_", $env, "_TIMEOUT"),
                default_value = $timeout,
                value_parser = $crate::parse_duration
            )]
            pub timeout: std::time::Duration,
            /// Period between checks in daemon mode.
            #[arg(
                id = concat!($probe, "-interval"),
                long = concat!($probe, "-interval"),
                env = concat!("NODEPROBE_", $env, "_INTERVAL"),
                default_value = $interval,
                value_parser = $crate::parse_duration
            )]
            pub interval: std::time::Duration,
        }
    };
}

/// The declaration and the `Probe` plumbing of a probe whose settings have `timeout` and
/// `interval` and whose struct has `new(host, settings)`, a `config` field and an inherent
/// `check_once`: `probe_impl!(Settings => Probe, "event-source", [CONDITION, ...]);` (the
/// probe's `NAME` is its name).
#[macro_export]
macro_rules! probe_impl {
    ($settings:ident => $probe:ident, $source:expr, [$($condition:expr),+ $(,)?]) => {
        impl $crate::ProbeSettings for $settings {
            const DECL: $crate::ProbeDecl = $crate::ProbeDecl {
                name: NAME,
                source: $source,
                conditions: &[$($condition),+],
            };
            fn build(&self, host: &$crate::HostPaths) -> Box<dyn $crate::Probe> {
                Box::new($probe::new(host.clone(), self.clone()))
            }
        }

        impl $crate::Probe for $probe {
            fn decl(&self) -> &'static $crate::ProbeDecl {
                &<$settings as $crate::ProbeSettings>::DECL
            }
            fn timeout(&self) -> std::time::Duration {
                self.config.timeout
            }
            fn interval(&self) -> std::time::Duration {
                self.config.interval
            }
            fn check(&self) -> $crate::CheckFuture<'_> {
                self.check_once()
            }
        }
    };
}

/// The table of probes, in report order: `field: module::Settings` lines. Declares each
/// module, the flattened [`ProbeConfigs`], [`PROBES`], [`DECLS`] and every settings'
/// `Default`.
#[macro_export]
macro_rules! probe_table {
    ($($field:ident: $module:ident :: $settings:ident),* $(,)?) => {
        $( pub mod $module; )*

        /// Settings of every probe (each probe's flags and env twins).
        #[derive(Debug, Clone, clap::Args)]
        pub struct ProbeConfigs {
            $( #[command(flatten)] pub $field: $module::$settings, )*
        }

        impl Default for ProbeConfigs {
            fn default() -> Self {
                ProbeConfigs { $( $field: $crate::registry::defaults(), )* }
            }
        }

        $(
            impl Default for $module::$settings {
                fn default() -> Self {
                    $crate::registry::defaults()
                }
            }
        )*

        /// Every probe's declaration, in report order.
        pub const DECLS: &[$crate::registry::ProbeDecl] =
            &[ $( <$module::$settings as $crate::registry::ProbeSettings>::DECL ),* ];

        /// Every probe name, in report order.
        pub const PROBES: &[&str] =
            &[ $( <$module::$settings as $crate::registry::ProbeSettings>::DECL.name ),* ];

        impl ProbeConfigs {
            /// Build the probe called `name` from its settings.
            pub fn build_one(&self, host: &HostPaths, name: &str) -> Option<Box<dyn Probe>> {
                use $crate::registry::ProbeSettings;
                $( if name == <$module::$settings as ProbeSettings>::DECL.name {
                    return Some(self.$field.build(host));
                } )*
                None
            }

            /// Set the deadline and/or period of the probe called `name` (a custom-plugin
            /// file's `timeout` and `invoke_interval`); false for an unknown name.
            pub fn set_schedule(
                &mut self,
                name: &str,
                timeout: Option<std::time::Duration>,
                interval: Option<std::time::Duration>,
            ) -> bool {
                use $crate::registry::ProbeSettings;
                $( if name == <$module::$settings as ProbeSettings>::DECL.name {
                    if let Some(t) = timeout {
                        self.$field.timeout = t;
                    }
                    if let Some(i) = interval {
                        self.$field.interval = i;
                    }
                    return true;
                } )*
                false
            }
        }
    };
}

pub use crate::{ProbeConfigs, DECLS, PROBES};

/// The declaration of the probe called `name`.
pub fn decl(name: &str) -> Option<&'static ProbeDecl> {
    DECLS.iter().find(|d| d.name == name)
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
                decl(n).map(|d| d.name).ok_or_else(|| UnknownProbe {
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
        .filter_map(|name| configs.build_one(host, name))
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
    fn every_probe_is_built_and_matches_its_declaration() {
        let probes = build(&HostPaths::default(), &ProbeConfigs::default(), PROBES);
        let names: Vec<_> = probes.iter().map(|p| p.name()).collect();
        assert_eq!(names, PROBES.to_vec());
        for (p, d) in probes.iter().zip(DECLS) {
            assert_eq!(p.decl(), d);
            assert!(!d.conditions.is_empty() && !d.source.is_empty(), "{d:?}");
        }
    }

    /// The defaults the flags declare are the settings' `Default`: parsing a command line
    /// without any probe flag gives exactly `ProbeConfigs::default()`.
    #[test]
    fn flag_defaults_are_the_settings_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            probes: ProbeConfigs,
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["x"]).unwrap().probes;
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", ProbeConfigs::default())
        );
        // and they are what the documentation says
        let d = ProbeConfigs::default();
        assert_eq!(d.inodes.threshold, 80.0);
        assert_eq!(d.inodes.interval, std::time::Duration::from_secs(120));
        assert_eq!(d.inodes.mounts, vec!["/".to_string()]);
    }
}
