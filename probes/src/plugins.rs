//! NPD custom-plugin monitor files (`--config.custom-plugin-monitor`, the older
//! `--custom-plugin-monitors`): read them and map each onto the native probe that replaces
//! its script.
//!
//! nodeprobe runs no scripts. A plugin file whose rules run one of the scripts a native probe
//! replaces (`check_ntp.sh`, `check_inodes.sh`, …), or whose condition type or source is a
//! native probe's, turns that probe on with the file's `invoke_interval`, `timeout`,
//! `source`, condition type and reasons. A file for any other script is an
//! [`PluginError::UnknownScript`] naming the file, the script and the native probes.
//!
//! [`PluginFile::parse`] and [`map`] are pure; [`load`] reads the file. [`Remapped`] wraps the
//! built native probe so that its runs carry the file's names.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::logs::rules::parse_go_duration;
use crate::registry::{ProbeDecl, DECLS};
use crate::{CheckFuture, ConditionSpec, Finding, Outcome, Probe};

/// NPD's defaults for a plugin file's `pluginConfig`.
pub const DEFAULT_INVOKE_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest plugin file read (the users' are under 2 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The scripts a native probe replaces, by file name: the users' (`../seed/config`) and
/// upstream NPD's (`config/plugin/`).
pub const KNOWN_SCRIPTS: &[(&str, &str)] = &[
    ("check_inodes.sh", "inodes"),
    ("check_pid_pressure.sh", "pid-pressure"),
    ("check_systemd.sh", "systemd"),
    ("check_ntp.sh", "ntp"),
    ("check_docker_offline.sh", "runtime"),
    ("instance_expired_checker.sh", "spot"),
    ("network_problem.sh", "network"),
    ("dns_problem.sh", "network"),
];

/// Why a plugin file cannot be used. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("{file}: cannot read: {cause}")]
    Read { file: String, cause: String },
    #[error("{file}: malformed custom-plugin file: {cause}")]
    Json { file: String, cause: String },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error(
        "{file}: runs {script:?}, which no native probe replaces (nodeprobe runs no scripts); \
         native probes: {natives}; pass --skip-unknown-plugins to skip such files with a warning"
    )]
    UnknownScript {
        file: String,
        script: String,
        natives: String,
    },
    #[error("{file}: its rules run scripts of different native probes: {scripts}")]
    MixedScripts { file: String, scripts: String },
    #[error(
        "{file}: condition {condition:?} has no native counterpart in probe {probe} \
         (its conditions: {natives})"
    )]
    ExtraCondition {
        file: String,
        condition: String,
        probe: &'static str,
        natives: String,
    },
    #[error("{file} and {other} both configure probe {probe}: keep one of them")]
    Duplicate {
        file: String,
        other: String,
        probe: &'static str,
    },
    #[error("{file}: condition type {condition:?} is also written by probe {other}")]
    ConditionClash {
        file: String,
        condition: String,
        other: &'static str,
    },
}

impl PluginError {
    /// Whether `--skip-unknown-plugins` turns this error into a warning.
    pub fn is_unknown_script(&self) -> bool {
        matches!(self, PluginError::UnknownScript { .. })
    }
}

/// `pluginConfig` of a custom-plugin file (NPD field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_message_change_based_condition_update: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_initial_status: Option<bool>,
}

/// A condition a plugin file declares, with its healthy (default) reason and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginCondition {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

/// A rule: run `path` with `args`; exit 1 is the problem `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRule {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_interval: Option<String>,
}

impl PluginRule {
    fn permanent(&self) -> bool {
        self.type_ == "permanent"
    }
    /// The script's file name (`/config/plugin/check_ntp.sh` → `check_ntp.sh`).
    pub fn script(&self) -> &str {
        script_name(&self.path)
    }
}

/// The file name of a rule's `path`.
pub fn script_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// A custom-plugin monitor file, as NPD reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFile {
    pub plugin: String,
    #[serde(rename = "pluginConfig", default)]
    pub plugin_config: PluginConfig,
    #[serde(default)]
    pub source: String,
    #[serde(
        rename = "metricsReporting",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub metrics_reporting: Option<bool>,
    #[serde(default)]
    pub conditions: Vec<PluginCondition>,
    #[serde(default)]
    pub rules: Vec<PluginRule>,
}

