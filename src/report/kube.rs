//! Kubernetes reporter: node conditions (strategic-merge `PATCH nodes/<name>/status` with
//! only nodeprobe's condition types) and core/v1 Events on the Node (and on the Pod for OOM
//! kills). RBAC: get nodes, patch nodes/status, create/patch events, list pods.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{
    Event, EventSource, Node, NodeCondition, NodeStatus, ObjectReference, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use probes::findings::OomKill;
use probes::ConditionStatus;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::report::metrics::Metrics;
use crate::report::outbox::Outbox;
use crate::state::{Condition, EventOut};

/// Errors of the Kubernetes reporter.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("--apiserver-override: server URL {url:?}: {cause}")]
    ServerUrl { url: String, cause: String },
    #[error("in-cluster configuration: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("building the API client: {0}")]
    Client(#[source] kube::Error),
    #[error("{request}: {source}")]
    Request {
        request: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("{request}: no answer within {}s", .timeout.as_secs())]
    Timeout {
        request: &'static str,
        timeout: Duration,
    },
    #[error("{request}: bad object: {source}")]
    Decode {
        request: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl KubeError {
    /// HTTP status of an API error, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Request {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }
}

/// Deadline of one API request (the client's own timeouts are set below it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn bounded<T>(
    request: &'static str,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(KubeError::Request { request, source }),
        Err(_) => Err(KubeError::Timeout {
            request,
            timeout: REQUEST_TIMEOUT,
        }),
    }
}

/// Where the API server is beyond the kubeconfig: NPD's `--apiserver-override`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOverride {
    /// `scheme://host:port` replacing the server of the in-cluster configuration.
    pub server: Option<String>,
    /// `inClusterConfig=false` without a kubeconfig: the server, without credentials.
    pub no_credentials: bool,
    /// Do not verify the server's certificate (`insecure=true`).
    pub insecure: bool,
}

/// Client from `--kubeconfig` (or `$KUBECONFIG`), else the in-cluster service account.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    client_with(kubeconfig, &ServerOverride::default()).await
}

/// [`client`] with NPD's `--apiserver-override` applied: its server replaces the
/// in-cluster one (a kubeconfig names its own).
pub async fn client_with(
    kubeconfig: Option<&Path>,
    over: &ServerOverride,
) -> Result<Client, KubeError> {
    let url = |s: &String| {
        s.parse::<http::Uri>().map_err(|e| KubeError::ServerUrl {
            url: s.clone(),
            cause: e.to_string(),
        })
    };
    let mut config = match (kubeconfig, &over.server) {
        (None, Some(s)) if over.no_credentials => Config::new(url(s)?),
        _ => config(kubeconfig).await?,
    };
    if let (None, Some(s)) = (kubeconfig, &over.server) {
        config.cluster_url = url(s)?;
    }
    if over.insecure {
        config.accept_invalid_certs = true;
    }
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(8));
    config.write_timeout = Some(Duration::from_secs(8));
    Client::try_from(config).map_err(KubeError::Client)
}

/// The client configuration from a kubeconfig, else the in-cluster service account (the
/// eventer sets its own timeouts: a watch outlives the agent's 8 s reads).
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config, KubeError> {
    Ok(match kubeconfig {
        Some(path) => {
            let err = |source| KubeError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None => Config::incluster()?,
    })
}

/// What the agent learns about its Node at startup.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub uid: String,
    pub conditions: Vec<Condition>,
}

/// The field manager nodeprobe's writes are recorded under (`managedFields`).
pub const FIELD_MANAGER: &str = "nodeprobe";

/// A Kubernetes time (second precision on the wire).
fn k8s_time(t: SystemTime) -> Time {
    Time(Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// GET the Node (from etcd: a quorum read) and take its uid and conditions.
pub async fn get_node(client: &Client, node: &str) -> Result<NodeInfo, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let n = bounded("get node", api.get(node)).await?;
    Ok(node_info(&n))
}

/// The uid and conditions of a Node object.
pub fn node_info(n: &Node) -> NodeInfo {
    let conditions = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| cs.iter().map(parse_condition).collect())
        .unwrap_or_default();
    NodeInfo {
        uid: n.metadata.uid.clone().unwrap_or_default(),
        conditions,
    }
}

