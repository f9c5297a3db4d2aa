//! Small clients for host services, each bounded by a caller-given deadline.

pub mod containerd;
pub mod dns;
pub mod docker;
pub mod metadata;
