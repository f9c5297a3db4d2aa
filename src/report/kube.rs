//! Kubernetes reporter: node conditions (strategic-merge `PATCH nodes/<name>/status` with
//! only nodeprobe's condition types) and core/v1 Events on the Node (and on the Pod for OOM
//! kills). RBAC: get nodes, patch nodes/status, create/patch events, list pods.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use probes::findings::OomKill;
use probes::ConditionStatus;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::report::metrics::Metrics;
use crate::state::{parse_rfc3339, rfc3339, Condition, EventOut, EventType};

/// Errors of the Kubernetes reporter.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
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

/// Client from `--kubeconfig` (or `$KUBECONFIG`), else the in-cluster service account.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let mut config = match kubeconfig {
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
    };
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(8));
    config.write_timeout = Some(Duration::from_secs(8));
    Client::try_from(config).map_err(KubeError::Client)
}

/// What the agent learns about its Node at startup.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub uid: String,
    pub conditions: Vec<Condition>,
}

/// GET the Node (served from the API server cache) and parse its conditions.
pub async fn get_node(client: &Client, node: &str) -> Result<NodeInfo, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let n = bounded("get node", api.get(node)).await?;
    let v = serde_json::to_value(&n).map_err(|source| KubeError::Decode {
        request: "get node",
        source,
    })?;
    Ok(node_info(&v))
}

/// Parse uid and conditions out of a Node object.
pub fn node_info(v: &Value) -> NodeInfo {
    let uid = v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let conditions = v["status"]["conditions"]
        .as_array()
        .map(|a| a.iter().filter_map(parse_condition).collect())
        .unwrap_or_default();
    NodeInfo { uid, conditions }
}

fn parse_condition(c: &Value) -> Option<Condition> {
    let status = match c["status"].as_str()? {
        "True" => ConditionStatus::True,
        "False" => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    };
    Some(Condition {
        type_: c["type"].as_str()?.to_string(),
        status,
        reason: c["reason"].as_str().unwrap_or_default().to_string(),
        message: c["message"].as_str().unwrap_or_default().to_string(),
        transition: c["lastTransitionTime"]
            .as_str()
            .and_then(parse_rfc3339)
            .unwrap_or_else(SystemTime::now),
    })
}

