//! deploy/: every manifest parses, passes strict schema validation (kubernetes-validate, from
//! PyPI, when `$NODEPROBE_KUBE_VALIDATE` names it — the test command installs it), and the
//! DaemonSet, RBAC and ConfigMaps say what the issue and the README promise.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use nodeprobe_integration::{nodeprobe, require};
use serde_yaml::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

/// Every resource of the kustomize base, from kustomization.yaml's `resources`.
fn base_resources() -> Vec<Value> {
    let base = deploy_dir().join("base");
    let k = &docs(&base.join("kustomization.yaml"))[0];
    k["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .flat_map(|r| docs(&base.join(r.as_str().unwrap())))
        .collect()
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn all_manifest_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [
        "base",
        "overlays/docker",
        "eventer",
        "eventer/components/custom-body",
    ] {
        for e in std::fs::read_dir(deploy_dir().join(dir)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_manifest_parses_and_passes_schema_validation() {
    let files = all_manifest_files();
    assert!(files.len() >= 12, "{files:?}");
    for f in &files {
        assert!(!docs(f).is_empty(), "{} is empty", f.display());
    }
    let validator = std::env::var("NODEPROBE_KUBE_VALIDATE").ok();
    if !require(
        validator.is_some(),
        "NODEPROBE_KUBE_VALIDATE (kubernetes-validate from PyPI)",
    ) {
        return;
    }
    // Kubernetes objects only (kustomization files and patches are not complete objects).
    let objects: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            name != "kustomization.yaml" && !f.starts_with(deploy_dir().join("overlays"))
        })
        .collect();
    let out = Command::new(validator.unwrap())
        .args(["--strict", "-k", "1.33.0"])
        .args(&objects)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schema validation failed:\n{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
fn rbac_grants_exactly_the_verbs_the_agent_uses() {
    let all = base_resources();
    let role = find(&all, "ClusterRole", "nodeprobe");
    let mut got = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        assert_eq!(
            strs(&rule["apiGroups"]),
            vec![""],
            "core group only: {rule:?}"
        );
        for res in strs(&rule["resources"]) {
            for verb in strs(&rule["verbs"]) {
                got.insert(format!("{res}:{verb}"));
            }
        }
    }
    let want: BTreeSet<String> = [
        "nodes:get",
        "nodes/status:patch",
        "events:create",
        "events:patch",
        "pods:list",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    let binding = find(&all, "ClusterRoleBinding", "nodeprobe");
    assert_eq!(binding["roleRef"]["name"], "nodeprobe");
    assert_eq!(binding["subjects"][0]["name"], "nodeprobe");
    find(&all, "ServiceAccount", "nodeprobe");
}

#[test]
fn daemonset_is_least_privilege_and_complete() {
    let all = base_resources();
    let ds = find(&all, "DaemonSet", "nodeprobe");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["serviceAccountName"], "nodeprobe");
    // tolerate every taint
    let tol = pod["tolerations"].as_sequence().unwrap();
    assert!(
        tol.iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "{tol:?}"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strs(&sc["capabilities"]["drop"]), vec!["ALL"]);
    let added: BTreeSet<String> = strs(&sc["capabilities"]["add"]).into_iter().collect();
    assert!(
        added.iter().all(|cap| cap == "SYSLOG"),
        "only SYSLOG (kmsg) is kept: {added:?}"
    );
    // host mounted read-only at /host, state dir writable, both hostPath
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let vols = pod["volumes"].as_sequence().unwrap();
    let vol = |name: &str| {
        vols.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"))
    };
    // The host's root read-only at /host, and the pseudo file systems below it that uid 0
    // could write without capabilities read-only once more (a read-only bind is not
    // recursive on runtimes without recursiveReadOnly; container.rs measures it).
    for (at, host_path) in [
        ("/host", "/"),
        ("/host/proc", "/proc"),
        ("/host/sys", "/sys"),
        ("/host/sys/fs/cgroup", "/sys/fs/cgroup"),
        ("/host/dev", "/dev"),
        ("/host/run", "/run"),
    ] {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == at)
            .unwrap_or_else(|| panic!("no mount at {at}"));
        assert_eq!(m["readOnly"], true, "{m:?}");
        assert_eq!(
            vol(m["name"].as_str().unwrap())["hostPath"]["path"],
            host_path
        );
    }
    for m in mounts {
        let v = vol(m["name"].as_str().unwrap());
        if m["mountPath"] == "/var/lib/nodeprobe" {
            assert_eq!(v["hostPath"]["path"], "/var/lib/nodeprobe");
        } else {
            assert_eq!(m["readOnly"], true, "only the state dir is writable: {m:?}");
        }
    }
    // identity, config, health
    let env = c["env"].as_sequence().unwrap();
    let node = env.iter().find(|e| e["name"] == "NODE_NAME").unwrap();
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "nodeprobe-config");
    // Liveness restarts only what a restart fixes (a dead or hung loop): /livez, not /healthz.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args = strs(&c["args"]);
    assert!(args.contains(&"--host-root=/host".to_string()), "{args:?}");
    // resources within the targets (≤ 10m CPU, ≤ 16Mi memory requested)
    let req = &c["resources"]["requests"];
    let cpu = req["cpu"].as_str().unwrap();
    let mem = req["memory"].as_str().unwrap();
    assert!(cpu.ends_with('m') && cpu.trim_end_matches('m').parse::<u32>().unwrap() <= 10);
    assert!(mem.ends_with("Mi") && mem.trim_end_matches("Mi").parse::<u32>().unwrap() <= 16);
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());
}