fn parse_condition(c: &NodeCondition) -> Condition {
    let status = match c.status.as_str() {
        "True" => ConditionStatus::True,
        "False" => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    Condition {
        type_: c.type_.clone(),
        status,
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
        transition: c
            .last_transition_time
            .as_ref()
            .map(|t| SystemTime::from(t.0))
            .unwrap_or_else(SystemTime::now),
    }
}

/// The strategic-merge patch body: our conditions (merged by `type` on the server) and
/// `$patch: delete` directives for owned types we no longer run.
pub fn conditions_patch(conditions: &[Condition], remove: &[String], now: SystemTime) -> Value {
    let status = NodeStatus {
        conditions: Some(
            conditions
                .iter()
                .map(|c| NodeCondition {
                    type_: c.type_.clone(),
                    status: c.status.as_str().to_string(),
                    reason: Some(c.reason.clone()),
                    message: Some(c.message.clone()),
                    last_transition_time: Some(k8s_time(c.transition)),
                    last_heartbeat_time: Some(k8s_time(now)),
                })
                .collect(),
        ),
        ..Default::default()
    };
    let mut status = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(list) = status["conditions"].as_array_mut() {
        // a directive, not a condition: no typed form
        list.extend(
            remove
                .iter()
                .map(|t| json!({"type": t, "$patch": "delete"})),
        );
    }
    json!({ "status": status })
}

/// Settings of the condition writer.
#[derive(Debug, Clone)]
pub struct ConditionWriter {
    pub node: String,
    pub heartbeat: Duration,
    /// Owned condition types to delete from the Node (sent until one patch succeeds).
    pub remove: Vec<String>,
}

/// At most one pod list per this period (a miss only refreshes the cache this often).
pub const POD_REFRESH: Duration = Duration::from_secs(10);

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(8);

impl ConditionWriter {
    /// Write the latest condition set whenever it changes, at least every heartbeat, and
    /// retry failures with backoff (the latest state wins). Returns when `shutdown` is set,
    /// after one last bounded attempt if the newest state is not written yet.
    pub async fn run(
        self,
        client: Client,
        mut rx: watch::Receiver<Vec<Condition>>,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let api: Api<Node> = Api::all(client);
        let mut remove = self.remove.clone();
        let mut dirty = true;
        let mut last_ok: Option<Instant> = None;
        let mut backoff = RETRY_MIN;
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let conditions = rx.borrow_and_update().clone();
            let heartbeat_due = last_ok.is_none_or(|t| t.elapsed() >= self.heartbeat);
            let may_try = retry_at.is_none_or(|t| tokio::time::Instant::now() >= t);
            if (dirty || heartbeat_due) && may_try && (!conditions.is_empty() || !remove.is_empty())
            {
                match self.patch(&api, &conditions, &remove).await {
                    Ok(()) => {
                        metrics.condition_syncs.inc();
                        ready.store(true, Ordering::Relaxed);
                        remove.clear();
                        last_ok = Some(Instant::now());
                        backoff = RETRY_MIN;
                        retry_at = None;
                        // Something newer may have arrived while we were writing.
                        dirty = rx.has_changed().unwrap_or(false);
                        if dirty {
                            continue;
                        }
                    }
                    Err(e) => {
                        metrics.api_error("patch_node_status");
                        tracing::warn!(error = %e, retry_in = ?backoff, "node status patch failed");
                        retry_at = Some(tokio::time::Instant::now() + backoff);
                        backoff = (backoff * 2).min(RETRY_MAX);
                        dirty = true;
                    }
                }
            }
            if *shutdown.borrow() {
                return;
            }
            let wake = match (retry_at, last_ok) {
                (Some(t), _) => t,
                (None, Some(ok)) => tokio::time::Instant::from_std(ok) + self.heartbeat,
                (None, None) => tokio::time::Instant::now() + self.heartbeat,
            };
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        // The state keeper is gone: flush once more and stop.
                        if dirty {
                            let c = rx.borrow().clone();
                            let _ = self.patch(&api, &c, &remove).await;
                        }
                        return;
                    }
                    dirty = true;
                }
                _ = tokio::time::sleep_until(wake) => {}
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        let newest = rx.has_changed().unwrap_or(false);
                        if dirty || newest {
                            let c = rx.borrow_and_update().clone();
                            if self.patch(&api, &c, &remove).await.is_err() {
                                metrics.api_error("patch_node_status");
                            }
                        }
                        return;
                    }
                }
            }
        }
    }

    async fn patch(
        &self,
        api: &Api<Node>,
        conditions: &[Condition],
        remove: &[String],
    ) -> Result<(), KubeError> {
        let body = conditions_patch(conditions, remove, SystemTime::now());
        bounded(
            "patch node status",
            api.patch_status(
                &self.node,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..Default::default()
                },
                &Patch::Strategic(&body),
            ),
        )
        .await
        .map(|_| ())
    }
}

