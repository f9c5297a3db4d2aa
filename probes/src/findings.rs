//! What streaming monitors (kmsg / journald rules) hand to the agent's state keeper.
//! Periodic probes return [`crate::Findings`]; log monitors push [`LogFinding`]s into a
//! channel as lines match. Both are host-side facts with no Kubernetes types.

use std::time::SystemTime;

use crate::ConditionStatus;

/// A pod/container named by an OOM kill line (`oom-kill:` ... `task_memcg=` ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OomKill {
    /// Pod UID in its canonical dashed form, when the memcg path names one.
    pub pod_uid: Option<String>,
    /// Container ID (64 hex chars for containerd/docker), when the memcg path names one.
    pub container_id: Option<String>,
    /// The killed task's command name.
    pub task: String,
    /// The killed task's PID.
    pub pid: u32,
    /// The memcg path as the kernel printed it.
    pub memcg: String,
}

/// A temporary event (NPD `temporary` rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorEvent {
    /// The monitor's `source` (event `source.component`), e.g. `kernel-monitor`.
    pub source: String,
    pub reason: String,
    /// Verbatim message (never a format string).
    pub message: String,
    /// Time of the first matched log line.
    pub timestamp: SystemTime,
    /// Set for OOM kills the rule engine could attribute.
    pub oom: Option<OomKill>,
}

/// A condition change from a log monitor (NPD `permanent` rule, or its clearing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub source: String,
    pub condition: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    /// When the status last changed (kept across agent restarts in the same boot).
    pub transition: SystemTime,
}

/// One thing a log monitor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFinding {
    Event(MonitorEvent),
    Condition(ConditionUpdate),
}

/// What a log monitor sends to its receiver.
#[derive(Debug)]
pub enum LogItem {
    Finding(LogFinding),
    /// Confirm (with [`Ack::done`]) once every finding sent before is durable: accepted by
    /// the state keeper and, for events, delivered or spooled. The monitor saves its
    /// position past the line only then (at-least-once delivery).
    Durable(Ack),
}

/// The receiver's side of a [`LogItem::Durable`] request. Dropping it without
/// [`Ack::done`] tells the monitor the findings may be lost (it keeps its position).
#[derive(Debug)]
pub struct Ack(std::sync::mpsc::SyncSender<()>);

/// The monitor's side of an [`Ack`].
#[derive(Debug)]
pub struct AckWait(std::sync::mpsc::Receiver<()>);

impl Ack {
    pub fn new() -> (Ack, AckWait) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        (Ack(tx), AckWait(rx))
    }

    /// The findings sent before are durable.
    pub fn done(self) {
        let _ = self.0.try_send(());
    }
}

impl AckWait {
    /// `Some(true)`: done; `Some(false)`: dropped without confirmation; `None`: not yet
    /// after `timeout`.
    pub fn wait(&self, timeout: std::time::Duration) -> Option<bool> {
        match self.0.recv_timeout(timeout) {
            Ok(()) => Some(true),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some(false),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
        }
    }
}