/// The strategic-merge patch body: our conditions (merged by `type` on the server) and
/// `$patch: delete` directives for owned types we no longer run.
pub fn conditions_patch(conditions: &[Condition], remove: &[String], now: SystemTime) -> Value {
    let heartbeat = rfc3339(now);
    let mut list: Vec<Value> = conditions
        .iter()
        .map(|c| {
            json!({
                "type": c.type_,
                "status": c.status.as_str(),
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": rfc3339(c.transition),
                "lastHeartbeatTime": heartbeat,
            })
        })
        .collect();
    for t in remove {
        list.push(json!({"type": t, "$patch": "delete"}));
    }
    json!({"status": {"conditions": list}})
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
                &PatchParams::default(),
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
    /// Events waiting for the API beyond this are dropped (and counted).
    pub max_queue: usize,
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

    /// Replace the cache with a pod list (`items` of a PodList as JSON).
    pub fn fill(&mut self, items: &[Value]) {
        self.pods.clear();
        for p in items {
            let m = &p["metadata"];
            let (Some(uid), Some(ns), Some(name)) = (
                m["uid"].as_str(),
                m["namespace"].as_str(),
                m["name"].as_str(),
            ) else {
                continue;
            };
            let mut containers = Vec::new();
            for key in ["containerStatuses", "initContainerStatuses"] {
                for c in p["status"][key].as_array().into_iter().flatten() {
                    if let (Some(id), Some(cn)) = (c["containerID"].as_str(), c["name"].as_str()) {
                        let id = id.rsplit("://").next().unwrap_or(id);
                        containers.push((id.to_string(), cn.to_string()));
                    }
                }
            }
            self.pods.insert(
                uid.to_string(),
                PodRef {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    uid: uid.to_string(),
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
            Ok(list) => {
                let items: Vec<Value> = list
                    .items
                    .iter()
                    .filter_map(|p| serde_json::to_value(p).ok())
                    .collect();
                self.fill(&items);
            }
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
pub fn node_ref(node: &str, uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid})
}

/// A core/v1 Event object.
pub fn event_object(
    ev: &EventOut,
    name: &str,
    namespace: &str,
    involved: Value,
    message: &str,
    host: &str,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "reason": ev.reason,
        "message": message,
        "type": ev.type_.as_str(),
        "count": ev.count,
        "firstTimestamp": rfc3339(ev.first),
        "lastTimestamp": rfc3339(ev.last),
        "source": {"component": ev.source, "host": host},
    })
}

#[derive(Debug)]
struct Pending {
    ev: EventOut,
    attempts: u32,
}

impl EventWriter {
    /// Write events from `rx` in order; count updates of an Event still queued are folded
    /// into it (the latest count wins). Failures are retried with backoff; when the queue
    /// overflows the oldest event is dropped and counted. Returns when `rx` closes and the
    /// queue is written, or when `shutdown` is set (after a bounded flush).
    pub async fn run(
        self,
        client: Client,
        mut rx: mpsc::Receiver<EventOut>,
        metrics: Arc<Metrics>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut created: HashSet<String> = HashSet::new();
        let mut created_order: VecDeque<String> = VecDeque::new();
        let mut pods = PodCache::new(POD_REFRESH);
        let mut backoff = RETRY_MIN;
        let mut closed = false;
        loop {
            // Take everything that is waiting, folding updates.
            while let Ok(ev) = rx.try_recv() {
                self.enqueue(ev, &mut queue, &mut pending, &metrics);
            }
            if queue.is_empty() {
                if closed {
                    return;
                }
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(ev) => self.enqueue(ev, &mut queue, &mut pending, &metrics),
                        None => closed = true,
                    },
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() { return; }
                    }
                }
                continue;
            }
            let Some(name) = queue.front().cloned() else {
                continue;
            };
            let Some(p) = pending.get(&name) else {
                queue.pop_front();
                continue;
            };
            let ev = p.ev.clone();
            match self
                .write(&client, &ev, &created, &mut pods, &metrics)
                .await
            {
                Ok(()) => {
                    queue.pop_front();
                    pending.remove(&name);
                    if created.insert(name.clone()) {
                        created_order.push_back(name);
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
                    if let Some(p) = pending.get_mut(&name) {
                        p.attempts += 1;
                        if permanent || p.attempts >= 50 {
                            tracing::warn!(error = %e, reason = %ev.reason, "giving up on an event");
                            metrics.event_dropped(&ev.source, &ev.reason, "api");
                            queue.pop_front();
                            pending.remove(&name);
                            continue;
                        }
                    }
                    tracing::warn!(error = %e, retry_in = ?backoff, "event write failed");
                    let sleep = tokio::time::sleep(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            m = rx.recv(), if !closed => match m {
                                Some(ev) => self.enqueue(ev, &mut queue, &mut pending, &metrics),
                                None => closed = true,
                            },
                            _ = shutdown.changed() => {
                                if *shutdown.borrow() {
                                    for n in queue.drain(..) {
                                        if let Some(p) = pending.remove(&n) {
                                            metrics.event_dropped(&p.ev.source, &p.ev.reason, "shutdown");
                                        }
                                    }
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            if *shutdown.borrow() && rx.is_empty() && queue.is_empty() {
                return;
            }
        }
    }

    fn enqueue(
        &self,
        ev: EventOut,
        queue: &mut VecDeque<String>,
        pending: &mut HashMap<String, Pending>,
        metrics: &Metrics,
    ) {
        if let Some(p) = pending.get_mut(&ev.name) {
            // Fold: keep "create" if the create has not gone out yet.
            let update = p.ev.update && ev.update;
            p.ev = EventOut { update, ..ev };
            return;
        }
        if queue.len() >= self.max_queue {
            if let Some(old) = queue.pop_front() {
                if let Some(p) = pending.remove(&old) {
                    metrics.event_dropped(&p.ev.source, &p.ev.reason, "queue");
                }
            }
        }
        queue.push_back(ev.name.clone());
        pending.insert(ev.name.clone(), Pending { ev, attempts: 0 });
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
            let body = json!({"count": ev.count, "lastTimestamp": rfc3339(ev.last)});
            match bounded(
                "patch event",
                api.patch(&ev.name, &PatchParams::default(), &Patch::Merge(&body)),
            )
            .await
            {
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
                let involved = json!({"apiVersion": "v1", "kind": "Pod", "namespace": p.namespace,
                    "name": p.name, "uid": p.uid});
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
            Err(e) if e.status() == Some(409) => {
                // Already there (a retried create that did land): bring the count up to date.
                let body = json!({"count": ev.count, "lastTimestamp": rfc3339(ev.last)});
                bounded(
                    "patch event",
                    api.patch(&ev.name, &PatchParams::default(), &Patch::Merge(&body)),
                )
                .await
                .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}

async fn create(api: &Api<Event>, obj: Value) -> Result<(), KubeError> {
    let ev: Event = serde_json::from_value(obj).map_err(|source| KubeError::Decode {
        request: "create event",
        source,
    })?;
    bounded("create event", api.create(&PostParams::default(), &ev))
        .await
        .map(|_| ())
}

/// Event type of a condition status change (for callers that build their own events).
pub fn event_type_for(status: ConditionStatus) -> EventType {
    if status == ConditionStatus::True {
        EventType::Warning
    } else {
        EventType::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            {"type": "X", "status": "Unknown"},
            {"status": "True"}
        ]}});
        let info = node_info(&v);
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
        cache.fill(&[json!({"metadata": {"uid": "u1", "namespace": "ns", "name": "web"},
            "status": {"containerStatuses": [{"name": "app", "containerID": format!("containerd://{}", "c".repeat(64))}]}})]);
        assert_eq!(cache.get("u1"), Some(&pod));
    }

    fn out(name: &str, update: bool, count: u32) -> EventOut {
        EventOut {
            name: name.into(),
            update,
            type_: EventType::Warning,
            source: "kernel-monitor".into(),
            reason: "TaskHung".into(),
            message: "m".into(),
            count,
            first: t(0),
            last: t(count as u64),
            oom: None,
        }
    }

    #[test]
    fn queued_updates_fold_into_one_write_and_overflow_is_counted() {
        let w = EventWriter {
            node: "n1".into(),
            node_uid: "u".into(),
            namespace: "default".into(),
            max_queue: 2,
        };
        let m = Metrics::new();
        let mut queue = VecDeque::new();
        let mut pending = HashMap::new();
        w.enqueue(out("a", false, 1), &mut queue, &mut pending, &m);
        w.enqueue(out("a", true, 2), &mut queue, &mut pending, &m);
        w.enqueue(out("a", true, 7), &mut queue, &mut pending, &m);
        assert_eq!(queue.len(), 1);
        // Still a create (it never went out), with the newest count.
        let p = &pending["a"];
        assert!(!p.ev.update);
        assert_eq!((p.ev.count, p.ev.last), (7, t(7)));
        w.enqueue(out("b", true, 3), &mut queue, &mut pending, &m);
        w.enqueue(out("c", false, 1), &mut queue, &mut pending, &m);
        assert_eq!(queue, VecDeque::from(["b".to_string(), "c".to_string()]));
        assert!(m.render().contains(
            "nodeprobe_events_dropped_total{source=\"kernel-monitor\",reason=\"TaskHung\",cause=\"queue\"} 1"
        ));
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
        let v = event_object(
            &ev,
            "n1.abc",
            "default",
            node_ref("n1", "uid1"),
            &ev.message,
            "n1",
        );
        assert_eq!(v["involvedObject"]["uid"], "uid1");
        assert_eq!(v["involvedObject"]["apiVersion"], "v1");
        assert!(v["involvedObject"].get("namespace").is_none());
        assert_eq!(v["source"]["component"], "kernel-monitor");
        assert_eq!(v["source"]["host"], "n1");
        assert_eq!(v["message"], "100% %d");
        assert_eq!(v["count"], 3);
        // It is a valid core/v1 Event.
        let _: Event = serde_json::from_value(v).unwrap();
    }
}
