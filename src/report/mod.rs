//! Reporters: the Kubernetes API (conditions, events), Prometheus metrics and the HTTP
//! endpoints. They never read the host.

pub mod http;
pub mod kube;
pub mod metrics;
pub mod outbox;
