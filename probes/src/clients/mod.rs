//! Small clients for host services: instance metadata (HTTP), DNS (UDP).

pub mod dns;
pub mod metadata;
