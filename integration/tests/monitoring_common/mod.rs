//! What deploy/monitoring ships, read for the monitoring tests: the alerting rules, the
//! dashboard's queries, and what each PromQL expression selects and groups by (parsed with
//! promql-parser, not by pattern).

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use promql_parser::label::Labels;
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::Value as Json;
use serde_yaml::Value;

pub fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

pub fn rules_path() -> PathBuf {
    monitoring_dir().join("nodeprobe.rules.yml")
}

pub fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One alerting rule of nodeprobe.rules.yml.
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub expr: String,
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        v.as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn alerts() -> Vec<Alert> {
    let rules = yaml(&rules_path());
    let mut out = Vec::new();
    for g in rules["groups"].as_sequence().expect("groups") {
        for r in g["rules"].as_sequence().expect("rules") {
            let name = r["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_string();
            out.push(Alert {
                name,
                expr: r["expr"].as_str().expect("expr").to_string(),
                for_: r["for"].as_str().map(String::from),
                labels: str_map(&r["labels"]),
                annotations: str_map(&r["annotations"]),
            });
        }
    }
    out
}

pub fn dashboard_path() -> PathBuf {
    monitoring_dir().join("dashboards/nodeprobe.json")
}

pub fn dashboard() -> Json {
    let p = dashboard_path();
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One query of the dashboard with Grafana's variables substituted as Grafana would for
/// "All" nodes: `$node` -> `.*`, `$__rate_interval` -> `1m`.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
}

pub fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$node", ".*")
}

pub fn dashboard_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for p in dashboard()["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(PanelQuery {
                panel: p["title"].as_str().unwrap_or("?").to_string(),
                expr: substitute(t["expr"].as_str().expect("target expr")),
            });
        }
    }
    out
}

/// The dashboard's `label_values(selector, label)` variables: (selector, label).
pub fn dashboard_label_values() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in dashboard()["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {q} is not label_values(...)"));
        let (sel, label) = inner.rsplit_once(',').unwrap();
        out.push((sel.trim().to_string(), label.trim().to_string()));
    }
    out
}

/// What one expression reads: every selector (as PromQL text), and every label it groups or
/// matches by together with the selectors whose series must carry it.
#[derive(Debug, Default)]
pub struct Usage {
    pub selectors: Vec<String>,
    /// (label, selectors under the `by`/`on` that names it)
    pub grouping: Vec<(String, Vec<String>)>,
}

fn names(l: &Labels) -> Vec<String> {
    l.labels.to_vec()
}

/// The selector without `offset`/`@` (what /api/v1/series takes).
fn bare(v: &VectorSelector) -> String {
    let mut v = v.clone();
    v.offset = None;
    v.at = None;
    v.to_string()
}

fn selectors(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::VectorSelector(v) => out.push(bare(v)),
        Expr::MatrixSelector(m) => out.push(bare(&m.vs)),
        Expr::Aggregate(a) => selectors(&a.expr, out),
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        _ => {}
    }
}

fn walk(e: &Expr, u: &mut Usage) {
    match e {
        Expr::Aggregate(a) => {
            if let Some(LabelModifier::Include(l)) = &a.modifier {
                let mut sel = Vec::new();
                selectors(&a.expr, &mut sel);
                for name in names(l) {
                    u.grouping.push((name, sel.clone()));
                }
            }
            walk(&a.expr, u);
        }
        Expr::Binary(b) => {
            if let Some(LabelModifier::Include(l)) =
                b.modifier.as_ref().and_then(|m| m.matching.as_ref())
            {
                let mut sel = Vec::new();
                selectors(&b.lhs, &mut sel);
                selectors(&b.rhs, &mut sel);
                for name in names(l) {
                    u.grouping.push((name, sel.clone()));
                }
            }
            walk(&b.lhs, u);
            walk(&b.rhs, u);
        }
        Expr::Unary(x) => walk(&x.expr, u),
        Expr::Paren(x) => walk(&x.expr, u),
        Expr::Subquery(x) => walk(&x.expr, u),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, u)),
        _ => {}
    }
}

/// Parse `expr` (an error names the expression) and say what it reads.
pub fn usage(expr: &str) -> Result<Usage, String> {
    let e = parser::parse(expr).map_err(|err| format!("{expr}: {err}"))?;
    let mut u = Usage::default();
    selectors(&e, &mut u.selectors);
    u.selectors.sort();
    u.selectors.dedup();
    walk(&e, &mut u);
    Ok(u)
}

/// Series that come from the kubelet's cAdvisor, which the test environment has no kubelet
/// scrape for: their queries are parsed, not evaluated for data.
pub fn from_cadvisor(selector: &str) -> bool {
    selector.starts_with("container_")
}

/// Whether a selector reads the eventer's series.
pub fn from_eventer(selector: &str) -> bool {
    selector.starts_with("nodeprobe_eventer_") || selector.contains(r#"job="nodeprobe-eventer""#)
}

/// The alert names the annotation templates query with `query`: the selectors inside
/// printf `...` strings (their %q verbs replaced by a sample value).
pub fn template_selectors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("printf `") {
        let from = &rest[i + "printf `".len()..];
        let end = from.find('`').expect("closing backtick");
        out.push(from[..end].replace("%q", "\"n1\""));
        rest = &from[end..];
    }
    out
}
