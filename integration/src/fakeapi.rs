//! An in-memory fake kube-apiserver speaking plain HTTP on 127.0.0.1, serving what nodeprobe
//! uses with the real semantics:
//!
//! - `GET /api/v1/nodes/<n>`;
//! - `PATCH /api/v1/nodes/<n>/status` with `application/strategic-merge-patch+json` only
//!   (415 otherwise): `status.conditions` merged by `type` (other entries kept,
//!   `$patch: delete` honoured), other fields merged as maps;
//! - core/v1 events: create (409 on a duplicate name), merge-patch, list (per namespace or all);
//! - pods: list, with a `spec.nodeName=<n>` field selector;
//! - `resourceVersion` increments on every write; 404 for unknown objects and paths;
//! - events: **watch** (`?watch=1&resourceVersion=N[&allowWatchBookmarks=true&timeoutSeconds=T]`)
//!   as a chunked stream of `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` lines replayed from N,
//!   an `ERROR` 410 "too old resource version" for N older than the last `compact`, and
//!   list with `limit`/`continue` pages at one resourceVersion; delete.
//!
//! - coordination.k8s.io/v1 Leases: get, create (409 when it exists), update (`PUT`) guarded
//!   by `metadata.resourceVersion` (409 Conflict when it is not the stored one).
//!
//! Fault injection: `lease_conflicts` (the next n Lease updates find the Lease changed by
//! someone else: 409), `fail_next` (n answers with a status, e.g. 503/429/500), `fail_for`
//! (every request for a while), `set_hang` (requests wait until released), `restart` (close
//! every connection, stay down for a while, come back on the same port with the same state).
//! Watch faults: `cut_watches` (close every open watch, optionally in the middle of a
//! line), `set_watch_fail` (answer new watches with a status), `compact` (expire every
//! older resourceVersion: resuming watches get 410 and must re-list).
//! Tests read the state back with `node`, `events`, `requests`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// One request the fake served (or refused).
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// Raw (still percent-encoded) query string.
    pub query: String,
    pub content_type: String,
    pub status: u16,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Value>,
    /// (namespace, name) → Event
    events: BTreeMap<(String, String), Value>,
    pods: Vec<Value>,
    rv: u64,
    log: Vec<Logged>,
    fail_next: Vec<u16>,
    fail_until: Option<(Instant, u16)>,
    hang: bool,
    /// Requests held by `hang` right now.
    held: usize,
    seq: u64,
    /// (resourceVersion, type, namespace, Event) of every Event write since the last compact.
    history: Vec<(u64, &'static str, String, Value)>,
    compacted: u64,
    watchers: Vec<(
        u64,
        Option<String>,
        tokio::sync::mpsc::UnboundedSender<Bytes>,
    )>,
    watch_ids: u64,
    watch_fail: Option<u16>,
    /// (namespace, name) → Lease
    leases: BTreeMap<(String, String), Value>,
    lease_conflicts: usize,
}

impl State {
    /// Record an Event write and stream it to the open watches.
    fn record(&mut self, type_: &'static str, ns: &str, ev: &Value) {
        let rv = self.rv;
        self.history.push((rv, type_, ns.to_string(), ev.clone()));
        let line = watch_line(type_, ev);
        self.watchers.retain(|(_, wns, tx)| {
            wns.as_deref().is_some_and(|w| w != ns) || tx.send(line.clone()).is_ok()
        });
    }
}

