//! Per-sink filters with kube-eventer's URI options: every configured filter type must pass,
//! any value within one. `level`, `kinds`, `namespaces`, `reason` (unanchored regexes; every
//! `reason=` value, not only the first) and our `exclude_reasons`.

use k8s_openapi::api::core::v1::Event;
use regex::RegexSet;

use super::event::filter_namespace;
use super::uri::{Uri, UriError};

/// Which Event types pass `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `level=Warning`: Warning only.
    Warning,
    /// `level=Normal`: Normal and Warning.
    Normal,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub level: Option<Level>,
    pub kinds: Vec<String>,
    pub namespaces: Vec<String>,
    pub reasons: Option<RegexSet>,
    pub exclude_reasons: Option<RegexSet>,
}

/// The filter options every sink accepts.
pub const FILTER_KEYS: &[&str] = &["level", "kinds", "namespaces", "reason", "exclude_reasons"];

fn regexes(u: &Uri, key: &str, what: &str) -> Result<Option<RegexSet>, UriError> {
    let pats = u.list(key);
    if pats.is_empty() {
        return Ok(None);
    }
    // Same bound as the log rules: a hostile pattern cannot take much memory.
    regex::RegexSetBuilder::new(&pats)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| UriError::Bad {
            what: what.into(),
            msg: format!("{key}: bad regular expression: {e}"),
        })
}

impl Filter {
    /// Build from a sink URI; `default_level` applies when `level` is absent.
    pub fn from_uri(u: &Uri, what: &str, default_level: Option<Level>) -> Result<Filter, UriError> {
        let level = match u.get("level") {
            None => default_level,
            Some("Warning") => Some(Level::Warning),
            Some("Normal") => Some(Level::Normal),
            Some(other) => {
                return Err(UriError::Bad {
                    what: what.into(),
                    msg: format!("level={other:?}: use Warning or Normal"),
                })
            }
        };
        Ok(Filter {
            level,
            kinds: u.list("kinds"),
            namespaces: u.list("namespaces"),
            reasons: regexes(u, "reason", what)?,
            exclude_reasons: regexes(u, "exclude_reasons", what)?,
        })
    }

    /// Whether the Event passes.
    pub fn pass(&self, ev: &Event) -> bool {
        let type_ = ev.type_.as_deref().unwrap_or("");
        match self.level {
            Some(Level::Warning) if type_ != "Warning" => return false,
            Some(Level::Normal) if type_ != "Warning" && type_ != "Normal" => return false,
            _ => {}
        }
        if !self.kinds.is_empty() {
            let kind = ev.involved_object.kind.as_deref().unwrap_or("");
            if !self.kinds.iter().any(|k| k == kind) {
                return false;
            }
        }
        if !self.namespaces.is_empty() {
            let ns = filter_namespace(ev);
            if !self.namespaces.iter().any(|n| n == ns) {
                return false;
            }
        }
        let reason = ev.reason.as_deref().unwrap_or("");
        if let Some(r) = &self.reasons {
            if !r.is_match(reason) {
                return false;
            }
        }
        if let Some(x) = &self.exclude_reasons {
            if x.is_match(reason) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(type_: &str, kind: &str, obj_ns: Option<&str>, ev_ns: &str, reason: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ev_ns}, "type": type_, "reason": reason,
            "involvedObject": {"kind": kind, "namespace": obj_ns}
        }))
        .unwrap()
    }

    fn f(q: &str) -> Filter {
        let u = Uri::parse(&format!("http://h/p?{q}"), "sink t").unwrap();
        Filter::from_uri(&u, "sink t", None).unwrap()
    }

    #[test]
    fn kube_eventer_semantics_without_its_defects() {
        let node_oom = ev("Warning", "Node", None, "default", "OOMKilling");
        let pod_pull = ev("Normal", "Pod", Some("app"), "app", "Pulled");
        // level
        assert!(f("level=Warning").pass(&node_oom) && !f("level=Warning").pass(&pod_pull));
        assert!(f("level=Normal").pass(&pod_pull) && f("level=Normal").pass(&node_oom));
        assert!(!f("level=Normal").pass(&ev("Error", "Pod", None, "x", "R")));
        // every reason= value counts, regexes unanchored
        let r = f("reason=OOM&reason=^Pull");
        assert!(r.pass(&node_oom) && r.pass(&pod_pull));
        assert!(!r.pass(&ev("Normal", "Pod", None, "x", "Scheduled")));
        // Node events (no object namespace) match the Event's namespace
        assert!(f("namespaces=default").pass(&node_oom));
        assert!(!f("namespaces=app").pass(&node_oom));
        assert!(f("namespaces=kube-system,app").pass(&pod_pull));
        // kinds and excludes; all types must pass
        assert!(f("kinds=Node&exclude_reasons=Pull").pass(&node_oom));
        assert!(!f("kinds=Node").pass(&pod_pull));
        assert!(!f("exclude_reasons=^OOM").pass(&node_oom));
        assert!(!f("kinds=Node&reason=Pull").pass(&node_oom));
        assert!(f("").pass(&pod_pull));
    }

    #[test]
    fn bad_options_are_errors() {
        let u = Uri::parse("http://h/p?level=Critical", "s").unwrap();
        assert!(Filter::from_uri(&u, "sink t", None)
            .unwrap_err()
            .to_string()
            .contains("level"));
        let u = Uri::parse("http://h/p?reason=(", "s").unwrap();
        assert!(Filter::from_uri(&u, "sink t", None)
            .unwrap_err()
            .to_string()
            .contains("regular expression"));
    }
}
