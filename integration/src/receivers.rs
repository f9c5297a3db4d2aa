//! Chat-robot and webhook receivers on 127.0.0.1 for the eventer's tests. Each checks what
//! the vendor checks, on its own, from the vendor's documentation (not with nodeprobe's
//! code): DingTalk's `access_token` and `timestamp`/`sign` query signature
//! (Base64(HMAC-SHA256(secret, "ms\nsecret")), within an hour), Feishu's body signature
//! (Base64(HMAC-SHA256(key = "s\nsecret", message = ""))), JSON bodies; they answer the
//! vendors' response shapes and error codes (DingTalk `errcode` 130101 over 20 messages a
//! minute, 310000 bad sign, 300001 bad token; Feishu `code` 11232 frequency limited,
//! 19021 sign mismatch, HTTP 400 code 9499 for a body that is not JSON), can hang, and
//! record every request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// Which vendor a receiver plays.
#[derive(Debug, Clone)]
pub enum Vendor {
    /// Any request is recorded and answered `status` with an empty JSON object.
    Webhook {
        status: u16,
    },
    DingTalk {
        token: String,
        secret: Option<String>,
    },
    Feishu {
        secret: Option<String>,
    },
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub wall: SystemTime,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
    /// The vendor code answered (DingTalk errcode / Feishu code / HTTP status for webhooks).
    pub code: i64,
}

impl Received {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Debug)]
struct State {
    vendor: Vendor,
    got: Vec<Received>,
    hang: bool,
    /// Messages accepted in the current quota window.
    sent: VecDeque<Instant>,
    quota: (usize, Duration),
    fail_next: Vec<u16>,
    in_flight: usize,
}

/// A receiver; stops on drop.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// HMAC-SHA256, Base64 (standard alphabet, padded), as both vendors document it.
pub fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    use base64::Engine;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, msg).as_ref())
}

