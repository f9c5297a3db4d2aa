//! `nodeprobe eventer` end to end against the real kube-apiserver (`NODEPROBE_IT_KUBECONFIG`,
//! required in CI) and local DingTalk/Feishu/webhook receivers that check signatures and
//! answer like the vendors.

use std::time::Duration;

use nodeprobe_integration::eventer::{real_kube, Ev, Eventer, Kube, TestNamespace};
use nodeprobe_integration::receivers::{Receiver, Vendor};
use nodeprobe_integration::require;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The users' `custom-body` ConfigMap template (verbatim copy of the seed).
fn users_template() -> String {
    let y: serde_yaml::Value =
        serde_yaml::from_str(include_str!("fixtures/eventer/custom-body-configmap.yaml"))
            .expect("yaml");
    y["data"]["content"].as_str().expect("content").to_string()
}

const OOM_MESSAGE: &str = "Task in /kubepods/burstable/pod6f1a2b3c-0d4e/c7f0e1d2 killed as a result of limit of /kubepods/burstable/pod6f1a2b3c-0d4e\n\
memory: usage 262144kB, limit 262144kB, failcnt 2291\n\
Memory cgroup out of memory: Killed process 4163 (stress) total-vm:272972kB, anon-rss:261636kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:560kB oom_score_adj:999";

/// An Event on Pod `obj` in namespace `ns` (each test owns its namespace; Node Events must
/// live in `default`, which the tests share).
fn ev<'a>(
    ns: &'a str,
    name: &'a str,
    obj: &'a str,
    type_: &'a str,
    reason: &'a str,
    message: &'a str,
) -> Ev<'a> {
    Ev {
        ns,
        name,
        kind: "Pod",
        obj,
        obj_ns: Some(ns),
        type_,
        reason,
        message,
    }
}