fn duration(file: &str, what: &str, s: &str) -> Result<Duration, PluginError> {
    let d = parse_go_duration(s).map_err(|e| PluginError::Invalid {
        file: file.to_string(),
        what: format!("{what}: {e}"),
    })?;
    if d.is_zero() {
        return Err(PluginError::Invalid {
            file: file.to_string(),
            what: format!("{what} must be greater than zero"),
        });
    }
    // As for the flags: far beyond any sensible period, and safe to add to an Instant.
    if d > Duration::from_secs(366 * 86_400) {
        return Err(PluginError::Invalid {
            file: file.to_string(),
            what: format!("{what} {s:?}: at most 366 days"),
        });
    }
    Ok(d)
}

impl PluginFile {
    /// Parse and validate (NPD's own checks; the scripts need not exist: none is run).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Self, PluginError> {
        // Bytes that are not UTF-8 are replaced, as NPD's Go decoder does.
        let text = String::from_utf8_lossy(bytes);
        let pf: PluginFile = serde_json::from_str(&text).map_err(|e| PluginError::Json {
            file: file.to_string(),
            cause: e.to_string(),
        })?;
        let invalid = |what: String| PluginError::Invalid {
            file: file.to_string(),
            what,
        };
        if pf.plugin != "custom" {
            let hint = match pf.plugin.as_str() {
                "kmsg" | "journald" | "filelog" => {
                    " (a system-log-monitor file: pass it to --config.system-log-monitor)"
                }
                _ => "",
            };
            return Err(invalid(format!(
                "plugin {:?} is not \"custom\"{hint}",
                pf.plugin
            )));
        }
        if pf.rules.is_empty() {
            return Err(invalid("no rules".into()));
        }
        let global_timeout = pf.timeout(file)?;
        pf.interval(file)?;
        for (i, r) in pf.rules.iter().enumerate() {
            let rule = |what: String| invalid(format!("rule {i} (reason {:?}): {what}", r.reason));
            match r.type_.as_str() {
                "temporary" | "permanent" => {}
                other => {
                    return Err(rule(format!(
                        "type {other:?} is not \"temporary\" or \"permanent\""
                    )))
                }
            }
            if r.script().is_empty() {
                return Err(rule("no script path".into()));
            }
            if r.reason.is_empty() {
                return Err(rule("empty reason".into()));
            }
            if let Some(t) = &r.timeout {
                let t = duration(file, &format!("rule {i} timeout"), t)?;
                if t > global_timeout {
                    return Err(rule(format!(
                        "timeout {t:?} is greater than the global timeout {global_timeout:?}"
                    )));
                }
            }
            if let Some(t) = &r.invoke_interval {
                duration(file, &format!("rule {i} invoke_interval"), t)?;
            }
            if r.permanent() {
                let c = r.condition.as_deref().unwrap_or("");
                if !pf.conditions.iter().any(|d| d.type_ == c) {
                    return Err(rule(format!(
                        "permanent problem {c:?} does not have a preset default condition"
                    )));
                }
            }
        }
        for (i, c) in pf.conditions.iter().enumerate() {
            if c.type_.is_empty() || c.reason.is_empty() {
                return Err(invalid(format!(
                    "condition {i} needs a type and a reason, got {:?} / {:?}",
                    c.type_, c.reason
                )));
            }
            if pf.conditions[..i].iter().any(|d| d.type_ == c.type_) {
                return Err(invalid(format!(
                    "condition {:?} is declared twice",
                    c.type_
                )));
            }
        }
        Ok(pf)
    }

    /// The global timeout (`pluginConfig.timeout`, NPD default 5s).
    pub fn timeout(&self, file: &str) -> Result<Duration, PluginError> {
        match &self.plugin_config.timeout {
            None => Ok(DEFAULT_TIMEOUT),
            Some(s) => duration(file, "pluginConfig.timeout", s),
        }
    }

    /// The global `invoke_interval` (NPD default 30s).
    pub fn interval(&self, file: &str) -> Result<Duration, PluginError> {
        match &self.plugin_config.invoke_interval {
            None => Ok(DEFAULT_INVOKE_INTERVAL),
            Some(s) => duration(file, "pluginConfig.invoke_interval", s),
        }
    }
}

/// How a file was recognised as a native probe's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum MatchedBy {
    /// A rule runs a script the probe replaces.
    Script(String),
    /// The script is not known, but a declared condition type is the probe's.
    Condition(String),
    /// The script is not known, but the source is the probe's.
    Source(String),
}

impl std::fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchedBy::Script(s) => write!(f, "script {s}"),
            MatchedBy::Condition(c) => write!(f, "condition type {c}"),
            MatchedBy::Source(s) => write!(f, "source {s}"),
        }
    }
}

