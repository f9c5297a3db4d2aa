//! Per-monitor state persisted across agent restarts: the kmsg cursor (boot id + last
//! sequence number read) and the log-based conditions (status, reason, message,
//! transition time, last match). Everything is scoped to one boot: state from another
//! boot is ignored. A missing, corrupt or unwritable state file is a warning, never fatal.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Why state could not be read or written (reported as a warning).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt state file ({cause}); ignoring it")]
    Corrupt { path: String, cause: String },
}

/// One condition as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCondition {
    pub condition: String,
    /// `True` / `False`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub transition_unix_ms: u64,
    #[serde(default)]
    pub last_match_unix_ms: Option<u64>,
}

/// A monitor's persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    pub version: u32,
    pub boot_id: String,
    /// Last kmsg sequence number fully processed.
    pub last_seq: Option<u64>,
    #[serde(default)]
    pub conditions: Vec<SavedCondition>,
    /// Journal cursor of the last entry processed (journald monitors).
    #[serde(default)]
    pub journal_cursor: Option<String>,
    /// Inode and offset after the last complete line processed (filelog monitors).
    #[serde(default)]
    pub file_inode: Option<u64>,
    #[serde(default)]
    pub file_offset: Option<u64>,
    /// Ring cursor (kmsg monitors reading through syslog(2)): the newest timestamp read,
    /// microseconds since boot, and how many lines with that timestamp were read.
    #[serde(default)]
    pub ring_usec: Option<u64>,
    #[serde(default)]
    pub ring_seen: Option<u32>,
}

pub const STATE_VERSION: u32 = 1;

pub fn to_unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// File name for a monitor: `logmonitor-<plugin>-<source>.json`, with anything outside
/// `[A-Za-z0-9._-]` replaced.
pub fn state_file(dir: &Path, plugin: &str, source: &str) -> PathBuf {
    let clean: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = if clean.is_empty() || clean.starts_with('.') {
        format!("_{clean}")
    } else {
        clean
    };
    dir.join(format!("logmonitor-{plugin}-{clean}.json"))
}

/// Read state; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<MonitorState>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let state: MonitorState = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.display().to_string(),
        cause: e.to_string(),
    })?;
    if state.version != STATE_VERSION {
        return Err(StateError::Corrupt {
            path: path.display().to_string(),
            cause: format!("unknown version {}", state.version),
        });
    }
    Ok(Some(state))
}

/// Write state atomically (temp file + rename in the same directory).
pub fn save(path: &Path, state: &MonitorState) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(state).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MonitorState {
        MonitorState {
            version: STATE_VERSION,
            boot_id: "b1".into(),
            last_seq: Some(42),
            conditions: vec![SavedCondition {
                condition: "ReadonlyFilesystem".into(),
                status: "True".into(),
                reason: "FilesystemIsReadOnly".into(),
                message: "Remounting filesystem read-only".into(),
                transition_unix_ms: 1_700_000_000_123,
                last_match_unix_ms: Some(1_700_000_000_123),
            }],
            journal_cursor: None,
            file_inode: None,
            file_offset: None,
            ring_usec: None,
            ring_seen: None,
        }
    }

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = state_file(dir.path(), "kmsg", "kernel monitor/x");
        assert!(p.ends_with("logmonitor-kmsg-kernel_monitor_x.json"));
        assert!(load(&p).unwrap().is_none());
        save(&p, &sample()).unwrap();
        assert_eq!(load(&p).unwrap(), Some(sample()));
        std::fs::write(&p, b"{\"version\":1,").unwrap();
        assert!(matches!(load(&p), Err(StateError::Corrupt { .. })));
        std::fs::write(&p, b"{\"version\":9,\"boot_id\":\"b\",\"last_seq\":null}").unwrap();
        assert!(matches!(load(&p), Err(StateError::Corrupt { .. })));
        assert_eq!(
            from_unix_ms(to_unix_ms(from_unix_ms(1234))),
            from_unix_ms(1234)
        );
    }

    #[test]
    fn unwritable_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        // a directory under a regular file cannot be created
        let p = state_file(&file.join("sub"), "kmsg", "k");
        assert!(save(&p, &sample()).is_err());
    }
}
