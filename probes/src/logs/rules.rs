//! NPD system-log-monitor rule files: loading and validation.
//!
//! The JSON format is NPD's (`plugin`, `pluginConfig`, `logPath`, `lookback`, `delay`,
//! `skipList`, `bufferSize`, `source`, `metricsReporting`, `conditions`, `rules`); files
//! written for NPD load unmodified. Unknown keys are ignored, as Go's `encoding/json` does.
//! One extension: a condition may carry `clearAfter` (a Go duration), the quiet period
//! after which a permanent condition set by a rule goes back to `False` (NPD ignores it).
//!
//! Stricter than NPD, on purpose: every error (bad JSON, unknown plugin or rule type, a
//! pattern the regex engine rejects, a bad duration) is a load error that names the file,
//! the rule reason and the cause, instead of NPD's `klog.Fatalf`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::engine::{CompileError, RuleSet};

/// Why a rule file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: malformed rule file: {cause}")]
    Json { file: String, cause: String },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error("{file}: rule {index} (reason {reason:?}): {cause}")]
    Rule {
        file: String,
        index: usize,
        reason: String,
        cause: String,
    },
}

/// Which log source a monitor reads (NPD `plugin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Kmsg,
    Journald,
    Filelog,
}

impl Plugin {
    pub fn as_str(self) -> &'static str {
        match self {
            Plugin::Kmsg => "kmsg",
            Plugin::Journald => "journald",
            Plugin::Filelog => "filelog",
        }
    }
}

/// NPD rule type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleType {
    /// Emits an event per match.
    Temporary,
    /// Sets a condition `True` with the rule's reason.
    Permanent,
}

/// A condition a monitor declares, with its healthy (default) reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionDecl {
    pub condition: String,
    pub reason: String,
    pub message: String,
    /// Our extension: clear a `True` condition after this long without a new match.
    pub clear_after: Option<Duration>,
}

/// One rule as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDecl {
    pub kind: RuleType,
    /// Condition type set by a permanent rule (empty for temporary rules).
    pub condition: String,
    pub reason: String,
    pub pattern: String,
    pub message_suffix: String,
}

/// A loaded, validated and compiled monitor configuration (one rule file).
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Where it came from (a path, or `builtin:<name>` for the default rules).
    pub origin: String,
    pub plugin: Plugin,
    pub plugin_config: BTreeMap<String, String>,
    pub log_path: Option<String>,
    pub lookback: Duration,
    pub delay: Option<Duration>,
    pub skip_list: Vec<String>,
    pub buffer_size: usize,
    /// Event `source.component`, e.g. `kernel-monitor`.
    pub source: String,
    pub metrics_reporting: bool,
    pub conditions: Vec<ConditionDecl>,
    pub rules: Vec<RuleDecl>,
    /// Non-fatal findings (e.g. a permanent rule whose condition is not declared, which
    /// NPD silently ignores).
    pub warnings: Vec<String>,
    /// The rules compiled once.
    pub ruleset: Arc<RuleSet>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    plugin: String,
    #[serde(default)]
    plugin_config: Option<BTreeMap<String, String>>,
    #[serde(default)]
    log_path: Option<String>,
    #[serde(default)]
    lookback: Option<String>,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    skip_list: Option<Vec<String>>,
    #[serde(default)]
    buffer_size: Option<usize>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    metrics_reporting: Option<bool>,
    #[serde(default)]
    conditions: Option<Vec<RawCondition>>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCondition {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    clear_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    reason: String,
    pattern: String,
    #[serde(default)]
    pattern_generated_message_suffix: Option<String>,
}

/// NPD's default buffer size (`bufferSize` 0 or absent).
pub const DEFAULT_BUFFER_SIZE: usize = 10;
/// Upper bound on `bufferSize`: the buffer is joined for multi-line patterns.
pub const MAX_BUFFER_SIZE: usize = 1000;

/// The default rule files shipped in the binary (`probes/rules/`).
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    (
        "kernel-monitor.json",
        include_str!("../../rules/kernel-monitor.json"),
    ),
    (
        "docker-monitor.json",
        include_str!("../../rules/docker-monitor.json"),
    ),
];

/// The built-in NVIDIA Xid rules (`--nvidia-xid-rules`, `probes/rules/nvidia-xid-monitor.json`).
pub const NVIDIA_XID_RULES: (&str, &str) = (
    "nvidia-xid-monitor.json",
    include_str!("../../rules/nvidia-xid-monitor.json"),
);