#[test]
fn flags_and_env_in_manifests_exist_in_the_binary() {
    let help = nodeprobe(&["--help"]).stdout;
    let all = base_resources();
    let ds = find(&all, "DaemonSet", "nodeprobe");
    let mut args = strs(&ds["spec"]["template"]["spec"]["containers"][0]["args"]);
    let overlay = &docs(&deploy_dir().join("overlays/docker/daemonset-docker.yaml"))[0];
    args.extend(strs(
        &overlay["spec"]["template"]["spec"]["containers"][0]["args"],
    ));
    for a in &args {
        let flag = a.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} (deploy/) is not a nodeprobe flag"
        );
    }
    let cm = find(&all, "ConfigMap", "nodeprobe-config");
    for key in cm["data"].as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(
            help.contains(key),
            "{key} (ConfigMap) is not a nodeprobe env var"
        );
    }
}

#[test]
fn overlay_patches_the_base_daemonset() {
    let dir = deploy_dir().join("overlays/docker");
    let k = &docs(&dir.join("kustomization.yaml"))[0];
    assert_eq!(strs(&k["resources"]), vec!["../../base"]);
    let base = base_resources();
    let ds = find(&base, "DaemonSet", "nodeprobe");
    for p in k["patches"].as_sequence().unwrap() {
        let patch = &docs(&dir.join(p["path"].as_str().unwrap()))[0];
        assert_eq!(patch["kind"], "DaemonSet");
        assert_eq!(patch["metadata"]["name"], ds["metadata"]["name"]);
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"][0]["name"],
            ds["spec"]["template"]["spec"]["containers"][0]["name"]
        );
    }
    for g in k["configMapGenerator"].as_sequence().unwrap() {
        for f in strs(&g["files"]) {
            assert!(dir.join(&f).exists(), "{f} missing in the overlay");
        }
    }
}

#[test]
fn rule_configmaps_ship_the_default_rules() {
    for (dir, gen_files) in [
        (deploy_dir().join("base"), "base"),
        (deploy_dir().join("overlays/docker"), "overlay"),
    ] {
        let k = &docs(&dir.join("kustomization.yaml"))[0];
        for g in k["configMapGenerator"].as_sequence().unwrap() {
            for f in strs(&g["files"]) {
                let shipped =
                    std::fs::read(dir.join(&f)).unwrap_or_else(|e| panic!("{gen_files} {f}: {e}"));
                let name = Path::new(&f).file_name().unwrap();
                let default = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../probes/rules")
                    .join(name);
                assert_eq!(
                    shipped,
                    std::fs::read(&default)
                        .unwrap_or_else(|e| panic!("{}: {e}", default.display())),
                    "{} differs from the built-in default rules {}",
                    dir.join(&f).display(),
                    default.display()
                );
            }
        }
    }
}

