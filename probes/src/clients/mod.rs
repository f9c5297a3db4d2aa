//! Small clients for the host services probes talk to. Each bounds every call by a timeout
//! and returns typed errors that name what was tried.

pub mod containerd;
pub mod dns;
pub mod docker;
pub mod metadata;
pub mod systemd;