/// Xid numbers whose rule sets the NvidiaGPUProblem condition (reason `NvidiaXID<n>Error`):
/// the EKS node monitoring agent's fatal set (`dcgm_policies.go`). Every other Xid is a
/// temporary event `NvidiaXID<n>Warning`.
pub const NVIDIA_FATAL_XIDS: &[u32] = &[
    46, 48, 54, 62, 63, 64, 74, 79, 95, 109, 110, 119, 120, 136, 140, 142, 143, 151, 155, 156, 158,
];

impl MonitorConfig {
    /// The built-in NVIDIA Xid rules.
    pub fn nvidia_xid() -> Result<Self, RulesError> {
        let (name, text) = NVIDIA_XID_RULES;
        Self::parse(&format!("builtin:{name}"), text.as_bytes())
    }

    /// Load and validate one rule file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RulesError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&file, &bytes)
    }

    /// Load several files; the first error wins.
    pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Self>, RulesError> {
        paths.iter().map(Self::load).collect()
    }

    /// The built-in default rules (used when no file is given).
    pub fn defaults() -> Result<Vec<Self>, RulesError> {
        DEFAULT_RULES
            .iter()
            .map(|(name, text)| Self::parse(&format!("builtin:{name}"), text.as_bytes()))
            .collect()
    }

    /// Parse and validate rule-file contents; `file` names it in errors.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Self, RulesError> {
        if crate::plugins::is_plugin_file(bytes) {
            return Err(RulesError::Invalid {
                file: file.to_string(),
                what: "a custom-plugin file (plugin \"custom\"), not a system-log-monitor \
                       rule file: pass it to --config.custom-plugin-monitor"
                    .into(),
            });
        }
        // Bytes that are not UTF-8 are replaced, as NPD's Go decoder does, wherever they are
        // (serde_json alone would refuse them in some strings and skip them in others).
        let text = String::from_utf8_lossy(bytes);
        let raw: RawConfig = serde_json::from_str(&text).map_err(|e| RulesError::Json {
            file: file.to_string(),
            cause: e.to_string(),
        })?;
        let invalid = |what: String| RulesError::Invalid {
            file: file.to_string(),
            what,
        };
        let plugin = match raw.plugin.as_str() {
            "kmsg" => Plugin::Kmsg,
            "journald" => Plugin::Journald,
            "filelog" => Plugin::Filelog,
            other => {
                return Err(invalid(format!(
                    "unknown plugin {other:?} (expected kmsg, journald or filelog)"
                )))
            }
        };
        let lookback = match raw.lookback.as_deref() {
            None | Some("") => Duration::ZERO,
            Some(s) => parse_go_duration(s).map_err(|e| invalid(format!("lookback: {e}")))?,
        };
        let delay = match raw.delay.as_deref() {
            None | Some("") => None,
            Some(s) => Some(parse_go_duration(s).map_err(|e| invalid(format!("delay: {e}")))?),
        };
        let buffer_size = match raw.buffer_size {
            None | Some(0) => DEFAULT_BUFFER_SIZE,
            Some(n) if n > MAX_BUFFER_SIZE => {
                return Err(invalid(format!(
                    "bufferSize {n} is larger than {MAX_BUFFER_SIZE}"
                )))
            }
            Some(n) => n,
        };
        let plugin_config = raw.plugin_config.unwrap_or_default();
        if plugin == Plugin::Journald
            && plugin_config
                .get("source")
                .is_none_or(|s| s.trim().is_empty())
        {
            return Err(invalid(
                "journald plugin needs pluginConfig.source (the SYSLOG_IDENTIFIER to follow)"
                    .to_string(),
            ));
        }
        if plugin == Plugin::Filelog {
            if raw.log_path.as_deref().is_none_or(|p| p.trim().is_empty()) {
                return Err(invalid(
                    "filelog plugin needs logPath (the file to follow)".to_string(),
                ));
            }
            super::filelog::Translator::from_plugin_config(&plugin_config)
                .map_err(|e| invalid(e.to_string()))?;
        }
        let mut conditions = Vec::new();
        for (i, c) in raw.conditions.unwrap_or_default().into_iter().enumerate() {
            if c.kind.trim().is_empty() {
                return Err(invalid(format!("condition {i} has an empty type")));
            }
            if conditions
                .iter()
                .any(|d: &ConditionDecl| d.condition == c.kind)
            {
                return Err(invalid(format!("condition {} declared twice", c.kind)));
            }
            let clear_after = match c.clear_after.as_deref() {
                None | Some("") => None,
                Some(s) => {
                    let d = parse_go_duration(s)
                        .map_err(|e| invalid(format!("condition {}: clearAfter: {e}", c.kind)))?;
                    (!d.is_zero()).then_some(d)
                }
            };
            conditions.push(ConditionDecl {
                condition: c.kind,
                reason: c.reason,
                message: c.message,
                clear_after,
            });
        }
        let mut warnings = Vec::new();
        let mut rules = Vec::new();
        for (index, r) in raw.rules.unwrap_or_default().into_iter().enumerate() {
            let rule_err = |cause: String| RulesError::Rule {
                file: file.to_string(),
                index,
                reason: r.reason.clone(),
                cause,
            };
            let kind = match r.kind.as_str() {
                "temporary" => RuleType::Temporary,
                "permanent" => RuleType::Permanent,
                other => {
                    return Err(rule_err(format!(
                        "unknown rule type {other:?} (expected temporary or permanent)"
                    )))
                }
            };
            if r.reason.trim().is_empty() {
                return Err(rule_err("empty reason".to_string()));
            }
            let condition = r.condition.unwrap_or_default();
            if kind == RuleType::Permanent {
                if condition.is_empty() {
                    return Err(rule_err("permanent rule without a condition".to_string()));
                }
                if !conditions.iter().any(|c| c.condition == condition) {
                    warnings.push(format!(
                        "{file}: rule {index} (reason {:?}): condition {condition:?} is not \
                         declared in conditions; the rule can never set it (NPD ignores it too)",
                        r.reason
                    ));
                }
            }
            rules.push(RuleDecl {
                kind,
                condition,
                reason: r.reason,
                pattern: r.pattern,
                message_suffix: r.pattern_generated_message_suffix.unwrap_or_default(),
            });
        }
        let ruleset =
            RuleSet::compile(&rules, buffer_size).map_err(|CompileError { index, cause }| {
                RulesError::Rule {
                    file: file.to_string(),
                    index,
                    reason: rules[index].reason.clone(),
                    cause,
                }
            })?;
        Ok(MonitorConfig {
            origin: file.to_string(),
            plugin,
            plugin_config,
            log_path: raw.log_path,
            lookback,
            delay,
            skip_list: raw.skip_list.unwrap_or_default(),
            buffer_size,
            source: raw.source.unwrap_or_default(),
            metrics_reporting: raw.metrics_reporting.unwrap_or(true),
            conditions,
            rules,
            warnings,
            ruleset: Arc::new(ruleset),
        })
    }

    /// The conditions this monitor declares (type, healthy reason and message), for the
    /// agent's initial status.
    pub fn declared_conditions(&self) -> &[ConditionDecl] {
        &self.conditions
    }

    /// Every rule reason (for zero-initialised metrics, as NPD does).
    pub fn reasons(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for r in &self.rules {
            if !v.contains(&r.reason.as_str()) {
                v.push(&r.reason);
            }
        }
        v
    }
}