/// Every resource of deploy/eventer, from its kustomization.yaml's `resources`.
fn eventer_resources() -> Vec<Value> {
    let dir = deploy_dir().join("eventer");
    let k = &docs(&dir.join("kustomization.yaml"))[0];
    k["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .flat_map(|r| docs(&dir.join(r.as_str().unwrap())))
        .collect()
}

fn grants(rules: &Value) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    for rule in rules.as_sequence().unwrap() {
        let names = strs(&rule["resourceNames"]);
        for g in strs(&rule["apiGroups"]) {
            for res in strs(&rule["resources"]) {
                for verb in strs(&rule["verbs"]) {
                    got.insert(format!(
                        "{g}/{res}:{verb}{}",
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!("@{}", names.join(","))
                        }
                    ));
                }
            }
        }
    }
    got
}

#[test]
fn eventer_rbac_is_exactly_what_it_uses() {
    let all = eventer_resources();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        grants(&find(&all, "ClusterRole", "nodeprobe-eventer")["rules"]),
        set(&["/events:get", "/events:list", "/events:watch"])
    );
    let lease = find(&all, "Role", "nodeprobe-eventer-lease");
    assert_eq!(lease["metadata"]["namespace"], "kube-system");
    assert_eq!(
        grants(&lease["rules"]),
        set(&[
            "coordination.k8s.io/leases:create",
            "coordination.k8s.io/leases:get@nodeprobe-eventer",
            "coordination.k8s.io/leases:update@nodeprobe-eventer",
        ])
    );
    for (kind, name) in [
        ("ClusterRoleBinding", "nodeprobe-eventer"),
        ("RoleBinding", "nodeprobe-eventer-lease"),
    ] {
        let b = find(&all, kind, name);
        assert_eq!(b["subjects"][0]["name"], "nodeprobe-eventer");
        assert_eq!(b["subjects"][0]["namespace"], "kube-system");
    }
    find(&all, "ServiceAccount", "nodeprobe-eventer");
    // The template ConfigMap component: that one ConfigMap, read only.
    let comp = &docs(&deploy_dir().join("eventer/components/custom-body/rbac.yaml"))[0];
    assert_eq!(
        grants(&comp["rules"]),
        set(&[
            "/configmaps:get@custom-body",
            "/configmaps:list@custom-body",
            "/configmaps:watch@custom-body"
        ])
    );
}

#[test]
fn eventer_deployment_is_ha_least_privilege_and_scraped() {
    let all = eventer_resources();
    let d = find(&all, "Deployment", "nodeprobe-eventer");
    assert_eq!(d["spec"]["replicas"], 2);
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    // deploy/monitoring's PodMonitor selects app=nodeprobe-eventer and port "metrics"
    let pm = docs(&deploy_dir().join("monitoring/podmonitor.yaml"));
    let pm = pm
        .iter()
        .find(|p| p["metadata"]["name"] == "nodeprobe-eventer")
        .expect("PodMonitor");
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&labels[k], v, "pod label {k:?}");
    }
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "nodeprobe-eventer");
    let c = &pod["containers"][0];
    let port = pm["spec"]["podMetricsEndpoints"][0]["port"]
        .as_str()
        .unwrap();
    let p = c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port)
        .expect("metrics port");
    let args = strs(&c["args"]);
    assert_eq!(args[0], "eventer");
    let healthz = args
        .iter()
        .find_map(|a| a.strip_prefix("--healthz-port="))
        .unwrap_or("8084");
    assert_eq!(p["containerPort"].as_u64().unwrap().to_string(), healthz);
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // secrets only through $VARs from the Secret
    for a in args.iter().filter(|a| a.starts_with("--sink=")) {
        assert!(a.contains('$'), "a sink without a $VAR secret: {a}");
        assert!(
            !a.contains("access_token=") || a.contains("access_token=$"),
            "{a}"
        );
    }
    assert_eq!(
        c["envFrom"][0]["secretRef"]["name"],
        "nodeprobe-eventer-sinks"
    );
    let env = c["env"].as_sequence().unwrap();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], path);
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(strs(&sc["capabilities"]["drop"]), vec!["ALL"]);
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for m in c["volumeMounts"].as_sequence().into_iter().flatten() {
        assert_eq!(m["readOnly"], true, "{m:?}");
    }
    assert!(c["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(c["resources"]["requests"]["memory"].as_str().is_some());
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());
    // every flag is one of `nodeprobe eventer`
    let help = nodeprobe(&["eventer", "--help"]).stdout;
    for a in &args[1..] {
        let flag = a.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} (deploy/eventer) is not an eventer flag"
        );
    }
}