fn card_content(body: &Value) -> String {
    body["card"]["elements"][0]["text"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn users_feishu_template_renders_every_message_as_valid_json() {
    let Some(k) = real_kube() else { return };
    require(
        std::path::Path::new("/usr/share/zoneinfo/Asia/Shanghai").exists(),
        "tzdata (/usr/share/zoneinfo)",
    );
    let ns = TestNamespace::new(&k, "evtpl");
    let tpl = users_template();
    k.put_configmap(
        &ns.name,
        "custom-body",
        serde_json::json!({ "content": tpl }),
    );
    let hook = Receiver::start(Vendor::Webhook { status: 200 });
    let feishu = Receiver::start(Vendor::Feishu {
        secret: Some("feishu-S3cret".into()),
    });
    let webhook_sink = format!(
        "webhook:{}?level=Warning&method=POST&header=Content-Type=application/json&custom_body_configmap=custom-body&custom_body_configmap_namespace={}&namespaces={}",
        hook.url("/open-apis/bot/v2/hook/x"),
        ns.name,
        ns.name
    );
    let feishu_sink = format!(
        "feishu:{}?secret=$FEISHU_SECRET&custom_body_configmap=custom-body&custom_body_configmap_namespace={}&namespaces={}",
        feishu.url("/open-apis/bot/v2/hook/y"),
        ns.name,
        ns.name
    );
    let e = Eventer::start(
        &k.kubeconfig,
        &["--sink", &webhook_sink, "--sink", &feishu_sink],
        &[("TZ", "Asia/Shanghai"), ("FEISHU_SECRET", "feishu-S3cret")],
    );
    let messages = [
        "Memory cgroup out of memory: Killed process 1234 (java) total-vm:123kB, anon-rss:45kB",
        "container \"app\" was OOM killed, \"quoted\" twice",
        "path C:\\temp\\new and a literal \\n",
        "tab\tseparated\tfields",
        "disk 100% full, printf %s %d %v",
        "内存不足，进程被杀死 (节点 node-1)",
        OOM_MESSAGE,
        "trailing newline\n",
    ];
    let node = format!("{}-node", ns.name);
    for (i, m) in messages.iter().enumerate() {
        let name = format!("ev-{i}");
        let mut v = Kube::event_json(&ev(&ns.name, &name, &node, "Warning", "PodOOMKilling", m));
        v["lastTimestamp"] = "2026-11-30T08:00:05Z".into();
        v["metadata"]["uid"] = Value::Null;
        let created: k8s_openapi::api::core::v1::Event = serde_json::from_value(v).unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::Event> =
            kube::Api::namespaced(k.client.clone(), &ns.name);
        k.block(api.create(&Default::default(), &created))
            .expect("create");
    }
    let got = hook.wait_for("all webhook bodies", WAIT, |g| g.len() >= messages.len());
    let signed = feishu.wait_for("all feishu bodies", WAIT, |g| g.len() >= messages.len());
    assert_eq!(got.len(), messages.len(), "each event once");
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(k.client.clone(), &ns.name);
    for (i, m) in messages.iter().enumerate() {
        let uid = k
            .block(api.get(&format!("ev-{i}")))
            .unwrap()
            .metadata
            .uid
            .unwrap();
        let body = got
            .iter()
            .find(|r| r.body.contains(&uid))
            .unwrap_or_else(|| panic!("no body for {m:?}"));
        let v = body
            .json()
            .unwrap_or_else(|| panic!("not JSON: {}", body.body));
        assert_eq!(body.content_type, "application/json");
        let content = card_content(&v);
        assert!(
            content.ends_with(&format!("**EventMessage:**  {m}")),
            "{content:?}"
        );
        // Exactly kube-eventer's rendering where it can render (no quote, backslash or
        // control character in the message).
        if !m.contains(['"', '\\', '\n', '\t']) {
            let expect = tpl
                .replace("{{.ObjectMeta.UID }}", &uid)
                .replace("{{ .Type }}", "Warning")
                .replace("{{ .InvolvedObject.Kind }}", "Pod")
                .replace("{{ .InvolvedObject.Name }}", &node)
                .replace("{{.InvolvedObject.Namespace}}", &ns.name)
                .replace("{{ .Reason }}", "PodOOMKilling")
                .replace("{{ .LastTimestamp }}", "2026-11-30 16:00:05 +0800 CST")
                .replace("{{ .Message }}", m);
            assert_eq!(body.body, expect);
        }
        // The Feishu sink: same template, signed (the receiver checked the signature).
        let f = signed
            .iter()
            .find(|r| r.body.contains(&uid))
            .expect("feishu body");
        assert_eq!(f.code, 0, "feishu answered {}", f.body);
        assert_eq!(card_content(&f.json().unwrap()), content);
    }
    // The ConfigMap changes: the next body uses the new template.
    e.wait_metric(
        r#"nodeprobe_eventer_template_reloads_total{sink="webhook",result="ok"}"#,
        1.0,
        WAIT,
    );
    k.put_configmap(
        &ns.name,
        "custom-body",
        serde_json::json!({ "content": tpl.replace("\"test\"", "\"reloaded\"") }),
    );
    e.wait_metric(
        r#"nodeprobe_eventer_template_reloads_total{sink="webhook",result="ok"}"#,
        2.0,
        WAIT,
    );
    k.create_event(&ev(
        &ns.name,
        "ev-after",
        &node,
        "Warning",
        "PodOOMKilling",
        "after reload",
    ));
    let got = hook.wait_for("a body after the reload", WAIT, |g| {
        g.iter().any(|r| r.body.contains("after reload"))
    });
    let last = got
        .iter()
        .find(|r| r.body.contains("after reload"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(last["card"]["header"]["title"]["content"], "reloaded");
}

#[test]
fn filters_every_reason_value_node_namespaces_and_level() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evfilter");
    let other = TestNamespace::new(&k, "evfilter-other");
    let hook = Receiver::start(Vendor::Webhook { status: 204 });
    let sink = format!(
        "webhook:{}?level=Warning&reason=OOM&reason=^NodeNot,Sentinel&namespaces={},default&kinds=Node,Pod&workers=1",
        hook.url("/hook"),
        ns.name
    );
    let _e = Eventer::start(&k.kubeconfig, &["--sink", &sink], &[]);
    // Node Events live in `default` (no object namespace): `namespaces=default` matches them.
    let node = format!("{}-node", ns.name);
    let n = ns.name.as_str();
    let node_ev = |name: &'static str, type_: &'static str, reason: &'static str| Ev {
        kind: "Node",
        obj_ns: None,
        ..ev("default", name, &node, type_, reason, "node event")
    };
    let uniq = |x: &str| format!("{n}-{x}");
    let (a, b, d, e2, z) = (uniq("a"), uniq("b"), uniq("d"), uniq("e"), uniq("z"));
    // pass: first reason value (unanchored), second value, a Pod in the namespace
    k.create_event(&Ev {
        name: &a,
        ..node_ev("", "Warning", "PodOOMKilling")
    });
    k.create_event(&Ev {
        name: &b,
        ..node_ev("", "Warning", "NodeNotReady")
    });
    k.create_event(&ev(n, "c", "p1", "Warning", "SystemOOM", "pod oom"));
    // fail: reason, level, another namespace, a kind
    k.create_event(&Ev {
        name: &d,
        ..node_ev("", "Warning", "BackOff")
    });
    k.create_event(&Ev {
        name: &e2,
        ..node_ev("", "Normal", "OOMKilling")
    });
    k.create_event(&ev(
        &other.name,
        "f",
        "p2",
        "Warning",
        "OOMKilling",
        "other ns",
    ));
    k.create_event(&Ev {
        kind: "Service",
        ..ev(n, "g", "s", "Warning", "OOMKilling", "kind")
    });
    // the sentinel: created last, passes; the filters run in watch order before it
    k.create_event(&Ev {
        name: &z,
        ..node_ev("", "Warning", "Sentinel")
    });
    let got = hook.wait_for("the sentinel", WAIT, |g| {
        g.iter().any(|r| r.body.contains("Sentinel"))
    });
    let mut reasons: Vec<String> = got
        .iter()
        .map(|r| {
            r.json().expect("json")["EventReason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["NodeNotReady", "PodOOMKilling", "Sentinel", "SystemOOM"]
    );
    assert!(got.iter().all(|r| r.method == "POST"));
}

#[test]
fn count_updates_fold_into_one_follow_up_and_recoveries_pass() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evdedup");
    let ding = Receiver::start(Vendor::DingTalk {
        token: "tok".into(),
        secret: Some("SEC".into()),
    });
    let sink = format!(
        "dingtalk:{}?access_token=tok&sign=SEC&label=cluster-it&level=Normal&namespaces={}",
        ding.url("/robot/send"),
        ns.name
    );
    let e = Eventer::start(
        &k.kubeconfig,
        &["--sink", &sink, "--dedup-window", "10s"],
        &[],
    );
    let node = format!("{}-node", ns.name);
    let n = ns.name.as_str();
    k.create_event(&ev(
        n,
        "p",
        &node,
        "Warning",
        "NodeHasInodesPressure",
        "inodes 97% used",
    ));
    ding.wait_for("the first alert", WAIT, |g| g.len() == 1);
    for c in 2..=6 {
        k.bump_event(n, "p", c);
    }
    let got = ding.wait_for("the follow-up", WAIT, |g| g.len() >= 2);
    assert_eq!(
        got.len(),
        2,
        "one alert and one follow-up for 6 occurrences"
    );
    let text: Vec<String> = got
        .iter()
        .map(|r| {
            r.json().unwrap()["text"]["content"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(
        text[0].starts_with("cluster-it\nLevel:Warning \nKind:Pod \nNamespace:"),
        "{}",
        text[0]
    );
    assert!(text[1].contains("(×5 in "), "{}", text[1]);
    assert!(
        got.iter().all(|r| r.code == 0),
        "DingTalk accepted every signed message"
    );
    // The problem again and at once its recovery: neither is suppressed.
    k.create_event(&ev(
        n,
        "p2",
        &node,
        "Warning",
        "NodeHasInodesPressure",
        "inodes 97% used",
    ));
    k.create_event(&ev(
        n,
        "r",
        &node,
        "Normal",
        "NodeHasNoInodesPressure",
        "inodes 40% used",
    ));
    let got = ding.wait_for("the recovery", WAIT, |g| {
        g.iter().any(|r| r.body.contains("NodeHasNoInodesPressure"))
    });
    assert!(got.len() >= 3);
    assert!(e.metric(r#"nodeprobe_eventer_sink_folded_total{sink="dingtalk"}"#) >= 5.0);
}

#[test]
fn dingtalk_quota_folds_the_overflow_into_one_summary() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evquota");
    let ding = Receiver::start(Vendor::DingTalk {
        token: "tok".into(),
        secret: None,
    });
    // DingTalk's 20/min scaled down to keep the test short: 5 per 6 s on both sides.
    ding.set_quota(5, Duration::from_secs(6));
    let sink = format!(
        "dingtalk:{}?access_token=tok&quota=5/6s&namespaces={}",
        ding.url("/robot/send"),
        ns.name
    );
    let e = Eventer::start(&k.kubeconfig, &["--sink", &sink], &[]);
    let node = format!("{}-node", ns.name);
    for i in 0..12 {
        let reason = if i % 2 == 0 { "OOMKilling" } else { "TaskHung" };
        k.create_event(&ev(
            &ns.name,
            &format!("q{i}"),
            &node,
            "Warning",
            reason,
            &format!("distinct message {i}"),
        ));
    }
    ding.wait_for("5 alerts and a summary", WAIT, |g| g.len() >= 6);
    std::thread::sleep(Duration::from_millis(500));
    let got = ding.received().into_iter().collect::<Vec<_>>();
    assert!(
        got.iter().all(|r| r.code == 0),
        "never over DingTalk's quota: {:?}",
        got.iter().map(|r| r.code).collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 6, "5 alerts + 1 summary");
    let summary = got[5].json().unwrap()["text"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(summary.contains("7 more events"), "{summary}");
    assert!(
        summary.contains(&format!("OOMKilling on Pod/{}/{node}: ×", ns.name)),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("TaskHung on Pod/{}/{node}: ×", ns.name)),
        "{summary}"
    );
    assert_eq!(
        e.metric(r#"nodeprobe_eventer_sink_delivered_total{sink="dingtalk"}"#),
        6.0
    );

    // A robot stricter than we think (3 per window): its 130101 is retried after the window,
    // nothing is lost.
    let strict = Receiver::start(Vendor::DingTalk {
        token: "tok".into(),
        secret: None,
    });
    strict.set_quota(3, Duration::from_secs(3));
    let sink = format!(
        "dingtalk:{}?access_token=tok&quota=5/3s&namespaces={}",
        strict.url("/robot/send"),
        ns.name
    );
    let e2 = Eventer::start(&k.kubeconfig, &["--sink", &sink, "--retry-max", "3"], &[]);
    for i in 0..5 {
        k.create_event(&ev(
            &ns.name,
            &format!("s{i}"),
            &node,
            "Warning",
            "Strict",
            &format!("strict {i}"),
        ));
    }
    let ok =
        |g: &[nodeprobe_integration::receivers::Received]| g.iter().filter(|r| r.code == 0).count();
    strict.wait_for("5 accepted messages", Duration::from_secs(60), |g| {
        ok(g) >= 5
    });
    assert!(strict.received().iter().any(|r| r.code == 130101));
    assert!(e2.metric(r#"nodeprobe_eventer_sink_retried_total{sink="dingtalk"}"#) >= 1.0);
    assert_eq!(
        e2.metric(r#"nodeprobe_eventer_sink_dropped_total{sink="dingtalk",cause="rate_limited"}"#),
        0.0
    );
}

#[test]
fn a_hung_receiver_delays_no_other_sink_and_its_drops_are_counted() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evhung");
    let hung = Receiver::start(Vendor::Webhook { status: 200 });
    hung.set_hang(true);
    let ok = Receiver::start(Vendor::Webhook { status: 200 });
    let ding = Receiver::start(Vendor::DingTalk {
        token: "t".into(),
        secret: None,
    });
    let f = format!("namespaces={}", ns.name);
    let e = Eventer::start(
        &k.kubeconfig,
        &[
            "--sink",
            &format!("webhook:{}?{f}", hung.url("/hung")),
            "--sink",
            &format!("webhook:{}?{f}", ok.url("/ok")),
            "--sink",
            &format!("dingtalk:{}?access_token=t&{f}", ding.url("/robot/send")),
            "--sink-timeout",
            "1s",
            "--retry-max",
            "2",
            "--retry-backoff",
            "100ms",
            "--healthz-sink-bound",
            "1s",
        ],
        &[],
    );
    let node = format!("{}-node", ns.name);
    for i in 0..3 {
        k.create_event(&ev(
            &ns.name,
            &format!("h{i}"),
            &format!("{node}-{i}"),
            "Warning",
            "Hung",
            &format!("m{i}"),
        ));
    }
    ok.wait_for("3 bodies at the healthy webhook", WAIT, |g| g.len() == 3);
    ding.wait_for("3 DingTalk messages", WAIT, |g| g.len() == 3);
    // Meanwhile the hung one holds requests and has answered none.
    assert!(
        hung.in_flight() >= 1,
        "requests are waiting at the hung receiver"
    );
    // Each message: 3 attempts of 1 s, then dropped and counted.
    e.wait_metric(
        r#"nodeprobe_eventer_sink_dropped_total{sink="webhook",cause="timeout"}"#,
        3.0,
        WAIT,
    );
    assert!(e.metric(r#"nodeprobe_eventer_sink_retried_total{sink="webhook"}"#) >= 6.0);
    assert!(
        e.metric(r#"nodeprobe_eventer_sink_failed_total{sink="webhook",cause="timeout"}"#) >= 9.0
    );
    assert_eq!(
        e.metric(r#"nodeprobe_eventer_sink_delivered_total{sink="webhook-2"}"#),
        3.0
    );
    assert!(
        e.logs().contains("sink webhook: dropping event h"),
        "{}",
        e.logs()
    );
}
