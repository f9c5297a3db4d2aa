//! deploy/eventer on the real kube-apiserver (RBAC enforced): its ServiceAccount, roles and
//! bindings exactly as kustomize renders them; the eventer authenticated as that
//! ServiceAccount (a TokenRequest token) elects itself, delivers and stores its progress
//! record — and may do nothing more.

use std::time::{Duration, Instant};

use nodeprobe_integration::eventer::{Ev, Eventer, Kube};
use nodeprobe_integration::kube::{deploy_dir, Cluster};
use serde_json::{json, Value};

const SA: &str = "system:serviceaccount:kube-system:nodeprobe-eventer";

fn can(c: &Cluster, args: &[&str]) -> bool {
    let mut a = vec!["auth", "can-i", "--as", SA];
    a.extend_from_slice(args);
    let o = c.kubectl_in(&a, "");
    String::from_utf8_lossy(&o.stdout).trim() == "yes"
}

#[test]
fn deploy_eventer_rbac_lets_the_eventer_do_its_job_and_nothing_more() {
    let Some(c) = Cluster::from_env() else { return };
    let objs: Vec<Value> = c
        .kustomize(&deploy_dir().join("eventer"))
        .into_iter()
        .filter(|o| o["kind"] != "Deployment")
        .collect();
    assert_eq!(objs.len(), 5, "{objs:#?}");
    c.apply(&json!({"apiVersion": "v1", "kind": "List", "items": objs}).to_string());
    // the job
    for args in [
        ["list", "events", "--all-namespaces"].as_slice(),
        &["watch", "events", "--all-namespaces"],
        &["create", "leases", "-n", "kube-system"],
        &["get", "leases/nodeprobe-eventer", "-n", "kube-system"],
        &["update", "leases/nodeprobe-eventer", "-n", "kube-system"],
    ] {
        assert!(can(&c, args), "cannot {args:?}");
    }
    // nothing more
    for args in [
        ["create", "events", "-n", "default"].as_slice(),
        &["delete", "events", "-n", "default"],
        &["get", "secrets", "-n", "kube-system"],
        &["list", "configmaps", "-n", "kube-system"],
        &["get", "configmaps/custom-body", "-n", "kube-system"],
        &["update", "leases/kube-scheduler", "-n", "kube-system"],
        &["delete", "leases/nodeprobe-eventer", "-n", "kube-system"],
        &["list", "pods", "--all-namespaces"],
        &["get", "nodes"],
    ] {
        assert!(!can(&c, args), "may {args:?}");
    }
    // the eventer as that ServiceAccount
    let tmp = tempfile::tempdir().expect("tmp");
    let kc = c.service_account_kubeconfig("kube-system", "nodeprobe-eventer", tmp.path());
    let _ = c.kubectl_in(
        &[
            "-n",
            "kube-system",
            "delete",
            "lease",
            "nodeprobe-eventer",
            "--ignore-not-found",
        ],
        "",
    );
    let k = Kube::new(&c.kubeconfig);
    let ns = nodeprobe_integration::eventer::TestNamespace::new(&k, "evdeploy");
    let sink = format!("log:?level=Normal&namespaces={}", ns.name);
    let e = Eventer::start(
        &kc,
        &[
            "--sink",
            &sink,
            "--leader-elect",
            "--lease-name",
            "nodeprobe-eventer",
            "--lease-namespace",
            "kube-system",
            "--lease-retry",
            "1s",
            "--lease-renew-deadline",
            "4s",
            "--lease-duration",
            "6s",
        ],
        &[],
    );
    k.create_event(&Ev {
        ns: &ns.name,
        name: "deployed",
        kind: "Pod",
        obj: "web",
        obj_ns: Some(&ns.name),
        type_: "Warning",
        reason: "BackOff",
        message: "m",
    });
    let t0 = Instant::now();
    while !e.stdout().contains("\"deployed\"") {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", e.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    // the record is in its Lease
    let t0 = Instant::now();
    loop {
        let l = c
            .get(&[
                "-n",
                "kube-system",
                "lease",
                "nodeprobe-eventer",
                "-o",
                "json",
            ])
            .unwrap_or_default();
        let holder = l["spec"]["holderIdentity"].as_str().unwrap_or("");
        if holder.contains('_')
            && l["metadata"]["annotations"]["nodeprobe.io/eventer-progress"].is_string()
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{l}\n{}", e.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !e.logs().contains("Forbidden") && !e.logs().contains("forbidden"),
        "{}",
        e.logs()
    );
    drop(e);
    let _ = c.kubectl_in(
        &["-n", "kube-system", "delete", "lease", "nodeprobe-eventer"],
        "",
    );
}