/// One native condition as the file names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedCondition {
    /// The native condition type this stands for (`NTPProblem`).
    pub native: &'static str,
    pub condition: String,
    pub healthy_reason: String,
    pub healthy_message: String,
    /// Replaces the native default problem reason (specific native reasons stay).
    pub problem_reason: String,
    /// Event reason when the condition turns True (the file's temporary rule), if any.
    pub problem_event: Option<String>,
}

/// What a plugin file turns into: a native probe, its schedule and its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginMapping {
    pub file: String,
    pub probe: &'static str,
    pub matched_by: MatchedBy,
    pub source: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Every condition of the probe, in its order (natives the file does not mention keep
    /// their names).
    pub conditions: Vec<MappedCondition>,
    /// What nodeprobe does differently from NPD for this file.
    pub notes: Vec<String>,
}

/// The native probes and the scripts they replace, for error messages.
pub fn natives() -> String {
    DECLS
        .iter()
        .map(|d| {
            let scripts: Vec<&str> = KNOWN_SCRIPTS
                .iter()
                .filter(|(_, p)| *p == d.name)
                .map(|(s, _)| *s)
                .collect();
            let conds: Vec<&str> = d.conditions.iter().map(|c| c.condition).collect();
            format!("{} ({}; {})", d.name, scripts.join(", "), conds.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn recognise(file: &str, pf: &PluginFile) -> Result<(&'static ProbeDecl, MatchedBy), PluginError> {
    let mut found: Vec<(&'static str, &str)> = Vec::new();
    for r in &pf.rules {
        if let Some((s, p)) = KNOWN_SCRIPTS.iter().find(|(s, _)| *s == r.script()) {
            if !found.iter().any(|(q, _)| q == p) {
                found.push((p, s));
            }
        }
    }
    let decl_of = |name: &str| DECLS.iter().find(|d| d.name == name);
    match found.as_slice() {
        [(p, s)] => {
            if let Some(d) = decl_of(p) {
                return Ok((d, MatchedBy::Script(s.to_string())));
            }
        }
        [] => {}
        many => {
            return Err(PluginError::MixedScripts {
                file: file.to_string(),
                scripts: many
                    .iter()
                    .map(|(p, s)| format!("{s} ({p})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
    for c in &pf.conditions {
        if let Some(d) = DECLS
            .iter()
            .find(|d| d.conditions.iter().any(|n| n.condition == c.type_))
        {
            return Ok((d, MatchedBy::Condition(c.type_.clone())));
        }
    }
    if let Some(d) = DECLS.iter().find(|d| d.source == pf.source) {
        return Ok((d, MatchedBy::Source(pf.source.clone())));
    }
    let script = pf
        .rules
        .iter()
        .map(|r| r.script())
        .find(|s| !KNOWN_SCRIPTS.iter().any(|(k, _)| k == s))
        .unwrap_or_default();
    Err(PluginError::UnknownScript {
        file: file.to_string(),
        script: script.to_string(),
        natives: natives(),
    })
}

/// Map a parsed plugin file onto its native probe (pure).
pub fn map(file: &str, pf: &PluginFile) -> Result<PluginMapping, PluginError> {
    let (decl, matched_by) = recognise(file, pf)?;
    let mut notes = Vec::new();
    if let MatchedBy::Condition(_) | MatchedBy::Source(_) = &matched_by {
        let scripts: Vec<&str> = pf.rules.iter().map(|r| r.script()).collect();
        notes.push(format!(
            "script {} is not run: probe {} replaces it (recognised by {matched_by})",
            scripts.join(", "),
            decl.name
        ));
    }
    // Pair the file's conditions with the probe's: by type, then (renamed) in order.
    let mut paired: Vec<Option<&PluginCondition>> = vec![None; decl.conditions.len()];
    let has_rule = |c: &PluginCondition| {
        pf.rules
            .iter()
            .any(|r| r.permanent() && r.condition.as_deref() == Some(c.type_.as_str()))
    };
    let mut rest = Vec::new();
    for c in &pf.conditions {
        match decl.conditions.iter().position(|n| n.condition == c.type_) {
            Some(i) => paired[i] = Some(c),
            None => rest.push(c),
        }
    }
    for c in rest {
        if !has_rule(c) {
            notes.push(format!(
                "condition {} is declared but set by no rule, and probe {} has no such \
                 condition: not written",
                c.type_, decl.name
            ));
            continue;
        }
        match paired.iter().position(Option::is_none) {
            Some(i) => {
                notes.push(format!(
                    "condition {} stands for {}",
                    c.type_, decl.conditions[i].condition
                ));
                paired[i] = Some(c);
            }
            None => {
                return Err(PluginError::ExtraCondition {
                    file: file.to_string(),
                    condition: c.type_.clone(),
                    probe: decl.name,
                    natives: decl
                        .conditions
                        .iter()
                        .map(|n| n.condition)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
    // Temporary rules become the event sent when a condition turns True: the condition
    // whose permanent rule runs the same script, else the probe's first condition.
    let mut events: Vec<Option<String>> = vec![None; decl.conditions.len()];
    let any_temporary = pf.rules.iter().any(|r| !r.permanent());
    for r in pf.rules.iter().filter(|r| !r.permanent()) {
        let by_script = paired.iter().position(|c| {
            c.is_some_and(|c| {
                pf.rules.iter().any(|p| {
                    p.permanent()
                        && p.condition.as_deref() == Some(c.type_.as_str())
                        && p.path == r.path
                })
            })
        });
        let i = by_script.unwrap_or(0);
        match &events[i] {
            None => events[i] = Some(r.reason.clone()),
            Some(e) if *e == r.reason => {}
            Some(e) => notes.push(format!(
                "temporary reason {} is not sent: condition {} already sends {e}",
                r.reason, decl.conditions[i].condition
            )),
        }
    }
    let conditions = decl
        .conditions
        .iter()
        .zip(paired.iter().zip(events))
        .map(|(native, (file_cond, event))| {
            let Some(c) = file_cond else {
                return native_condition(native, any_temporary.then_some(event).flatten());
            };
            let mut perm = pf
                .rules
                .iter()
                .filter(|r| r.permanent() && r.condition.as_deref() == Some(c.type_.as_str()));
            let problem_reason = match perm.next() {
                Some(r) => r.reason.clone(),
                None => native.problem_reason.to_string(),
            };
            for other in perm.filter(|r| r.reason != problem_reason) {
                notes.push(format!(
                    "reason {} of condition {} is not used: the probe's problems are {}",
                    other.reason, c.type_, problem_reason
                ));
            }
            MappedCondition {
                native: native.condition,
                condition: c.type_.clone(),
                healthy_reason: c.reason.clone(),
                healthy_message: c.message.clone(),
                problem_reason,
                problem_event: if any_temporary { event } else { None },
            }
        })
        .collect();
    if pf
        .plugin_config
        .enable_message_change_based_condition_update
        == Some(true)
    {
        notes.push(
            "enable_message_change_based_condition_update is not supported: a new message \
             with the same status and reason is not written"
                .into(),
        );
    }
    if pf.metrics_reporting == Some(false) {
        notes.push(
            "metricsReporting false is not supported: problem_gauge and problem_counter \
             cover every condition"
                .into(),
        );
    }
    if pf.plugin_config.skip_initial_status == Some(true) {
        notes.push(
            "skip_initial_status is not supported: the condition is written from the first check"
                .into(),
        );
    }
    let global_timeout = pf.timeout(file)?;
    let global_interval = pf.interval(file)?;
    let mut timeout = Duration::ZERO;
    let mut interval: Option<Duration> = None;
    for (i, r) in pf.rules.iter().enumerate() {
        let t = match &r.timeout {
            Some(s) => duration(file, &format!("rule {i} timeout"), s)?,
            None => global_timeout,
        };
        timeout = timeout.max(t);
        let iv = match &r.invoke_interval {
            Some(s) => duration(file, &format!("rule {i} invoke_interval"), s)?,
            None => global_interval,
        };
        interval = Some(interval.map_or(iv, |v| v.min(iv)));
    }
    Ok(PluginMapping {
        file: file.to_string(),
        probe: decl.name,
        matched_by,
        source: if pf.source.is_empty() {
            decl.source.to_string()
        } else {
            pf.source.clone()
        },
        interval: interval.unwrap_or(global_interval),
        timeout: if timeout.is_zero() {
            global_timeout
        } else {
            timeout
        },
        conditions,
        notes,
    })
}

/// A native condition kept as it is (bar the event of a temporary-only file).
fn native_condition(native: &ConditionSpec, event: Option<String>) -> MappedCondition {
    MappedCondition {
        native: native.condition,
        condition: native.condition.to_string(),
        healthy_reason: native.healthy_reason.to_string(),
        healthy_message: native.healthy_message.to_string(),
        problem_reason: native.problem_reason.to_string(),
        problem_event: event.or(native.problem_event.map(String::from)),
    }
}

/// Whether these bytes are a custom-plugin file (`"plugin": "custom"`), not a
/// system-log-monitor rule file.
pub fn is_plugin_file(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Head {
        plugin: String,
    }
    serde_json::from_str::<Head>(&String::from_utf8_lossy(bytes))
        .is_ok_and(|h| h.plugin == "custom")
}

impl PluginMapping {
    /// One line for `rules check`: what the file turns into.
    pub fn describe(&self) -> String {
        let conds: Vec<String> = self
            .conditions
            .iter()
            .map(|c| {
                let event = c
                    .problem_event
                    .as_deref()
                    .map(|e| format!(", event {e}"))
                    .unwrap_or_default();
                format!(
                    "{} ({} / {}{event})",
                    c.condition, c.healthy_reason, c.problem_reason
                )
            })
            .collect();
        format!(
            "custom plugin, {} -> native probe {}: source {:?}, every {}, timeout {}; {}",
            self.matched_by,
            self.probe,
            self.source,
            crate::humanize(self.interval),
            crate::humanize(self.timeout),
            conds.join(", ")
        )
    }
}

/// Parse and map file contents; `file` names it in errors.
pub fn parse_and_map(file: &str, bytes: &[u8]) -> Result<PluginMapping, PluginError> {
    map(file, &PluginFile::parse(file, bytes)?)
}

/// Read, parse and map a plugin file.
pub fn load(path: &Path) -> Result<PluginMapping, PluginError> {
    use std::io::Read;
    let file = path.display().to_string();
    let read = |cause: String| PluginError::Read {
        file: file.clone(),
        cause,
    };
    let f = std::fs::File::open(path).map_err(|e| read(e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(read(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    parse_and_map(&file, &bytes)
}

/// Check a set of mappings against each other (pure): one file per probe, and no
/// condition type written by two probes (`running` lists the other probes that run, by
/// name, with their native conditions).
pub fn check_set(
    mappings: &[PluginMapping],
    running: &[&'static ProbeDecl],
) -> Result<(), PluginError> {
    for (i, m) in mappings.iter().enumerate() {
        if let Some(o) = mappings[..i].iter().find(|o| o.probe == m.probe) {
            return Err(PluginError::Duplicate {
                file: m.file.clone(),
                other: o.file.clone(),
                probe: m.probe,
            });
        }
    }
    let written = |probe: &str| -> Vec<String> {
        match mappings.iter().find(|m| m.probe == probe) {
            Some(m) => m.conditions.iter().map(|c| c.condition.clone()).collect(),
            None => DECLS
                .iter()
                .find(|d| d.name == probe)
                .map(|d| {
                    d.conditions
                        .iter()
                        .map(|c| c.condition.to_string())
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    for m in mappings {
        for c in &m.conditions {
            for other in running.iter().filter(|d| d.name != m.probe) {
                if written(other.name).contains(&c.condition) {
                    return Err(PluginError::ConditionClash {
                        file: m.file.clone(),
                        condition: c.condition.clone(),
                        other: other.name,
                    });
                }
            }
        }
    }
    Ok(())
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// A native probe reporting under a plugin file's names: source, condition types, reasons.
/// Its declaration is built once at startup and lives as long as the process. The schedule
/// is the inner probe's: build it with the file's (`ProbeConfigs::set_schedule`).
pub struct Remapped {
    inner: Box<dyn Probe>,
    decl: &'static ProbeDecl,
    native: &'static [ConditionSpec],
}

impl Remapped {
    pub fn new(inner: Box<dyn Probe>, m: &PluginMapping) -> Self {
        let native = inner.decl().conditions;
        let specs: Vec<ConditionSpec> = native
            .iter()
            .map(
                |n| match m.conditions.iter().find(|c| c.native == n.condition) {
                    Some(c) => ConditionSpec {
                        condition: leak(&c.condition),
                        healthy_reason: leak(&c.healthy_reason),
                        healthy_message: leak(&c.healthy_message),
                        problem_reason: leak(&c.problem_reason),
                        problem_event: c.problem_event.as_deref().map(leak),
                    },
                    None => *n,
                },
            )
            .collect();
        let decl = Box::leak(Box::new(ProbeDecl {
            name: inner.decl().name,
            source: leak(&m.source),
            conditions: Box::leak(specs.into_boxed_slice()),
        }));
        Remapped {
            inner,
            decl,
            native,
        }
    }

    /// A finding of the native probe under the file's names.
    fn rename(&self, f: Finding) -> Finding {
        let Some(i) = self
            .native
            .iter()
            .position(|n| n.condition == f.spec.condition)
        else {
            return f;
        };
        let (native, spec) = (&self.native[i], self.decl.conditions[i]);
        let outcome = match f.outcome {
            Outcome::Problem { reason, message } if reason == native.problem_reason => {
                Outcome::Problem {
                    reason: spec.problem_reason.to_string(),
                    message,
                }
            }
            other => other,
        };
        Finding { spec, outcome }
    }
}

impl Probe for Remapped {
    fn decl(&self) -> &'static ProbeDecl {
        self.decl
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
    fn interval(&self) -> Duration {
        self.inner.interval()
    }
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let findings = self.inner.check().await;
            findings.into_iter().map(|f| self.rename(f)).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &[(&str, &str)] = &[
        (
            "ntp-problem-monitor.json",
            include_str!("../../integration/tests/fixtures/npd-config/ntp-problem-monitor.json"),
        ),
        (
            "network-problem-monitor.json",
            include_str!(
                "../../integration/tests/fixtures/npd-config/network-problem-monitor.json"
            ),
        ),
        (
            "inodes-problem-monitor.json",
            include_str!("../../integration/tests/fixtures/npd-config/inodes-problem-monitor.json"),
        ),
        (
            "pid-pressure-problem-monitor.json",
            include_str!(
                "../../integration/tests/fixtures/npd-config/pid-pressure-problem-monitor.json"
            ),
        ),
        (
            "docker-offline-monitor.json",
            include_str!("../../integration/tests/fixtures/npd-config/docker-offline-monitor.json"),
        ),
        (
            "instance_expired_checker.json",
            include_str!(
                "../../integration/tests/fixtures/npd-config/instance_expired_checker.json"
            ),
        ),
        (
            "systemd-check-monitor.json",
            include_str!("../../integration/tests/fixtures/npd-config/systemd-check-monitor.json"),
        ),
    ];

    fn seed(name: &str) -> &'static str {
        SEED.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// Every seed file maps onto the probe replacing its script, and under the names the
    /// native probe already uses: the drop-in changes nothing users see.
    #[test]
    fn every_seed_file_maps_to_its_native_probe_with_the_native_names() {
        let expect = [
            ("ntp-problem-monitor.json", "ntp", "check_ntp.sh", 60, 30),
            (
                "network-problem-monitor.json",
                "network",
                "network_problem.sh",
                60,
                30,
            ),
            (
                "inodes-problem-monitor.json",
                "inodes",
                "check_inodes.sh",
                120,
                30,
            ),
            (
                "pid-pressure-problem-monitor.json",
                "pid-pressure",
                "check_pid_pressure.sh",
                60,
                30,
            ),
            (
                "docker-offline-monitor.json",
                "runtime",
                "check_docker_offline.sh",
                30,
                25,
            ),
            (
                "instance_expired_checker.json",
                "spot",
                "instance_expired_checker.sh",
                60,
                30,
            ),
            (
                "systemd-check-monitor.json",
                "systemd",
                "check_systemd.sh",
                60,
                30,
            ),
        ];
        let mut all = Vec::new();
        for (name, probe, script, interval, timeout) in expect {
            let m = parse_and_map(name, seed(name).as_bytes()).unwrap();
            assert_eq!(m.probe, probe, "{name}");
            assert_eq!(m.matched_by, MatchedBy::Script(script.into()), "{name}");
            assert_eq!(m.interval, Duration::from_secs(interval), "{name}");
            assert_eq!(m.timeout, Duration::from_secs(timeout), "{name}");
            assert!(m.notes.is_empty(), "{name}: {:?}", m.notes);
            let d = crate::registry::decl(probe).unwrap();
            assert_eq!(m.source, d.source, "{name}");
            for (c, n) in m.conditions.iter().zip(d.conditions) {
                assert_eq!(c.native, n.condition);
                assert_eq!(c.condition, n.condition, "{name}");
                assert_eq!(c.healthy_reason, n.healthy_reason, "{name}");
                assert_eq!(c.healthy_message, n.healthy_message, "{name}");
                assert_eq!(c.problem_reason, n.problem_reason, "{name}");
                assert_eq!(c.problem_event.as_deref(), n.problem_event, "{name}");
            }
            all.push(m);
        }
        let running: Vec<_> = DECLS.iter().collect();
        check_set(&all, &running).unwrap();
    }

    #[test]
    fn an_unknown_script_names_file_script_and_the_native_probes() {
        let text = r#"{"plugin":"custom","source":"gpu-monitor",
            "conditions":[{"type":"GPUProblem","reason":"GPUIsFine","message":"ok"}],
            "rules":[{"type":"permanent","condition":"GPUProblem","reason":"GPUIsBroken",
                      "path":"/config/plugin/check_gpu.sh","args":["--all"]}]}"#;
        let e = parse_and_map("/config/gpu.json", text.as_bytes()).unwrap_err();
        assert!(e.is_unknown_script());
        let msg = e.to_string();
        assert!(
            msg.starts_with("/config/gpu.json: runs \"check_gpu.sh\", which no native probe"),
            "{msg}"
        );
        for d in DECLS {
            assert!(msg.contains(d.name), "{msg}");
        }
        assert!(msg.contains("ntp (check_ntp.sh; NTPProblem)"), "{msg}");
        assert!(msg.contains("--skip-unknown-plugins"), "{msg}");
    }

    #[test]
    fn user_names_replace_the_native_ones() {
        // Upstream NPD's NTP file: other source, reasons, a temporary rule, 3s timeouts.
        let text = r#"{"plugin":"custom","pluginConfig":{"invoke_interval":"30s","timeout":"5s",
            "max_output_length":80,"concurrency":3,"enable_message_change_based_condition_update":false},
            "source":"ntp-custom-plugin-monitor","metricsReporting":true,
            "conditions":[{"type":"NTPProblem","reason":"NTPIsUp","message":"ntp service is up"}],
            "rules":[{"type":"temporary","reason":"NTPIsDown","path":"./config/plugin/check_ntp.sh","timeout":"3s"},
                     {"type":"permanent","condition":"NTPProblem","reason":"NTPIsDown",
                      "path":"./config/plugin/check_ntp.sh","timeout":"3s"}]}"#;
        let m = parse_and_map("ntp.json", text.as_bytes()).unwrap();
        assert_eq!(
            (m.probe, m.source.as_str()),
            ("ntp", "ntp-custom-plugin-monitor")
        );
        assert_eq!(
            (m.interval, m.timeout),
            (Duration::from_secs(30), Duration::from_secs(3))
        );
        let c = &m.conditions[0];
        assert_eq!(
            (
                c.condition.as_str(),
                c.healthy_reason.as_str(),
                c.healthy_message.as_str()
            ),
            ("NTPProblem", "NTPIsUp", "ntp service is up")
        );
        assert_eq!(c.problem_reason, "NTPIsDown");
        assert_eq!(c.problem_event.as_deref(), Some("NTPIsDown"));

        // A renamed condition with an unknown script: recognised by nothing → error; by
        // the source → mapped, the condition renamed, noted.
        let renamed = r#"{"plugin":"custom","source":"inodes-custom-plugin-monitor",
            "conditions":[{"type":"DiskInodes","reason":"InodesOk","message":"fine"}],
            "rules":[{"type":"permanent","condition":"DiskInodes","reason":"InodesLow","path":"/x/my.sh"}]}"#;
        let m = parse_and_map("r.json", renamed.as_bytes()).unwrap();
        assert_eq!(m.probe, "inodes");
        assert_eq!(
            m.matched_by,
            MatchedBy::Source("inodes-custom-plugin-monitor".into())
        );
        assert_eq!(m.conditions[0].condition, "DiskInodes");
        assert_eq!(m.conditions[0].native, "InodesPressure");
        assert!(
            m.notes.iter().any(|n| n.contains("my.sh is not run")),
            "{:?}",
            m.notes
        );
        assert!(m
            .notes
            .iter()
            .any(|n| n.contains("DiskInodes stands for InodesPressure")));

        // Options without a meaning here are accepted and noted.
        let noted = r#"{"plugin":"custom","metricsReporting":false,
            "pluginConfig":{"skip_initial_status":true,"enable_message_change_based_condition_update":true},
            "conditions":[{"type":"NTPProblem","reason":"Ok"},{"type":"Spare","reason":"Ok"}],
            "rules":[{"type":"permanent","condition":"NTPProblem","reason":"Bad","path":"check_ntp.sh"}]}"#;
        let m = parse_and_map("n.json", noted.as_bytes()).unwrap();
        let notes = m.notes.join("\n");
        for want in [
            "metricsReporting false",
            "skip_initial_status",
            "enable_message_change_based_condition_update",
            "condition Spare is declared but set by no rule",
        ] {
            assert!(notes.contains(want), "{want}: {notes}");
        }
        assert_eq!(
            m.source, "ntp-problem-custom-plugin-monitor",
            "no source: the probe's"
        );
    }

    #[test]
    fn bad_files_are_refused_naming_the_file() {
        let cases = [
            (
                r#"{"plugin":"kmsg","rules":[]}"#,
                "a system-log-monitor file",
            ),
            (r#"{"plugin":"custom","rules":[]}"#, "no rules"),
            (
                r#"{"plugin":"custom","pluginConfig":{"timeout":"soon"},"rules":[{"type":"temporary","reason":"R","path":"check_ntp.sh"}]}"#,
                "pluginConfig.timeout",
            ),
            (
                r#"{"plugin":"custom","pluginConfig":{"invoke_interval":"0s"},"rules":[{"type":"temporary","reason":"R","path":"check_ntp.sh"}]}"#,
                "greater than zero",
            ),
            (
                r#"{"plugin":"custom","rules":[{"type":"permanent","condition":"X","reason":"R","path":"check_ntp.sh"}]}"#,
                "preset default condition",
            ),
            (
                r#"{"plugin":"custom","rules":[{"type":"sometimes","reason":"R","path":"check_ntp.sh"}]}"#,
                "\"sometimes\"",
            ),
            (
                r#"{"plugin":"custom","rules":[{"type":"temporary","reason":"R","path":"check_ntp.sh","timeout":"9s"}]}"#,
                "greater than the global timeout",
            ),
            (
                r#"{"plugin":"custom","rules":[{"type":"temporary","reason":"R","path":"check_ntp.sh"},{"type":"temporary","reason":"S","path":"check_inodes.sh"}]}"#,
                "check_ntp.sh (ntp), check_inodes.sh (inodes)",
            ),
            (
                r#"{"plugin":"custom","conditions":[{"type":"NTPProblem","reason":"A"},{"type":"Extra","reason":"B"}],"rules":[{"type":"permanent","condition":"Extra","reason":"R","path":"check_ntp.sh"}]}"#,
                "condition \"Extra\" has no native counterpart in probe ntp",
            ),
            (
                r#"{"plugin":"custom","max_output_length":"x","pluginConfig":{"max_output_length":"eighty"}}"#,
                "malformed custom-plugin file",
            ),
        ];
        for (text, want) in cases {
            let e = parse_and_map("f.json", text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("f.json: ") || e.starts_with("f.json "), "{e}");
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn two_files_for_one_probe_or_one_condition_twice_are_refused() {
        let ntp = parse_and_map("a.json", seed("ntp-problem-monitor.json").as_bytes()).unwrap();
        let mut again = ntp.clone();
        again.file = "b.json".into();
        let running: Vec<_> = DECLS.iter().collect();
        let e = check_set(&[ntp.clone(), again], &running).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.json and a.json both configure probe ntp: keep one of them"
        );
        let mut clash = ntp;
        clash.conditions[0].condition = "InodesPressure".into();
        let e = check_set(&[clash], &running).unwrap_err();
        assert!(
            e.to_string().contains("also written by probe inodes"),
            "{e}"
        );
    }

    #[test]
    fn load_reads_bounded_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = load(&big).unwrap_err().to_string();
        assert!(
            e.contains("big.json: cannot read: larger than 1048576 bytes"),
            "{e}"
        );
        let e = load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json: cannot read: "), "{e}");
        let ok = dir.path().join("ntp.json");
        std::fs::write(&ok, seed("ntp-problem-monitor.json")).unwrap();
        assert_eq!(load(&ok).unwrap().probe, "ntp");
    }

    #[tokio::test]
    async fn a_remapped_probe_reports_under_the_file_names() {
        static NATIVE: ProbeDecl = ProbeDecl {
            name: "ntp",
            source: "ntp-problem-custom-plugin-monitor",
            conditions: &[crate::ntp::CONDITION],
        };
        let inner = crate::FnProbe {
            decl: &NATIVE,
            timeout: Duration::from_secs(7),
            interval: Duration::from_secs(45),
            check: Box::new(|| {
                Box::pin(async {
                    crate::single(
                        crate::ntp::CONDITION,
                        Outcome::problem("NodeHasNTPProblem", "clock not synchronised"),
                    )
                })
            }),
        };
        let text = r#"{"plugin":"custom","pluginConfig":{"invoke_interval":"45s","timeout":"7s"},
            "source":"time-monitor",
            "conditions":[{"type":"ClockProblem","reason":"ClockOk","message":"clock ok"}],
            "rules":[{"type":"permanent","condition":"ClockProblem","reason":"ClockBad","path":"/p/check_ntp.sh"}]}"#;
        let m = parse_and_map("t.json", text.as_bytes()).unwrap();
        let p = Remapped::new(Box::new(inner), &m);
        assert_eq!(
            (p.timeout(), p.interval()),
            (Duration::from_secs(7), Duration::from_secs(45))
        );
        assert_eq!((p.name(), p.decl().source), ("ntp", "time-monitor"));
        let run = crate::run_probe(&p).await;
        assert_eq!(run.source, "time-monitor");
        let f = &run.findings[0];
        assert_eq!(f.spec.condition, "ClockProblem");
        assert_eq!(f.spec.healthy_reason, "ClockOk");
        assert_eq!(
            f.outcome,
            Outcome::problem("ClockBad", "clock not synchronised")
        );
    }
}
