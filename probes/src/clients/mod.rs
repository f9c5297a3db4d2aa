//! Small clients for host daemons, each bounded by a caller-given deadline.

pub mod containerd;
pub mod docker;