fn watch_line(type_: &str, obj: &Value) -> Bytes {
    let mut l = json!({"type": type_, "object": obj}).to_string();
    l.push('\n');
    Bytes::from(l)
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

enum Cmd {
    Restart(Duration),
    Stop,
}

struct Control {
    cmd: Mutex<Option<Cmd>>,
    notify: tokio::sync::Notify,
}

/// The fake API server. Stops on drop.
pub struct FakeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    control: Arc<Control>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_rfc3339() -> String {
    probes::timefmt::rfc3339(std::time::SystemTime::now())
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

impl FakeApi {
    /// Start on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake API");
        let addr = probe.local_addr().expect("local addr");
        drop(probe);
        let state = Arc::new(Mutex::new(State::default()));
        let control = Arc::new(Control {
            cmd: Mutex::new(None),
            notify: tokio::sync::Notify::new(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let state = state.clone();
            let control = control.clone();
            std::thread::spawn(move || serve_thread(addr, state, control, ready_tx))
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake API did not start");
        FakeApi {
            addr,
            state,
            control,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig pointing at this server (plain HTTP, no credentials).
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Add (or replace) a Node with a uid and kubelet-style conditions.
    pub fn add_node(&self, name: &str, uid: &str, conditions: Value) {
        let mut s = lock(&self.state);
        s.rv += 1;
        let rv = s.rv.to_string();
        s.nodes.insert(
            name.to_string(),
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "uid": uid, "resourceVersion": rv},
                   "spec": {}, "status": {"conditions": conditions}}),
        );
    }

    /// Add a running pod bound to `node` with containers `(name, containerID)`.
    pub fn add_pod(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        node: &str,
        containers: &[(&str, &str)],
    ) {
        let mut s = lock(&self.state);
        s.rv += 1;
        let rv = s.rv.to_string();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|(n, id)| {
                json!({"name": n, "containerID": id, "image": "img", "imageID": "",
                                  "ready": true, "restartCount": 0})
            })
            .collect();
        let spec_containers: Vec<Value> = containers
            .iter()
            .map(|(n, _)| json!({"name": n, "image": "img"}))
            .collect();
        s.pods.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": ns, "name": name, "uid": uid, "resourceVersion": rv},
            "spec": {"nodeName": node, "containers": spec_containers},
            "status": {"phase": "Running", "containerStatuses": statuses}}));
    }

    /// The Node as stored.
    pub fn node(&self, name: &str) -> Option<Value> {
        lock(&self.state).nodes.get(name).cloned()
    }

    /// One condition of a Node.
    pub fn condition(&self, node: &str, type_: &str) -> Option<Value> {
        self.node(node).and_then(|n| {
            n["status"]["conditions"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["type"] == type_).cloned())
        })
    }

    /// Events of one namespace (all namespaces with `None`), in creation order.
    pub fn events(&self, ns: Option<&str>) -> Vec<Value> {
        let s = lock(&self.state);
        let mut v: Vec<Value> = s
            .events
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|x| x == n))
            .map(|(_, e)| e.clone())
            .collect();
        // uids are ev-<creation sequence>.
        v.sort_by_key(|e| e["metadata"]["uid"].as_str().map(String::from));
        v
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<Logged> {
        lock(&self.state).log.clone()
    }

    /// Answer the next `n` requests with `status`.
    /// The Lease `ns/name`, if any.
    pub fn lease(&self, ns: &str, name: &str) -> Option<Value> {
        lock(&self.state)
            .leases
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// The next `n` Lease updates answer 409 Conflict, as if another writer came first
    /// (the stored Lease gets a new resourceVersion, nothing else changes).
    pub fn lease_conflicts(&self, n: usize) {
        lock(&self.state).lease_conflicts = n;
    }

    pub fn fail_next(&self, n: usize, status: u16) {
        let mut s = lock(&self.state);
        s.fail_next.extend(std::iter::repeat_n(status, n));
    }

    /// Answer every request with `status` for `d`.
    pub fn fail_for(&self, d: Duration, status: u16) {
        lock(&self.state).fail_until = Some((Instant::now() + d, status));
    }

    /// Hold every request (no answer) until `set_hang(false)`.
    pub fn set_hang(&self, hang: bool) {
        lock(&self.state).hang = hang;
    }

    /// Close every open watch; with `mid_line`, after half a watch line (a stream cut in the
    /// middle of an object).
    pub fn cut_watches(&self, mid_line: bool) {
        let mut s = lock(&self.state);
        for (_, _, tx) in s.watchers.drain(..) {
            if mid_line {
                let _ = tx.send(Bytes::from_static(
                    b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Ev",
                ));
            }
        }
    }

    /// Answer new watch requests with `status` (None: serve them again).
    pub fn set_watch_fail(&self, status: Option<u16>) {
        lock(&self.state).watch_fail = status;
    }

    /// Forget the watch history: watches from any older resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut s = lock(&self.state);
        s.compacted = s.rv;
        s.history.clear();
    }

    /// Open watch streams.
    pub fn watches(&self) -> usize {
        let mut s = lock(&self.state);
        s.watchers.retain(|(_, _, tx)| !tx.is_closed());
        s.watchers.len()
    }

    /// Create an Event (as the API would) and return it.
    pub fn create_event(&self, ns: &str, ev: Value) -> Value {
        let (code, v) = request(
            self.addr,
            "POST",
            &format!("/api/v1/namespaces/{ns}/events"),
            "application/json",
            &ev.to_string(),
        );
        assert_eq!(code, 201, "create event: {v}");
        v
    }

    /// Merge-patch an Event.
    pub fn patch_event(&self, ns: &str, name: &str, patch: Value) -> Value {
        let (code, v) = request(
            self.addr,
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/events/{name}"),
            "application/merge-patch+json",
            &patch.to_string(),
        );
        assert_eq!(code, 200, "patch event: {v}");
        v
    }

    /// Requests held by [`FakeApi::set_hang`] right now.
    pub fn held(&self) -> usize {
        lock(&self.state).held
    }

    /// Responses with this status so far.
    pub fn answered(&self, status: u16) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|r| r.status == status)
            .count()
    }

    /// Drop every connection, stay down for `down`, then serve again on the same port with
    /// the same state. Returns once the server accepts again.
    pub fn restart(&self, down: Duration) {
        *self.control.cmd.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cmd::Restart(down));
        self.control.notify.notify_one();
        std::thread::sleep(down);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.set_hang(false);
        *self.control.cmd.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cmd::Stop);
        self.control.notify.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_thread(
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    control: Arc<Control>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let cmd = rt.block_on(async {
            let mut listener = None;
            for _ in 0..200 {
                match bind(addr) {
                    Ok(l) => {
                        listener = Some(l);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                }
            }
            let listener = listener?;
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((stream, _)) = a else { continue };
                        let state = state.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req| handle(state.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    _ = control.notify.notified() => {
                        return control.cmd.lock().unwrap_or_else(|p| p.into_inner()).take();
                    }
                }
            }
        });
        // Dropping the runtime closes every connection.
        drop(rt);
        match cmd {
            Some(Cmd::Restart(down)) => std::thread::sleep(down),
            Some(Cmd::Stop) | None => return,
        }
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if lock(&state).hang {
        lock(&state).held += 1;
        while lock(&state).hang {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lock(&state).held -= 1;
    }
    let is_watch = matches!(
        query_param(&query, "watch").as_deref(),
        Some("1") | Some("true")
    );
    if method == Method::GET && is_watch {
        return Ok(watch(&state, &path, &query, &ct));
    }
    let (code, value) = {
        let mut s = lock(&state);
        let injected = if !s.fail_next.is_empty() {
            Some(s.fail_next.remove(0))
        } else {
            match s.fail_until {
                Some((until, code)) if Instant::now() < until => Some(code),
                _ => None,
            }
        };
        let (code, value) = match injected {
            Some(code) => (code, status_body(code, "InjectedFault", "injected fault")),
            None => route(&mut s, &method, &path, &query, &ct, &body),
        };
        s.log.push(Logged {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: ct,
            status: code,
            at: Instant::now(),
        });
        (code, value)
    };
    Ok(respond(code, &value))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        status_body(404, "NotFound", &format!("{what} not found")),
    )
}

fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    ct: &str,
    body: &[u8],
) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let parse = |body: &[u8]| serde_json::from_slice::<Value>(body);
    match (method, parts.as_slice()) {
        (&Method::GET, ["api", "v1", "nodes", name]) => match s.nodes.get(*name) {
            Some(n) => (200, n.clone()),
            None => not_found(&format!("nodes \"{name}\"")),
        },
        (&Method::PATCH, ["api", "v1", "nodes", name, "status"]) => {
            if !ct.starts_with("application/strategic-merge-patch+json") {
                return (
                    415,
                    status_body(
                        415,
                        "UnsupportedMediaType",
                        &format!("unsupported patch type {ct}"),
                    ),
                );
            }
            let Ok(patch) = parse(body) else {
                return (400, status_body(400, "BadRequest", "patch is not JSON"));
            };
            s.rv += 1;
            let rv = s.rv.to_string();
            let Some(node) = s.nodes.get_mut(*name) else {
                return not_found(&format!("nodes \"{name}\""));
            };
            if let Some(st) = patch.get("status") {
                strategic_merge_status(&mut node["status"], st);
            }
            node["metadata"]["resourceVersion"] = json!(rv);
            (200, node.clone())
        }
        (&Method::POST, ["api", "v1", "namespaces", ns, "events"]) => {
            if !ct.starts_with("application/json") {
                return (415, status_body(415, "UnsupportedMediaType", ct));
            }
            let Ok(mut ev) = parse(body) else {
                return (400, status_body(400, "BadRequest", "event is not JSON"));
            };
            let Some(name) = ev["metadata"]["name"].as_str().map(String::from) else {
                return (422, status_body(422, "Invalid", "metadata.name required"));
            };
            if ev["involvedObject"]["kind"].as_str().is_none() || ev["reason"].as_str().is_none() {
                return (
                    422,
                    status_body(422, "Invalid", "involvedObject and reason required"),
                );
            }
            if let Some(evns) = ev["metadata"]["namespace"].as_str() {
                if evns != *ns {
                    return (400, status_body(400, "BadRequest", "namespace mismatch"));
                }
            }
            let key = (ns.to_string(), name.clone());
            if s.events.contains_key(&key) {
                return (
                    409,
                    status_body(
                        409,
                        "AlreadyExists",
                        &format!("events \"{name}\" already exists"),
                    ),
                );
            }
            s.rv += 1;
            s.seq += 1;
            ev["metadata"]["namespace"] = json!(ns);
            ev["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            ev["metadata"]["uid"] = json!(format!("ev-{:08}", s.seq));
            ev["metadata"]["creationTimestamp"] = json!(now_rfc3339());
            ev["apiVersion"] = json!("v1");
            ev["kind"] = json!("Event");
            s.events.insert(key, ev.clone());
            s.record("ADDED", ns, &ev);
            (201, ev)
        }
        (&Method::PATCH, ["api", "v1", "namespaces", ns, "events", name]) => {
            if !(ct.starts_with("application/merge-patch+json")
                || ct.starts_with("application/strategic-merge-patch+json"))
            {
                return (415, status_body(415, "UnsupportedMediaType", ct));
            }
            let Ok(patch) = parse(body) else {
                return (400, status_body(400, "BadRequest", "patch is not JSON"));
            };
            s.rv += 1;
            let rv = s.rv.to_string();
            let Some(ev) = s.events.get_mut(&(ns.to_string(), name.to_string())) else {
                return not_found(&format!("events \"{name}\""));
            };
            json_merge(ev, &patch);
            ev["metadata"]["resourceVersion"] = json!(rv);
            let ev = ev.clone();
            s.record("MODIFIED", ns, &ev);
            (200, ev)
        }
        (&Method::DELETE, ["api", "v1", "namespaces", ns, "events", name]) => {
            let Some(mut ev) = s.events.remove(&(ns.to_string(), name.to_string())) else {
                return not_found(&format!("events \"{name}\""));
            };
            s.rv += 1;
            ev["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.record("DELETED", ns, &ev);
            (200, ev)
        }
        (&Method::GET, ["api", "v1", "namespaces", ns, "events"]) => {
            list_events(s, Some(ns), query)
        }
        (&Method::GET, ["api", "v1", "events"]) => list_events(s, None, query),
        (&Method::GET, ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            match s.leases.get(&(ns.to_string(), name.to_string())) {
                Some(l) => (200, l.clone()),
                None => not_found(&format!("leases.coordination.k8s.io \"{name}\"")),
            }
        }
        (&Method::POST, ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases"]) => {
            let Ok(mut l) = parse(body) else {
                return (400, status_body(400, "BadRequest", "lease is not JSON"));
            };
            let Some(name) = l["metadata"]["name"].as_str().map(String::from) else {
                return (422, status_body(422, "Invalid", "metadata.name required"));
            };
            let key = (ns.to_string(), name.clone());
            if s.leases.contains_key(&key) {
                return (
                    409,
                    status_body(
                        409,
                        "AlreadyExists",
                        &format!("leases.coordination.k8s.io \"{name}\" already exists"),
                    ),
                );
            }
            s.rv += 1;
            s.seq += 1;
            l["metadata"]["namespace"] = json!(ns);
            l["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            l["metadata"]["uid"] = json!(format!("lease-{:08}", s.seq));
            l["apiVersion"] = json!("coordination.k8s.io/v1");
            l["kind"] = json!("Lease");
            s.leases.insert(key, l.clone());
            (201, l)
        }
        (&Method::PUT, ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            let Ok(mut l) = parse(body) else {
                return (400, status_body(400, "BadRequest", "lease is not JSON"));
            };
            let key = (ns.to_string(), name.to_string());
            let Some(stored_rv) = s
                .leases
                .get(&key)
                .map(|c| c["metadata"]["resourceVersion"].clone())
            else {
                return not_found(&format!("leases.coordination.k8s.io \"{name}\""));
            };
            let conflict = (
                409,
                status_body(
                    409,
                    "Conflict",
                    &format!("Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
                ),
            );
            if s.lease_conflicts > 0 {
                s.lease_conflicts -= 1;
                s.rv += 1;
                let rv = s.rv.to_string();
                if let Some(c) = s.leases.get_mut(&key) {
                    c["metadata"]["resourceVersion"] = json!(rv);
                }
                return conflict;
            }
            if l["metadata"]["resourceVersion"] != stored_rv {
                return conflict;
            }
            s.rv += 1;
            l["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.leases.insert(key, l.clone());
            (200, l)
        }
        (&Method::GET, ["api", "v1", "pods"])
        | (&Method::GET, ["api", "v1", "namespaces", _, "pods"]) => {
            let ns = match parts.as_slice() {
                [_, _, "namespaces", ns, _] => Some(ns.to_string()),
                _ => None,
            };
            let node = match query_param(query, "fieldSelector") {
                Some(sel) => match sel.strip_prefix("spec.nodeName=") {
                    Some(n) if !n.contains(',') => Some(n.to_string()),
                    _ => {
                        return (
                            400,
                            status_body(
                                400,
                                "BadRequest",
                                &format!("unsupported field selector {sel}"),
                            ),
                        )
                    }
                },
                None => None,
            };
            let items: Vec<Value> = s
                .pods
                .iter()
                .filter(|p| {
                    ns.as_deref()
                        .is_none_or(|n| p["metadata"]["namespace"] == n)
                })
                .filter(|p| node.as_deref().is_none_or(|n| p["spec"]["nodeName"] == n))
                .cloned()
                .collect();
            (200, list("PodList", items, s.rv))
        }
        _ => not_found(&format!("path {path}")),
    }
}

/// List Events, in pages of `limit` with a `continue` token (`<rv>:<offset>`).
fn list_events(s: &State, ns: Option<&str>, query: &str) -> (u16, Value) {
    let items: Vec<Value> = s
        .events
        .iter()
        .filter(|((n, _), _)| ns.is_none_or(|x| x == n))
        .map(|(_, e)| e.clone())
        .collect();
    let (rv, offset) = match query_param(query, "continue").filter(|c| !c.is_empty()) {
        Some(c) => match c
            .split_once(':')
            .and_then(|(r, o)| Some((r.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
        {
            Some((r, _)) if r < s.compacted => {
                return (
                    410,
                    status_body(410, "Expired", "The provided continue parameter is too old"),
                )
            }
            Some(x) => x,
            None => return (400, status_body(400, "BadRequest", "bad continue token")),
        },
        None => (s.rv, 0),
    };
    let limit = query_param(query, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    let page: Vec<Value> = items
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut v = list("EventList", page, rv);
    if end < items.len() {
        v["metadata"]["continue"] = json!(format!("{rv}:{end}"));
    }
    (200, v)
}

/// A watch of Events: replay from `resourceVersion`, then follow; 410 for a compacted one.
fn watch(state: &Arc<Mutex<State>>, path: &str, query: &str, ct: &str) -> Response<Body> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ns = match parts.as_slice() {
        ["api", "v1", "events"] => None,
        ["api", "v1", "namespaces", ns, "events"] => Some(ns.to_string()),
        _ => {
            return respond(
                404,
                &status_body(404, "NotFound", &format!("watch of {path}")),
            )
        }
    };
    let mut s = lock(state);
    let log = |s: &mut State, status: u16| {
        s.log.push(Logged {
            method: "WATCH".into(),
            path: path.to_string(),
            query: query.to_string(),
            content_type: ct.to_string(),
            status,
            at: Instant::now(),
        })
    };
    if let Some(code) = s.watch_fail {
        log(&mut s, code);
        return respond(
            code,
            &status_body(code, "InjectedFault", "injected watch fault"),
        );
    }
    log(&mut s, 200);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let from = query_param(query, "resourceVersion")
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or(0);
    let in_ns = |n: &str| ns.as_deref().is_none_or(|x| x == n);
    if from != 0 && from < s.compacted {
        let msg = format!("too old resource version: {from} ({})", s.compacted);
        let _ = tx.send(watch_line("ERROR", &status_body(410, "Expired", &msg)));
        drop(tx);
    } else {
        if from == 0 {
            for ((n, _), e) in &s.events {
                if in_ns(n) {
                    let _ = tx.send(watch_line("ADDED", e));
                }
            }
        } else {
            for (rv, t, n, e) in &s.history {
                if *rv > from && in_ns(n) {
                    let _ = tx.send(watch_line(t, e));
                }
            }
        }
        // Bookmarks every second while the watch is open; close after timeoutSeconds.
        let bookmarks = query_param(query, "allowWatchBookmarks").as_deref() == Some("true");
        let timeout = query_param(query, "timeoutSeconds").and_then(|t| t.parse::<u64>().ok());
        let st = state.clone();
        s.watch_ids += 1;
        let id = s.watch_ids;
        tokio::spawn(async move {
            let end = timeout.map(|t| Instant::now() + Duration::from_secs(t));
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut s = lock(&st);
                let Some(i) = s.watchers.iter().position(|w| w.0 == id) else {
                    return; // cut
                };
                if s.watchers[i].2.is_closed() || end.is_some_and(|e| Instant::now() >= e) {
                    s.watchers.remove(i);
                    return;
                }
                if bookmarks {
                    let rv = s.rv.to_string();
                    let bm = json!({"kind": "Event", "apiVersion": "v1", "metadata": {"resourceVersion": rv}});
                    let _ = s.watchers[i].2.send(watch_line("BOOKMARK", &bm));
                }
            }
        });
        s.watchers.push((id, ns, tx));
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| {
            (
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(b)),
                rx,
            )
        })
    });
    let mut r = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn list(kind: &str, items: Vec<Value>, rv: u64) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": rv.to_string()},
           "items": items})
}

/// RFC 7386 JSON merge patch.
pub fn json_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge of a NodeStatus patch: `conditions` (and `addresses`) are lists merged
/// by their key (`type`), with `$patch: delete` removing an entry; maps merge; other lists
/// and scalars replace.
pub fn strategic_merge_status(status: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        return;
    };
    if !status.is_object() {
        *status = json!({});
    }
    for (k, v) in p {
        match (k.as_str(), v) {
            ("conditions" | "addresses", Value::Array(items)) => {
                let list = &mut status[k.as_str()];
                if !list.is_array() {
                    *list = json!([]);
                }
                let Value::Array(existing) = list else {
                    continue;
                };
                for item in items {
                    let Some(key) = item.get("type").cloned() else {
                        continue;
                    };
                    let pos = existing.iter().position(|e| e.get("type") == Some(&key));
                    if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                        if let Some(i) = pos {
                            existing.remove(i);
                        }
                        continue;
                    }
                    match pos {
                        Some(i) => json_merge(&mut existing[i], item),
                        None => existing.push(item.clone()),
                    }
                }
            }
            (_, Value::Null) => {
                if let Value::Object(m) = status {
                    m.remove(k);
                }
            }
            _ => json_merge(&mut status[k.as_str()], v),
        }
    }
}