impl Receiver {
    /// Start with the vendor's default quota (DingTalk 20/min, Feishu 100/min, webhooks none).
    pub fn start(vendor: Vendor) -> Receiver {
        let quota = match vendor {
            Vendor::DingTalk { .. } => (20, Duration::from_secs(60)),
            Vendor::Feishu { .. } => (100, Duration::from_secs(60)),
            Vendor::Webhook { .. } => (usize::MAX, Duration::from_secs(60)),
        };
        let state = Arc::new(Mutex::new(State {
            vendor,
            got: Vec::new(),
            hang: false,
            sent: VecDeque::new(),
            quota,
            fail_next: Vec::new(),
            in_flight: 0,
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    tokio::select! {
                        a = listener.accept() => {
                            let Ok((stream, _)) = a else { continue };
                            let st = st.clone();
                            tokio::spawn(async move {
                                let svc = service_fn(move |req| handle(st.clone(), req));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                        _ = &mut stop_rx => return,
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Receiver {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The vendor's message quota (default: the vendor's documented one).
    pub fn set_quota(&self, n: usize, window: Duration) {
        lock(&self.state).quota = (n, window);
    }

    /// Hold every request unanswered until `set_hang(false)`.
    pub fn set_hang(&self, hang: bool) {
        lock(&self.state).hang = hang;
    }

    /// Answer the next `n` requests with HTTP `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        lock(&self.state)
            .fail_next
            .extend(std::iter::repeat_n(status, n));
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).got.clone()
    }

    /// Requests waiting for an answer now (hung).
    pub fn in_flight(&self) -> usize {
        lock(&self.state).in_flight
    }

    /// Wait until `pred` holds for the requests received (panics after `limit`).
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if Instant::now() > deadline {
                let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
                panic!("receiver: {what} did not happen within {limit:?}; got {} request(s): {bodies:#?}", got.len());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.set_hang(false);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn query_param(q: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Take a quota slot; false when the window is full.
fn take_slot(s: &mut State, now: Instant) -> bool {
    let (n, w) = s.quota;
    while s.sent.front().is_some_and(|t| now.duration_since(*t) >= w) {
        s.sent.pop_front();
    }
    if s.sent.len() >= n {
        return false;
    }
    s.sent.push_back(now);
    true
}

/// DingTalk's checks, in the order its robot API applies them: token, signature,
/// body, rate.
fn dingtalk(
    s: &mut State,
    token: &str,
    secret: Option<&str>,
    query: &str,
    body: &str,
) -> (u16, i64, Value) {
    let err = |code: i64, msg: &str| (200, code, json!({"errcode": code, "errmsg": msg}));
    if query_param(query, "access_token").as_deref() != Some(token) {
        return err(300001, "token is not exist");
    }
    if let Some(secret) = secret {
        let (Some(ts), Some(sign)) = (query_param(query, "timestamp"), query_param(query, "sign"))
        else {
            return err(
                310000,
                "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            );
        };
        let Ok(t) = ts.parse::<i64>() else {
            return err(310000, "invalid timestamp");
        };
        if (now_ms() - t).abs() > 3_600_000 {
            return err(310000, "invalid timestamp");
        }
        let want = hmac_b64(secret.as_bytes(), format!("{ts}\n{secret}").as_bytes());
        if sign != want {
            return err(
                310000,
                "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            );
        }
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return err(40035, "缺少参数 json");
    };
    if v["msgtype"].as_str().is_none() {
        return err(40035, "缺少参数 msgtype");
    }
    if !take_slot(s, Instant::now()) {
        return err(130101, "send too fast, exceed 20 times per minute");
    }
    (200, 0, json!({"errcode": 0, "errmsg": "ok"}))
}

fn feishu(s: &mut State, secret: Option<&str>, body: &str) -> (u16, i64, Value) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return (
            400,
            9499,
            json!({"code": 9499, "msg": "Bad Request", "data": {}}),
        );
    };
    if let Some(secret) = secret {
        let ts = v["timestamp"].as_str().unwrap_or("");
        let sign = v["sign"].as_str().unwrap_or("");
        let fresh = ts
            .parse::<i64>()
            .is_ok_and(|t| (now_ms() / 1000 - t).abs() <= 3600);
        let want = hmac_b64(format!("{ts}\n{secret}").as_bytes(), b"");
        if !fresh || sign != want {
            let msg = "sign match fail or timestamp is not within one hour from current time";
            return (200, 19021, json!({"code": 19021, "msg": msg, "data": {}}));
        }
    }
    if v["msg_type"].as_str().is_none() {
        return (
            200,
            19002,
            json!({"code": 19002, "msg": "params error, msg_type need", "data": {}}),
        );
    }
    if !take_slot(s, Instant::now()) {
        let msg = "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]";
        return (200, 11232, json!({"code": 11232, "msg": msg, "data": {}}));
    }
    (200, 0, json!({"code": 0, "msg": "success", "data": {}}))
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let at = Instant::now();
    let wall = SystemTime::now();
    if lock(&state).hang {
        lock(&state).in_flight += 1;
        while lock(&state).hang {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lock(&state).in_flight -= 1;
    }
    let mut s = lock(&state);
    let (status, code, value) = if !s.fail_next.is_empty() {
        let st = s.fail_next.remove(0);
        (st, i64::from(st), json!({"error": "injected"}))
    } else {
        match s.vendor.clone() {
            Vendor::Webhook { status } => (status, i64::from(status), json!({})),
            Vendor::DingTalk { token, secret } => {
                dingtalk(&mut s, &token, secret.as_deref(), &query, &body)
            }
            Vendor::Feishu { secret } => feishu(&mut s, secret.as_deref(), &body),
        }
    };
    s.got.push(Received {
        at,
        wall,
        method,
        path,
        query,
        content_type: ct,
        body,
        code,
    });
    Ok(answer(status, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_vendor_docs() {
        // Feishu's documented Python: hmac.new(f"{ts}\n{secret}".encode(), b"", sha256)
        assert_eq!(hmac_b64(b"1599360473\nsecret", b"").len(), 44);
        let r = Receiver::start(Vendor::DingTalk {
            token: "t".into(),
            secret: Some("S".into()),
        });
        let mut s = lock(&r.state);
        let ts = now_ms().to_string();
        let sign: String = form_urlencoded::byte_serialize(
            hmac_b64(b"S", format!("{ts}\nS").as_bytes()).as_bytes(),
        )
        .collect();
        let q = format!("access_token=t&timestamp={ts}&sign={sign}");
        assert_eq!(
            dingtalk(&mut s, "t", Some("S"), &q, r#"{"msgtype":"text"}"#).1,
            0
        );
        assert_eq!(
            dingtalk(
                &mut s,
                "t",
                Some("S"),
                "access_token=t&timestamp=1&sign=x",
                "{}"
            )
            .1,
            310000
        );
        assert_eq!(
            dingtalk(&mut s, "t", None, "access_token=u", "{}").1,
            300001
        );
        s.quota = (1, Duration::from_secs(60));
        assert_eq!(
            dingtalk(&mut s, "t", None, "access_token=t", r#"{"msgtype":"text"}"#).1,
            130101
        );
        assert_eq!(feishu(&mut s, None, "{not json").1, 9499);
    }
}
