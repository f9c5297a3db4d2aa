//! The nodeprobe agent: command line, result rendering the state keeper and the
//! reporters. Host access lives in the `probes` crate; this crate never reads the host
//! except through it.

pub mod cli;
pub mod daemon;
pub mod eventer;
pub mod logs_cmd;
pub mod npd;
pub mod oneshot;
pub mod report;
pub mod state;

/// Process exit codes. 0/1/2 follow NPD's plugin protocol.
pub mod exit {
    /// Every condition healthy.
    pub const OK: i32 = 0;
    /// At least one problem.
    pub const PROBLEM: i32 = 1;
    /// At least one Unknown and no problem.
    pub const UNKNOWN: i32 = 2;
    /// Bad flags or configuration; nothing ran (BSD `EX_USAGE`).
    pub const USAGE: i32 = 64;
    /// Internal error (BSD `EX_SOFTWARE`).
    pub const INTERNAL: i32 = 70;
}
