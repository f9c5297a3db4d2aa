//! deploy/monitoring checked by Prometheus's own tools and the manifest validators:
//! `promtool check rules`, `promtool test rules` (every alert has a case where it fires and
//! one where it does not), the PrometheusRule carries exactly the plain rule file, every
//! runbook anchor exists in the README, the kustomize Component builds with the base, its
//! ConfigMap passes kubernetes-validate and its PodMonitors/PrometheusRule pass the vendored
//! prometheus-operator CRD schemas (strict: unknown fields are errors), and the dashboard is
//! well-formed with every query parsing as PromQL. The real Prometheus test is
//! monitoring_prometheus.rs.

#![allow(clippy::disallowed_methods)] // tests run promtool, kubectl and python

mod monitoring_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use monitoring_common::*;
use nodeprobe_integration::prometheus::{prometheus_ok, PROMTOOL};
use nodeprobe_integration::require;
use serde_yaml::Value;

fn run(cmd: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let o = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn promtool_checks_the_rule_file() {
    if !prometheus_ok() {
        return;
    }
    let (ok, out) = run(
        PROMTOOL,
        &["check", "rules", "nodeprobe.rules.yml"],
        &monitoring_dir(),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{out}"
    );
}

#[test]
fn promtool_unit_tests_pass_and_cover_every_alert() {
    if !prometheus_ok() {
        return;
    }
    let tests = monitoring_dir().join("tests");
    let (ok, out) = run(
        PROMTOOL,
        &["test", "rules", "nodeprobe.rules.test.yml"],
        &tests,
    );
    assert!(ok, "promtool test rules failed:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert has a case where it fires and one where it must not.
    let t = yaml(&tests.join("nodeprobe.rules.test.yml"));
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in t["tests"].as_sequence().unwrap() {
        for a in case["alert_rule_test"].as_sequence().unwrap() {
            let name = a["alertname"].as_str().unwrap().to_string();
            let exp = a["exp_alerts"].as_sequence().map(|s| s.len()).unwrap_or(0);
            if exp == 0 {
                silent.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    for a in alerts() {
        assert!(fires.contains(&a.name), "no case where {} fires", a.name);
        assert!(
            silent.contains(&a.name),
            "no case where {} stays silent",
            a.name
        );
    }
}

#[test]
fn prometheusrule_carries_exactly_the_rule_file() {
    let pr = yaml(&monitoring_dir().join("prometheusrule.yaml"));
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert_eq!(pr["metadata"]["name"], "nodeprobe");
    assert_eq!(
        pr["spec"]["groups"],
        yaml(&rules_path())["groups"],
        "prometheusrule.yaml differs from nodeprobe.rules.yml: run deploy/monitoring/generate.sh"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_is_labelled_and_has_a_runbook_in_the_readme() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect();
    let mut names = BTreeSet::new();
    for a in alerts() {
        assert!(names.insert(a.name.clone()), "{} twice", a.name);
        assert!(a.name.starts_with("Nodeprobe"), "{}", a.name);
        let sev = a.labels.get("severity").map(String::as_str);
        assert!(
            matches!(sev, Some("info" | "warning" | "critical")),
            "{}: severity {sev:?}",
            a.name
        );
        for k in ["summary", "description", "runbook_url"] {
            assert!(a.annotations.contains_key(k), "{}: no {k}", a.name);
        }
        let anchor = a.annotations["runbook_url"]
            .strip_prefix("README.md#")
            .unwrap_or_else(|| panic!("{}: runbook_url must be README.md#…", a.name));
        assert_eq!(anchor, a.name.to_lowercase(), "{}", a.name);
        assert!(
            anchors.contains(anchor),
            "README.md has no heading for #{anchor} ({})",
            a.name
        );
    }
}

#[test]
fn every_rule_and_dashboard_query_parses_as_promql() {
    for a in alerts() {
        let u = usage(&a.expr).unwrap();
        assert!(!u.selectors.is_empty(), "{}", a.name);
        for t in template_selectors(&a.annotations["description"]) {
            usage(&t).unwrap_or_else(|e| panic!("{} annotation query: {e}", a.name));
        }
    }
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{}", queries.len());
    for q in &queries {
        usage(&q.expr).unwrap_or_else(|e| panic!("panel {:?}: {e}", q.panel));
    }
    for (sel, _) in dashboard_label_values() {
        usage(&sel).unwrap();
    }
}

#[test]
fn dashboard_is_a_grafana_dashboard_covering_what_the_issue_asks() {
    let d = dashboard();
    assert_eq!(d["uid"], "nodeprobe");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "node"]);
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel id twice: {p}");
        let g = &p["gridPos"];
        for k in ["x", "y", "w", "h"] {
            assert!(g[k].is_u64(), "{}: gridPos.{k}", p["title"]);
        }
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(!p["targets"].as_array().unwrap().is_empty());
        }
        titles.push(p["title"].as_str().unwrap().to_string());
    }
    // conditions by node (a table), problem counters, OOM kills by namespace, own
    // footprint and health, eventer deliveries and latency
    let has = |w: &str| titles.iter().any(|t| t.contains(w));
    for w in [
        "Conditions not False, by node",
        "Problem events by reason",
        "OOM kills by namespace",
        "Agent memory",
        "Agent CPU",
        "Agents down",
        "Log sources down",
        "Deliveries by sink",
        "Delivery latency",
    ] {
        assert!(has(w), "no panel {w:?}: {titles:?}");
    }
    let table = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Conditions not False, by node")
        .unwrap();
    assert_eq!(table["type"], "table");
    assert_eq!(table["targets"][0]["format"], "table");
}

/// Build the Component together with the base (as a user's kustomization does) with the
/// machine's kubectl (kustomize v5): the documents it prints.
fn kustomize_with_base() -> Option<Vec<Value>> {
    if !require(
        Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "kubectl (with kustomize) on PATH",
    ) {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("nodeprobe-it-kustomize-")
        .tempdir()
        .unwrap();
    // kustomize takes relative paths only.
    let deploy = std::fs::canonicalize(monitoring_dir().join("..")).unwrap();
    let up = "../".repeat(dir.path().components().count() - 1);
    let rel = format!(
        "{up}{}",
        deploy.display().to_string().trim_start_matches('/')
    );
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!("resources: [{rel}/base]\ncomponents: [{rel}/monitoring]\n"),
    )
    .unwrap();
    let (ok, out) = run("kubectl", &["kustomize", "."], dir.path());
    assert!(ok, "kubectl kustomize failed:\n{out}");
    Some(
        serde_yaml::Deserializer::from_str(&out)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect(),
    )
}

#[test]
fn component_builds_with_the_base_and_targets_the_daemonset() {
    let Some(docs) = kustomize_with_base() else {
        return;
    };
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} not in the build"))
    };
    let ds = find("DaemonSet", "nodeprobe");
    let pr = find("PrometheusRule", "nodeprobe");
    assert_eq!(pr["metadata"]["namespace"], "kube-system");
    assert_eq!(pr["spec"]["groups"], yaml(&rules_path())["groups"]);
    // The dashboard ConfigMap: the JSON file unchanged, with the sidecar's label.
    let cm = find("ConfigMap", "nodeprobe-dashboard");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["namespace"], "kube-system");
    assert_eq!(
        cm["data"]["nodeprobe.json"].as_str().unwrap(),
        std::fs::read_to_string(dashboard_path()).unwrap()
    );
    // The agents' PodMonitor selects the DaemonSet's pods on its metrics port and sets the
    // job and node labels the rules use.
    let pm = find("PodMonitor", "nodeprobe");
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&pod_labels[k], v, "PodMonitor selector {k:?}");
    }
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    let ports = ds["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_sequence()
        .unwrap();
    assert!(
        ports.iter().any(|p| p["name"] == ep["port"]),
        "port {:?} not on the DaemonSet: {ports:?}",
        ep["port"]
    );
    let relabel: BTreeMap<String, String> = ep["relabelings"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            let src = r["sourceLabels"][0].as_str().unwrap_or("");
            let v = r["replacement"].as_str().unwrap_or(src);
            (
                r["targetLabel"].as_str().unwrap().to_string(),
                v.to_string(),
            )
        })
        .collect();
    assert_eq!(relabel["job"], "nodeprobe");
    assert_eq!(relabel["node"], "__meta_kubernetes_pod_node_name");
    let ev = find("PodMonitor", "nodeprobe-eventer");
    assert_eq!(
        ev["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["replacement"],
        "nodeprobe-eventer"
    );
}