/// Parse a Go `time.ParseDuration` string: `300ms`, `5m`, `1h30m`, `1.5h`, `-2s`, `0`.
/// Negative durations are rejected (meaningless for lookback, delay and clearAfter).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {orig:?}"));
    }
    if s.is_empty() {
        return Err(format!("invalid duration {orig:?}"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {orig:?}"))?;
        if num_end == 0 {
            return Err(format!("invalid duration {orig:?}"));
        }
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("invalid duration {orig:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("unknown unit {u:?} in duration {orig:?}")),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("duration {orig:?} out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_plugin_file_is_pointed_at_its_flag() {
        let text =
            include_str!("../../../integration/tests/fixtures/npd-config/ntp-problem-monitor.json");
        let e = MonitorConfig::parse("/config/ntp.json", text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/config/ntp.json: a custom-plugin file")
                && e.ends_with("--config.custom-plugin-monitor"),
            "{e}"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("2m3s"), Ok(Duration::from_secs(123)));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("-5s").is_err());
        assert!(parse_go_duration("5d").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("m").is_err());
    }

    #[test]
    fn default_rules_load_and_fix_the_seed_defects() {
        let defaults = MonitorConfig::defaults().expect("default rules load");
        assert_eq!(defaults.len(), 2);
        let k = &defaults[0];
        assert_eq!(k.plugin, Plugin::Kmsg);
        assert_eq!(k.source, "kernel-monitor");
        let ro = k
            .conditions
            .iter()
            .find(|c| c.condition == "ReadonlyFilesystem")
            .unwrap();
        assert_eq!(ro.reason, "FilesystemIsNotReadOnly");
        // reasons unchanged from the users' file
        for reason in [
            "PodOOMKilling",
            "TaskHung",
            "UnregisterNetDevice",
            "KernelOops",
            "AUFSUmountHung",
            "DockerHung",
            "FilesystemIsReadOnly",
            "TCPMemOverFlow",
            "TCPSkOverFlow",
            "NFOverFlow",
            "ARPOverFlow",
        ] {
            assert!(k.rules.iter().any(|r| r.reason == reason), "{reason}");
        }
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        assert_eq!(k.reasons().len(), 11, "KernelOops twice, listed once");
        let d = &defaults[1];
        assert_eq!(d.plugin, Plugin::Journald);
        assert_eq!(d.plugin_config.get("source").unwrap(), "dockerd");
    }

    /// The reasons the Xid rules give real-format driver lines (`NVRM: Xid (PCI:…): <n>, …`).
    fn xid_reasons(lines: &[&str]) -> Vec<String> {
        let x = MonitorConfig::nvidia_xid().unwrap();
        let mut buf = crate::logs::LogBuffer::new(std::sync::Arc::clone(&x.ruleset));
        lines
            .iter()
            .flat_map(|l| {
                buf.push(crate::logs::Line {
                    message: l.to_string(),
                    timestamp: std::time::SystemTime::UNIX_EPOCH,
                })
            })
            .map(|m| x.rules[m.rule].reason.clone())
            .collect()
    }

    #[test]
    fn nvidia_xid_rules_name_the_xid_and_split_fatal_from_warning() {
        let x = MonitorConfig::nvidia_xid().unwrap();
        assert_eq!(x.source, "nvidia-xid-monitor");
        assert!(x.warnings.is_empty(), "{:?}", x.warnings);
        assert_eq!(
            x.ruleset.multiline_rule_count(),
            0,
            "all single-line (fast path)"
        );
        // one rule per Xid 1..=199, fatal ones permanent on NvidiaGPUProblem, plus >= 200
        for n in 1..200u32 {
            let fatal = NVIDIA_FATAL_XIDS.contains(&n);
            let want = if fatal {
                format!("NvidiaXID{n}Error")
            } else {
                format!("NvidiaXID{n}Warning")
            };
            let r: Vec<_> = x.rules.iter().filter(|r| r.reason == want).collect();
            assert_eq!(r.len(), 1, "{want}");
            assert_eq!(r[0].kind == RuleType::Permanent, fatal, "{want}");
            if fatal {
                assert_eq!(r[0].condition, "NvidiaGPUProblem");
            }
        }
        assert_eq!(x.rules.len(), 200);
        let deployed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/base/rules/nvidia-xid-monitor.json");
        assert_eq!(
            std::fs::read_to_string(&deployed).unwrap(),
            NVIDIA_XID_RULES.1,
            "{} is the built-in file",
            deployed.display()
        );
        assert_eq!(
            xid_reasons(&[
                "NVRM: Xid (PCI:0000:3b:00): 79, pid=1957, name=python3, GPU has fallen off the bus.",
                "NVRM: Xid (PCI:0000:00:1e): 13, pid=2911, name=train, Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address",
                "NVRM: Xid (PCI:0000:05:00): 31, pid=3002, name=python, Ch 00000010, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted @ 0x7f2b_c0000000. Fault is of type FAULT_PDE ACCESS_TYPE_READ",
                "NVRM: Xid (PCI:0000:b7:00): 119, pid=8812, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU1 GSP! Expected function 76 (GSP_RM_CONTROL) (0x2080014b 0x5).",
                "NVRM: Xid (PCI:0000:18:00): 48, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 0, subpartition 0.",
                "NVRM: Xid (PCI:0000:18:00): 317, pid=1, name=x, a future Xid",
                "NVRM: GPU at PCI:0000:3b:00: GPU-5c2d8b7e-0000-0000-0000-000000000000",
                "NVRM: Xid (PCI:0000:18:00): 0079, not a real number format",
            ]),
            [
                "NvidiaXID79Error",
                "NvidiaXID13Warning",
                "NvidiaXID31Warning",
                "NvidiaXID119Error",
                "NvidiaXID48Error",
                "NvidiaXIDWarning",
            ]
        );
    }

    #[test]
    fn npd_upstream_rule_files_load_unmodified() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npd-config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                let c = MonitorConfig::load(&p)
                    .unwrap_or_else(|e| panic!("{} does not load: {e}", p.display()));
                assert!(!c.rules.is_empty(), "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 8, "only {n} upstream files found");
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed");
        for f in ["kernel-monitor.json", "docker-monitor.json"] {
            MonitorConfig::load(seed.join(f)).unwrap();
        }
    }

    #[test]
    fn malformed_files_name_file_rule_and_cause() {
        let e = MonitorConfig::parse("x.json", b"{ not json").unwrap_err();
        assert!(
            e.to_string().starts_with("x.json: malformed rule file"),
            "{e}"
        );
        let e = MonitorConfig::parse("x.json", br#"{"plugin":"kmsg","rules":[{"type":"temporary","reason":"Bad","pattern":"(unclosed"}]}"#).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("x.json") && s.contains("\"Bad\"") && s.contains("unclosed"),
            "{s}"
        );
        let e = MonitorConfig::parse("x.json", br#"{"plugin":"kmsg","rules":[{"type":"temporary","reason":"Look","pattern":"a(?=b)"}]}"#).unwrap_err();
        assert!(e.to_string().contains("Look"), "{e}");
        let e = MonitorConfig::parse("x.json", br#"{"plugin":"syslog","rules":[]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown plugin"), "{e}");
        let e = MonitorConfig::parse(
            "x.json",
            br#"{"plugin":"kmsg","rules":[{"type":"sometimes","reason":"R","pattern":"x"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown rule type"), "{e}");
        let e = MonitorConfig::parse(
            "x.json",
            br#"{"plugin":"kmsg","lookback":"5 minutes","rules":[]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("lookback"), "{e}");
        let e = MonitorConfig::parse("x.json", br#"{"plugin":"journald","rules":[]}"#).unwrap_err();
        assert!(e.to_string().contains("pluginConfig.source"), "{e}");
        let e = MonitorConfig::parse(
            "x.json",
            br#"{"plugin":"kmsg","rules":[{"type":"permanent","reason":"R","pattern":"x"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("without a condition"), "{e}");
    }

    /// Bytes that are not UTF-8 are replaced wherever they are, as NPD's Go decoder does
    /// (serde_json alone refused them in a top-level key but skipped them in a condition's
    /// unknown key; found by fuzzing `rule_file`).
    #[test]
    fn invalid_utf8_is_replaced_as_npd_does() {
        let c = MonitorConfig::parse(
            "x.json",
            b"{\"plugin\":\"kmsg\",\n\"rules\":[{\"type\":\"temporary\",\"reason\":\"R\",\"pattern\":\"a\xffb\"}]}",
        )
        .unwrap();
        assert_eq!(c.rules[0].pattern, "a\u{fffd}b");
        let c = MonitorConfig::parse(
            "x.json",
            b"{\"plugin\":\"kmsg\",\"\xff\xfe\":1,\"rules\":[{\"type\":\"temporary\",\"reason\":\"R\",\"pattern\":\"x\"}]}",
        )
        .unwrap();
        assert_eq!(c.rules.len(), 1);
    }

    #[test]
    fn undeclared_condition_is_a_warning_and_clear_after_parses() {
        let c = MonitorConfig::parse(
            "x.json",
            br#"{"plugin":"kmsg","conditions":[{"type":"A","reason":"AOk","message":"fine","clearAfter":"10m"}],
                "rules":[{"type":"permanent","condition":"B","reason":"R","pattern":"x"}],"unknownKey":1}"#,
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.conditions[0].clear_after, Some(Duration::from_secs(600)));
        assert_eq!(c.buffer_size, DEFAULT_BUFFER_SIZE);
        assert_eq!(c.lookback, Duration::ZERO);
    }

    /// Arbitrary bytes never panic the loader (a small deterministic property test).
    #[test]
    fn arbitrary_bytes_never_panic_the_loader() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let base = DEFAULT_RULES[0].1.as_bytes();
        for i in 0..3000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut buf = base.to_vec();
            if i % 2 == 0 {
                // mutate a few bytes of a valid file
                for k in 0..4 {
                    let pos = ((rng >> (k * 8)) as usize) % buf.len();
                    buf[pos] = (rng >> (k * 3)) as u8;
                }
            } else {
                buf = (0..(rng % 200)).map(|k| (rng >> (k % 56)) as u8).collect();
            }
            let _ = MonitorConfig::parse("fuzz.json", &buf);
        }
    }
}