/// Settings of the event writer.
#[derive(Debug, Clone)]
pub struct EventWriter {
    pub node: String,
    /// The Node's uid (from the startup GET); the node name when unknown.
    pub node_uid: String,
    pub namespace: String,
}

/// A pod as the OOM resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// (container id without the runtime prefix, container name)
    pub containers: Vec<(String, String)>,
}

/// Pods of this node by UID, refreshed on a miss (at most once per `min_refresh`).
#[derive(Debug)]
pub struct PodCache {
    pods: HashMap<String, PodRef>,
    last_refresh: Option<Instant>,
    min_refresh: Duration,
}

impl PodCache {
    pub fn new(min_refresh: Duration) -> Self {
        PodCache {
            pods: HashMap::new(),
            last_refresh: None,
            min_refresh,
        }
    }

    /// Replace the cache with a pod list.
    pub fn fill(&mut self, items: &[Pod]) {
        self.pods.clear();
        for p in items {
            let m = &p.metadata;
            let (Some(uid), Some(ns), Some(name)) = (&m.uid, &m.namespace, &m.name) else {
                continue;
            };
            let statuses = p.status.iter().flat_map(|s| {
                s.container_statuses
                    .iter()
                    .chain(&s.init_container_statuses)
                    .flatten()
            });
            let containers = statuses
                .filter_map(|c| {
                    let id = c.container_id.as_deref()?;
                    let id = id.rsplit("://").next().unwrap_or(id);
                    Some((id.to_string(), c.name.clone()))
                })
                .collect();
            self.pods.insert(
                uid.clone(),
                PodRef {
                    namespace: ns.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                    containers,
                },
            );
        }
        self.last_refresh = Some(Instant::now());
    }

    pub fn get(&self, uid: &str) -> Option<&PodRef> {
        self.pods.get(uid)
    }

    fn may_refresh(&self) -> bool {
        self.last_refresh
            .is_none_or(|t| t.elapsed() >= self.min_refresh)
    }

    /// Resolve a pod UID, listing this node's pods on a miss.
    pub async fn resolve(
        &mut self,
        client: &Client,
        node: &str,
        uid: &str,
        metrics: &Metrics,
    ) -> Option<PodRef> {
        if let Some(p) = self.pods.get(uid) {
            return Some(p.clone());
        }
        if !self.may_refresh() {
            return None;
        }
        let api: Api<Pod> = Api::all(client.clone());
        // resourceVersion=0: served from the API server's watch cache, not etcd.
        let lp = ListParams::default()
            .fields(&format!("spec.nodeName={node}"))
            .match_any();
        match bounded("list pods", api.list(&lp)).await {
            Ok(list) => self.fill(&list.items),
            Err(e) => {
                metrics.api_error("list_pods");
                tracing::warn!(error = %e, "listing this node's pods failed");
                self.last_refresh = Some(Instant::now());
            }
        }
        self.pods.get(uid).cloned()
    }
}

/// Message naming the OOM-killed pod (or its UID when it could not be resolved).
pub fn oom_message(oom: &OomKill, pod: Option<&PodRef>, original: &str) -> String {
    match (pod, &oom.pod_uid) {
        (Some(p), _) => {
            let container = oom
                .container_id
                .as_deref()
                .and_then(|id| p.containers.iter().find(|(cid, _)| cid == id))
                .map(|(_, n)| n.clone())
                .or_else(|| {
                    oom.container_id
                        .as_ref()
                        .map(|id| id.chars().take(12).collect())
                })
                .unwrap_or_else(|| "<unknown>".to_string());
            format!(
                "container {container} of pod {}/{} was OOM-killed: task {}, pid {}",
                p.namespace, p.name, oom.task, oom.pid
            )
        }
        (None, Some(uid)) => format!(
            "{original} (pod UID {uid}, not found on this node; task {}, pid {})",
            oom.task, oom.pid
        ),
        (None, None) => original.to_string(),
    }
}

/// The involvedObject of events on the Node. `kubectl describe node` lists events whose
/// involvedObject is {kind Node, name, namespace ""} and whose uid is the Node's uid or its
/// name; `kubectl events --for node/<n>` also needs apiVersion v1.
pub fn node_ref(node: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        uid: Some(uid.into()),
        ..Default::default()
    }
}