#[test]
fn component_passes_schema_validation() {
    let Some(docs) = kustomize_with_base() else {
        return;
    };
    let validator = std::env::var("NODEPROBE_KUBE_VALIDATE").ok();
    if !require(
        validator.is_some(),
        "NODEPROBE_KUBE_VALIDATE (kubernetes-validate from PyPI)",
    ) {
        return;
    }
    let validator = validator.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Core objects with kubernetes-validate (strict), one file each.
    let mut core = Vec::new();
    let mut custom = String::new();
    for (i, d) in docs.iter().enumerate() {
        let text = serde_yaml::to_string(d).unwrap();
        if d["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("monitoring.coreos.com/")
        {
            custom.push_str("---\n");
            custom.push_str(&text);
        } else {
            let p = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&p, text).unwrap();
            core.push(p.display().to_string());
        }
    }
    let mut args = vec!["--strict", "-k", "1.33.0"];
    args.extend(core.iter().map(String::as_str));
    let (ok, out) = run(&validator, &args, dir.path());
    assert!(ok && !out.contains("ERROR"), "kubernetes-validate:\n{out}");
    // PrometheusRule and PodMonitors against the vendored CRD schemas (kubernetes-validate
    // has none for custom resources), with the venv's python (PyYAML, jsonschema).
    let python = Path::new(&validator).with_file_name("python3");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prometheus-operator");
    let schemas = format!(
        "{},{}",
        crds.join("monitoring.coreos.com_podmonitors.yaml")
            .display(),
        crds.join("monitoring.coreos.com_prometheusrules.yaml")
            .display()
    );
    let cr = dir.path().join("custom.yaml");
    std::fs::write(&cr, custom).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("env/crd-validate.py");
    let (ok, out) = run(
        python.to_str().unwrap(),
        &[script.to_str().unwrap(), &schemas, cr.to_str().unwrap()],
        dir.path(),
    );
    assert!(ok, "CRD schema validation:\n{out}");
    for obj in [
        "PodMonitor nodeprobe\n",
        "PodMonitor nodeprobe-eventer\n",
        "PrometheusRule nodeprobe\n",
    ] {
        assert!(
            out.contains(&format!(": {obj}")),
            "{obj} not validated:\n{out}"
        );
    }
    // The validator rejects what the API server would (it is not vacuous).
    let bad = std::fs::read_to_string(&cr)
        .unwrap()
        .replace("podMetricsEndpoints", "podMetricEndpoints");
    std::fs::write(&cr, bad).unwrap();
    let (ok, out) = run(
        python.to_str().unwrap(),
        &[script.to_str().unwrap(), &schemas, cr.to_str().unwrap()],
        dir.path(),
    );
    assert!(!ok && out.contains("podMetricEndpoints"), "{out}");
}