/// A minimal blocking HTTP/1.1 client for tests: returns (status, body text).
pub fn request_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// An HTTP/1.x response read to its end (not chunked): (status, body text).
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, body.to_string())
}

/// [`parse_response`] with the body parsed: (status, JSON body or Null).
pub fn parse_json_response(raw: &[u8]) -> (u16, Value) {
    let (code, text) = parse_response(raw);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// [`request_text`] with the body parsed: (status, JSON body or Null).
pub fn request(addr: SocketAddr, method: &str, path: &str, ct: &str, body: &str) -> (u16, Value) {
    let (code, text) = request_text(addr, method, path, ct, body);
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMP: &str = "application/strategic-merge-patch+json";

    #[test]
    fn conditions_merge_by_type_and_keep_others() {
        let mut st = json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "InodesPressure", "status": "False", "reason": "A", "message": "m"}
        ], "capacity": {"cpu": "2"}});
        strategic_merge_status(
            &mut st,
            &json!({"conditions": [
                {"type": "InodesPressure", "status": "True", "reason": "B"},
                {"type": "NTPProblem", "status": "False"}
            ]}),
        );
        assert_eq!(
            st,
            json!({"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                {"type": "InodesPressure", "status": "True", "reason": "B", "message": "m"},
                {"type": "NTPProblem", "status": "False"}
            ], "capacity": {"cpu": "2"}})
        );
        strategic_merge_status(
            &mut st,
            &json!({"conditions": [{"type": "NTPProblem", "$patch": "delete"},
                                   {"type": "Absent", "$patch": "delete"}]}),
        );
        assert_eq!(st["conditions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_merge_patch_semantics() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        json_merge(&mut v, &json!({"a": null, "b": {"c": 5}, "l": [9]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "l": [9]}));
    }

    #[test]
    fn http_semantics_and_faults() {
        let api = FakeApi::start();
        let a = api.addr();
        api.add_node("n1", "uid-1", json!([{"type": "Ready", "status": "True"}]));
        let (code, n) = request(a, "GET", "/api/v1/nodes/n1", "", "");
        assert_eq!((code, n["metadata"]["uid"].as_str()), (200, Some("uid-1")));
        assert_eq!(request(a, "GET", "/api/v1/nodes/nope", "", "").0, 404);
        assert_eq!(request(a, "GET", "/apis/unknown", "", "").0, 404);
        let rv0 = n["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let patch = r#"{"status":{"conditions":[{"type":"X","status":"True"}]}}"#;
        assert_eq!(
            request(
                a,
                "PATCH",
                "/api/v1/nodes/n1/status",
                "application/merge-patch+json",
                patch
            )
            .0,
            415
        );
        let (code, n) = request(a, "PATCH", "/api/v1/nodes/n1/status", SMP, patch);
        assert_eq!(code, 200);
        assert_ne!(n["metadata"]["resourceVersion"].as_str().unwrap(), rv0);
        assert_eq!(api.condition("n1", "Ready").unwrap()["status"], "True");
        assert_eq!(api.condition("n1", "X").unwrap()["status"], "True");
        // Events: create, duplicate, patch, list.
        let ev = r#"{"metadata":{"name":"e1"},"involvedObject":{"kind":"Node","name":"n1"},"reason":"R","message":"100%","count":1}"#;
        assert_eq!(
            request(
                a,
                "POST",
                "/api/v1/namespaces/default/events",
                "application/json",
                ev
            )
            .0,
            201
        );
        assert_eq!(
            request(
                a,
                "POST",
                "/api/v1/namespaces/default/events",
                "application/json",
                ev
            )
            .0,
            409
        );
        let (code, e) = request(
            a,
            "PATCH",
            "/api/v1/namespaces/default/events/e1",
            "application/merge-patch+json",
            r#"{"count":4}"#,
        );
        assert_eq!((code, e["count"].as_u64()), (200, Some(4)));
        assert_eq!(
            request(
                a,
                "PATCH",
                "/api/v1/namespaces/default/events/e2",
                "application/merge-patch+json",
                "{}"
            )
            .0,
            404
        );
        let (_, l) = request(a, "GET", "/api/v1/namespaces/default/events", "", "");
        assert_eq!(l["items"][0]["message"], "100%");
        assert_eq!(api.events(None).len(), 1);
        // Pods by node.
        api.add_pod("ns", "p1", "pu1", "n1", &[("app", "containerd://abc")]);
        api.add_pod("ns", "p2", "pu2", "n2", &[]);
        let (_, l) = request(
            a,
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1",
            "",
            "",
        );
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        assert_eq!(l["items"][0]["metadata"]["name"], "p1");
        // Faults.
        api.fail_next(2, 503);
        assert_eq!(request(a, "GET", "/api/v1/nodes/n1", "", "").0, 503);
        assert_eq!(request(a, "GET", "/api/v1/nodes/n1", "", "").0, 503);
        assert_eq!(request(a, "GET", "/api/v1/nodes/n1", "", "").0, 200);
        api.fail_for(Duration::from_millis(300), 500);
        assert_eq!(request(a, "GET", "/api/v1/nodes/n1", "", "").0, 500);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(request(a, "GET", "/api/v1/nodes/n1", "", "").0, 200);
        // A restart keeps the state.
        api.restart(Duration::from_millis(200));
        assert_eq!(api.condition("n1", "X").unwrap()["status"], "True");
        assert_eq!(request(a, "GET", "/api/v1/nodes/n1", "", "").0, 200);
        // A hang holds requests until released.
        api.set_hang(true);
        let t = std::thread::spawn(move || request(a, "GET", "/api/v1/nodes/n1", "", "").0);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!t.is_finished());
        api.set_hang(false);
        assert_eq!(t.join().unwrap(), 200);
        assert!(api.requests().iter().any(|r| r.status == 415));
    }
}
