//! `nodeprobe eventer` under watch faults the real API server cannot be made to produce on
//! demand, from the fake API server (which speaks list/watch with the real semantics):
//! a watch cut in the middle of a line, a watch that fails, a 410 Gone after compaction.
//! Nothing is delivered twice and nothing the API holds is lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nodeprobe_integration::eventer::{http_get, Eventer};
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::receivers::{Received, Receiver, Vendor};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn event(name: &str, reason: &str) -> Value {
    let now = probes::timefmt::rfc3339(std::time::SystemTime::now());
    json!({"metadata": {"name": name, "namespace": "default"},
           "involvedObject": {"kind": "Node", "name": "node-1"},
           "reason": reason, "message": format!("{reason} on node-1"), "type": "Warning", "count": 1,
           "firstTimestamp": now, "lastTimestamp": now})
}

/// (name, count) of every body received, in order.
fn deliveries(got: &[Received]) -> Vec<(String, i64)> {
    got.iter()
        .map(|r| {
            let v = r.json().expect("json body");
            (
                v["name"].as_str().unwrap_or("").to_string(),
                v["count"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_cuts_and_410_neither_lose_nor_repeat_events() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let tpl = dir.path().join("body.json");
    std::fs::write(
        &tpl,
        r#"{"name": "{{ .Name }}", "count": {{ .Count }}, "reason": "{{ .Reason }}"}"#,
    )
    .unwrap();
    // Old Events: listed at the start, not delivered (kube-eventer delivers only new ones).
    let mut old = event("old", "OldReason");
    old["lastTimestamp"] = json!("2020-01-01T00:00:00Z");
    api.create_event("default", old);
    let hook = Receiver::start(Vendor::Webhook { status: 200 });
    let sink = format!(
        "webhook:{}?custom_body_file={}&workers=1",
        hook.url("/h"),
        tpl.display()
    );
    let e = Eventer::start(
        &kc,
        &[
            "--sink",
            &sink,
            "--watch-timeout",
            "30s",
            "--healthz-watch-bound",
            "1s",
        ],
        &[],
    );

    api.create_event("default", event("e1", "First"));
    hook.wait_for("e1", WAIT, |g| g.len() == 1);

    // Cut the stream in the middle of a line; e2 comes while the watch is reconnecting.
    api.cut_watches(true);
    api.create_event("default", event("e2", "Second"));
    hook.wait_for("e2 after the cut", WAIT, |g| g.len() == 2);

    // The watch breaks and cannot be restarted; meanwhile e3 is created and e1 repeats; then
    // the API compacts its history, so resuming gets 410 Gone and the eventer re-lists.
    api.set_watch_fail(Some(500));
    api.cut_watches(false);
    let failed = || {
        api.requests()
            .iter()
            .filter(|r| r.method == "WATCH" && r.status == 500)
            .count()
    };
    wait_until("a failed watch", || failed() >= 1);
    // /healthz reports the broken watch once it lasts longer than the bound.
    wait_until("/healthz 503", || {
        let (code, body) = http_get(e.addr, "/healthz");
        code == 503 && body.contains("event watch failing")
    });
    api.create_event("default", event("e3", "Third"));
    api.patch_event("default", "e1", json!({"count": 2}));
    api.compact();
    api.set_watch_fail(None);
    let got = hook.wait_for("e3 and e1's repeat after the re-list", WAIT, |g| {
        g.len() >= 4
    });
    e.wait_metric("nodeprobe_eventer_relists_total", 2.0, WAIT);
    assert!(api
        .requests()
        .iter()
        .any(|r| r.method == "WATCH" && r.query.contains("resourceVersion=")));
    // One more after the re-list, as a sentinel: everything before it has been judged.
    api.create_event("default", event("e4", "Fourth"));
    let got_all = hook.wait_for("e4", WAIT, |g| g.iter().any(|r| r.body.contains("\"e4\"")));
    let d = deliveries(&got_all);
    let mut counts: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for x in &d {
        *counts.entry(x.clone()).or_default() += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "delivered twice: {d:?}");
    let want: Vec<(String, i64)> = [("e1", 1), ("e1", 2), ("e2", 1), ("e3", 1), ("e4", 1)]
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        want,
        "in order received: {d:?}"
    );
    assert!(got.len() >= 4);
    assert!(e.metric("nodeprobe_eventer_watch_errors_total") >= 1.0);
    // Healthy again once the watch delivers.
    wait_until("/healthz 200", || http_get(e.addr, "/healthz").0 == 200);
}

#[test]
fn startup_waits_for_the_first_list_and_sigterm_stops_cleanly() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    for i in 0..1200 {
        let mut ev = event(&format!("bulk-{i}"), "Bulk");
        ev["lastTimestamp"] = json!("2020-01-01T00:00:00Z");
        api.create_event("default", ev);
    }
    let mut e = Eventer::start(&kc, &["--sink", "log:"], &[]);
    // The list came in pages (limit/continue) and delivered nothing old.
    assert!(
        api.requests()
            .iter()
            .filter(|r| r.path == "/api/v1/events" && r.query.contains("limit="))
            .count()
            >= 3
    );
    api.create_event("default", event("fresh", "Fresh"));
    e.wait_metric(
        r#"nodeprobe_eventer_sink_delivered_total{sink="log"}"#,
        1.0,
        WAIT,
    );
    assert_eq!(
        e.metric(r#"nodeprobe_eventer_events_skipped_total{cause="before_start"}"#),
        1200.0
    );
    assert_eq!(e.stop(), Some(0));
    let out = e.stdout();
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["metadata"]["name"], "fresh");
}

#[test]
fn bad_sinks_and_templates_are_startup_errors_naming_the_sink() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let kc = kc.to_str().unwrap();
    let bad_tpl = dir.path().join("bad.tpl");
    std::fs::write(&bad_tpl, "{\"m\": \"{{ .Message \"}").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--sink".into(), "kafka:?brokers=k:9092".into()], "sink kafka: unknown sink type"),
        (vec!["--sink".into(), "dingtalk:https://oapi.dingtalk.com/robot/send?label=c1".into()], "sink dingtalk: access_token is required"),
        (vec!["--sink".into(), "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=$NODEPROBE_IT_NO_SUCH_TOKEN".into()], "sink dingtalk: environment variable $NODEPROBE_IT_NO_SUCH_TOKEN is not set"),
        (vec!["--sink".into(), "webhook:not-a-url".into()], "sink webhook: URI"),
        (vec!["--sink".into(), format!("webhook:http://127.0.0.1:1/?custom_body_file={}", bad_tpl.display())], "sink webhook: body template: template line 1"),
        (vec!["--sink".into(), "webhook:http://127.0.0.1:1/?level=Critical".into()], "sink webhook: level=\"Critical\""),
        (vec!["--sink".into(), "feishu:http://127.0.0.1:1/?custom_body_configmap=absent&custom_body_configmap_namespace=kube-system".into()], "sink feishu: ConfigMap kube-system/absent"),
        (vec!["--source".into(), "kafka:x".into(), "--sink".into(), "log:".into()], "source: unknown source"),
    ];
    for (args, want) in cases {
        let mut all: Vec<&str> = vec!["eventer", "--kubeconfig", kc, "--healthz-port", "0"];
        all.extend(args.iter().map(String::as_str));
        let r = nodeprobe_integration::nodeprobe(&all);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{args:?}: want {want:?} in {}",
            r.stderr
        );
    }
    // Secrets stay out of messages.
    let r = nodeprobe_integration::nodeprobe(&[
        "eventer",
        "--kubeconfig",
        kc,
        "--sink",
        "webhook:nohost?access_token=SECRET123",
    ]);
    assert_eq!(r.code, 64);
    assert!(!r.stderr.contains("SECRET123"), "{}", r.stderr);
}