/// A core/v1 Event.
pub fn event_object(
    ev: &EventOut,
    name: &str,
    namespace: &str,
    involved: ObjectReference,
    message: &str,
    host: &str,
) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(ev.reason.clone()),
        message: Some(message.into()),
        type_: Some(ev.type_.as_str().into()),
        count: Some(i32::try_from(ev.count).unwrap_or(i32::MAX)),
        first_timestamp: Some(k8s_time(ev.first)),
        last_timestamp: Some(k8s_time(ev.last)),
        source: Some(EventSource {
            component: Some(ev.source.clone()),
            host: Some(host.into()),
        }),
        ..Default::default()
    }
}

/// The merge patch that brings an Event's count and last time up to date.
fn count_patch(ev: &EventOut) -> Value {
    json!({"count": ev.count, "lastTimestamp": k8s_time(ev.last)})
}

impl EventWriter {
    /// Write the events of `outbox` in order (count updates folded into pending writes).
    /// Failures are retried with backoff; a write refused for good (400, 403, 422) or failing
    /// 50 times is dropped and counted. Returns when `shutdown` is set: what is still pending
    /// stays in the outbox (and its spool, for the next run).
    pub async fn run(
        self,
        client: Client,
        outbox: Arc<Outbox>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut created: HashSet<String> = HashSet::new();
        let mut created_order: VecDeque<String> = VecDeque::new();
        let mut pods = PodCache::new(POD_REFRESH);
        let mut backoff = RETRY_MIN;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some(next) = outbox.front() else {
                tokio::select! {
                    _ = outbox.wait() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            let ev = &next.ev;
            match self.write(&client, ev, &created, &mut pods, &metrics).await {
                Ok(()) => {
                    outbox.written(&next);
                    if created.insert(ev.name.clone()) {
                        created_order.push_back(ev.name.clone());
                        if created_order.len() > 4096 {
                            if let Some(old) = created_order.pop_front() {
                                created.remove(&old);
                            }
                        }
                    }
                    if !ev.update {
                        metrics.event_emitted(&ev.source, &ev.reason);
                    }
                    backoff = RETRY_MIN;
                }
                Err(e) => {
                    metrics.api_error(if ev.update {
                        "patch_event"
                    } else {
                        "create_event"
                    });
                    let permanent = matches!(e.status(), Some(400 | 403 | 422));
                    if permanent || next.attempts + 1 >= 50 {
                        tracing::warn!(error = %e, reason = %ev.reason, "giving up on an event");
                        metrics.event_dropped(&ev.source, &ev.reason, "api");
                        outbox.failed(&next, true);
                        continue;
                    }
                    outbox.failed(&next, false);
                    tracing::warn!(error = %e, retry_in = ?backoff, "event write failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn write(
        &self,
        client: &Client,
        ev: &EventOut,
        created: &HashSet<String>,
        pods: &mut PodCache,
        metrics: &Metrics,
    ) -> Result<(), KubeError> {
        let api: Api<Event> = Api::namespaced(client.clone(), &self.namespace);
        if ev.update && created.contains(&ev.name) {
            match patch_count(&api, ev).await {
                Ok(_) => return Ok(()),
                // Gone (expired, or the server lost it): create it again below.
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        let mut message = ev.message.clone();
        if let Some(oom) = &ev.oom {
            let pod = match &oom.pod_uid {
                Some(uid) => pods.resolve(client, &self.node, uid, metrics).await,
                None => None,
            };
            message = oom_message(oom, pod.as_ref(), &ev.message);
            if let (Some(p), false) = (&pod, ev.update) {
                let pod_api: Api<Event> = Api::namespaced(client.clone(), &p.namespace);
                let involved = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    namespace: Some(p.namespace.clone()),
                    name: Some(p.name.clone()),
                    uid: Some(p.uid.clone()),
                    ..Default::default()
                };
                // An object name has at most 253 characters: shorten long pod names.
                let suffix = ev.name.rsplit('.').next().unwrap_or("0");
                let room = 253usize.saturating_sub(suffix.len() + 1);
                let base: String = p.name.chars().take(room).collect();
                let name = format!("{base}.{suffix}");
                let obj = event_object(ev, &name, &p.namespace, involved, &message, &self.node);
                match create(&pod_api, obj).await {
                    // Counted once: a retry finds it there (409).
                    Ok(()) => metrics.oom_kill(&p.namespace),
                    Err(e) if e.status() != Some(409) => {
                        metrics.api_error("create_event");
                        tracing::warn!(error = %e, "OOM event on the pod failed");
                    }
                    Err(_) => {}
                }
            }
        }
        let obj = event_object(
            ev,
            &ev.name,
            &self.namespace,
            node_ref(&self.node, &self.node_uid),
            &message,
            &self.node,
        );
        match create(&api, obj).await {
            Ok(()) => Ok(()),
            // Already there (a retried create that did land, or one spooled by a run that
            // died after writing it): bring the count up to date.
            Err(e) if e.status() == Some(409) => patch_count(&api, ev).await,
            Err(e) => Err(e),
        }
    }
}

fn write_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

async fn create(api: &Api<Event>, ev: Event) -> Result<(), KubeError> {
    bounded("create event", api.create(&write_params(), &ev))
        .await
        .map(|_| ())
}

async fn patch_count(api: &Api<Event>, ev: &EventOut) -> Result<(), KubeError> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    bounded(
        "patch event",
        api.patch(&ev.name, &params, &Patch::Merge(&count_patch(ev))),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EventType;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn patch_carries_only_our_types_and_deletes() {
        let c = Condition {
            type_: "InodesPressure".into(),
            status: ConditionStatus::True,
            reason: "NodeHasInodesPressure".into(),
            message: "91% used".into(),
            transition: t(0),
        };
        let v = conditions_patch(&[c], &["OldType".into()], t(60));
        assert_eq!(
            v,
            json!({"status": {"conditions": [
                {"type": "InodesPressure", "status": "True", "reason": "NodeHasInodesPressure",
                 "message": "91% used", "lastTransitionTime": "2027-01-15T08:00:00Z",
                 "lastHeartbeatTime": "2027-01-15T08:01:00Z"},
                {"type": "OldType", "$patch": "delete"}
            ]}})
        );
    }

    #[test]
    fn node_info_parses_uid_and_conditions() {
        let v = json!({"metadata": {"name": "n1", "uid": "abc"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok",
             "lastTransitionTime": "2027-01-15T08:00:00Z"},
            {"type": "X", "status": "Unknown"}
        ]}});
        let info = node_info(&serde_json::from_value(v).unwrap());
        assert_eq!(info.uid, "abc");
        assert_eq!(info.conditions.len(), 2);
        assert_eq!(info.conditions[0].transition, t(0));
        assert_eq!(info.conditions[1].status, ConditionStatus::Unknown);
    }

    #[test]
    fn oom_messages_name_the_pod_or_the_uid() {
        let oom = OomKill {
            pod_uid: Some("u1".into()),
            container_id: Some("c".repeat(64)),
            task: "stress".into(),
            pid: 7,
            memcg: "/kubepods/podu1/ccc".into(),
        };
        let pod = PodRef {
            namespace: "ns".into(),
            name: "web".into(),
            uid: "u1".into(),
            containers: vec![("c".repeat(64), "app".into())],
        };
        assert_eq!(
            oom_message(&oom, Some(&pod), "orig"),
            "container app of pod ns/web was OOM-killed: task stress, pid 7"
        );
        assert_eq!(
            oom_message(&oom, None, "Killed process 7"),
            "Killed process 7 (pod UID u1, not found on this node; task stress, pid 7)"
        );
        let mut cache = PodCache::new(Duration::from_secs(1));
        let obj = json!({"metadata": {"uid": "u1", "namespace": "ns", "name": "web"},
            "spec": {"containers": []},
            "status": {"containerStatuses": [{"name": "app", "image": "i", "imageID": "",
                "ready": true, "restartCount": 0,
                "containerID": format!("containerd://{}", "c".repeat(64))}]}});
        cache.fill(&[serde_json::from_value(obj).unwrap()]);
        assert_eq!(cache.get("u1"), Some(&pod));
    }

    #[test]
    fn event_object_shape() {
        let ev = EventOut {
            name: "n1.abc".into(),
            update: false,
            type_: EventType::Warning,
            source: "kernel-monitor".into(),
            reason: "TaskHung".into(),
            message: "100% %d".into(),
            count: 3,
            first: t(0),
            last: t(5),
            oom: None,
        };
        let v = serde_json::to_value(event_object(
            &ev,
            "n1.abc",
            "default",
            node_ref("n1", "uid1"),
            &ev.message,
            "n1",
        ))
        .unwrap();
        assert_eq!(v["involvedObject"]["uid"], "uid1");
        assert_eq!(v["involvedObject"]["apiVersion"], "v1");
        assert!(v["involvedObject"].get("namespace").is_none());
        assert_eq!(v["source"]["component"], "kernel-monitor");
        assert_eq!(v["source"]["host"], "n1");
        assert_eq!(v["message"], "100% %d");
        assert_eq!(v["count"], 3);
        assert_eq!(v["firstTimestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(v["kind"], "Event");
    }
}