#[test]
fn env_twins_carry_the_deployment_settings() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let hook = Receiver::start(Vendor::Webhook { status: 201 });
    let sinks = format!(
        "log:?level=Warning\nwebhook:{}?token=$NODEPROBE_IT_TOKEN",
        hook.url("/env")
    );
    let e = Eventer::start(
        &kc,
        &[],
        &[
            ("NODEPROBE_EVENTER_SINK", &sinks),
            ("NODEPROBE_EVENTER_SINK_TIMEOUT", "2s"),
            ("NODEPROBE_IT_TOKEN", "abc="),
        ],
    );
    api.create_event("default", event("env", "Env"));
    let got = hook.wait_for("the webhook body", WAIT, |g| !g.is_empty());
    assert_eq!(got[0].query, "token=abc=");
    e.wait_metric(
        r#"nodeprobe_eventer_sink_delivered_total{sink="log"}"#,
        1.0,
        WAIT,
    );
    e.wait_metric(
        r#"nodeprobe_eventer_sink_delivered_total{sink="webhook"}"#,
        1.0,
        WAIT,
    );
}

/// Leader election against the fake API server's Leases: conflicting updates (409, someone
/// else wrote) while the Lease is still ours keep the leader; renewals failing for longer
/// than the renew deadline stop it (exit 1) before its term could be taken over.
#[test]
fn lease_conflicts_keep_the_leader_and_failed_renewals_stop_it() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let mut e = Eventer::start(
        &kc,
        &[
            "--sink",
            "log:",
            "--leader-elect",
            "--lease-name",
            "np-eventer",
            "--lease-namespace",
            "default",
            "--lease-duration",
            "6s",
            "--lease-renew-deadline",
            "4s",
            "--lease-retry",
            "1s",
        ],
        &[],
    );
    wait_until("leading", || e.metric("nodeprobe_eventer_leader") == 1.0);
    let holder = |api: &FakeApi| {
        api.lease("default", "np-eventer").map(|l| {
            (
                l["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                l["metadata"]["annotations"]["nodeprobe.io/eventer-progress"].is_string(),
            )
        })
    };
    let (me, _) = holder(&api).expect("the Lease");
    assert!(!me.is_empty());
    wait_until("a progress record", || holder(&api).is_some_and(|h| h.1));
    // Three conflicting updates: re-read, still ours, renewed again.
    api.lease_conflicts(3);
    let renewed_before = api
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.status == 200)
        .count();
    wait_until("renewed after the conflicts", || {
        api.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.status == 200)
            .count()
            > renewed_before
    });
    assert!(
        api.requests()
            .iter()
            .any(|r| r.method == "PUT" && r.status == 409),
        "no conflict was served"
    );
    assert_eq!(e.wait_exit(Duration::from_secs(2)), None, "{}", e.logs());
    assert_eq!(holder(&api).map(|h| h.0), Some(me));
    // Every renewal fails for longer than the renew deadline: the leader stops.
    let t0 = Instant::now();
    api.fail_for(Duration::from_secs(10), 503);
    let code = e.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    assert_eq!(code, Some(1), "{}", e.logs());
    assert!(
        took < Duration::from_secs(6),
        "stopped after {took:?}, past the lease: {}",
        e.logs()
    );
    assert!(e.logs().contains("not renewed for 4s"), "{}", e.logs());
}
