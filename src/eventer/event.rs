//! The Event as the sinks see it: Go field names for templates (kube-eventer renders the Go
//! `core/v1.Event` struct), and the few derived facts the pipeline needs.

use std::rc::Rc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::template::exec::map_value;
use super::template::gotime::GoTime;
use super::template::value::{Struct, Value};

fn s(v: &Option<String>) -> Value {
    Value::opt_str(v.as_ref())
}

fn time(t: Option<Timestamp>) -> Value {
    Value::Time(t.map(GoTime::local).unwrap_or(GoTime::ZERO))
}

fn reference(r: &ObjectReference) -> Value {
    Value::structure(
        Struct::new("v1.ObjectReference")
            .field("Kind", "kind", s(&r.kind))
            .field("Namespace", "namespace", s(&r.namespace))
            .field("Name", "name", s(&r.name))
            .field("UID", "uid", s(&r.uid))
            .field("APIVersion", "apiVersion", s(&r.api_version))
            .field("ResourceVersion", "resourceVersion", s(&r.resource_version))
            .field("FieldPath", "fieldPath", s(&r.field_path)),
    )
}

fn strings(v: &Option<Vec<String>>) -> Value {
    Value::List(Rc::new(v.iter().flatten().map(|x| Value::str(x)).collect()))
}

fn object_meta(m: &ObjectMeta) -> Value {
    let owners = m
        .owner_references
        .iter()
        .flatten()
        .map(|o| {
            Value::structure(
                Struct::new("v1.OwnerReference")
                    .field("APIVersion", "apiVersion", Value::str(&o.api_version))
                    .field("Kind", "kind", Value::str(&o.kind))
                    .field("Name", "name", Value::str(&o.name))
                    .field("UID", "uid", Value::str(&o.uid))
                    .field(
                        "Controller",
                        "controller",
                        o.controller.map(Value::Bool).unwrap_or(Value::Nil),
                    )
                    .field(
                        "BlockOwnerDeletion",
                        "blockOwnerDeletion",
                        o.block_owner_deletion
                            .map(Value::Bool)
                            .unwrap_or(Value::Nil),
                    ),
            )
        })
        .collect();
    let managed = m
        .managed_fields
        .iter()
        .flatten()
        .map(|f| {
            Value::structure(
                Struct::new("v1.ManagedFieldsEntry")
                    .field("Manager", "manager", s(&f.manager))
                    .field("Operation", "operation", s(&f.operation))
                    .field("APIVersion", "apiVersion", s(&f.api_version))
                    .field(
                        "Time",
                        "time",
                        f.time
                            .as_ref()
                            .map(|t| time(Some(t.0)))
                            .unwrap_or(Value::Nil),
                    )
                    .field("FieldsType", "fieldsType", s(&f.fields_type))
                    .field("FieldsV1", "fieldsV1", Value::Nil)
                    .field("Subresource", "subresource", s(&f.subresource)),
            )
        })
        .collect();
    Value::structure(
        Struct::new("v1.ObjectMeta")
            .field("Name", "name", s(&m.name))
            .field("GenerateName", "generateName", s(&m.generate_name))
            .field("Namespace", "namespace", s(&m.namespace))
            .field("SelfLink", "selfLink", s(&m.self_link))
            .field("UID", "uid", s(&m.uid))
            .field("ResourceVersion", "resourceVersion", s(&m.resource_version))
            .field(
                "Generation",
                "generation",
                Value::Int(m.generation.unwrap_or(0)),
            )
            .field(
                "CreationTimestamp",
                "creationTimestamp",
                time(m.creation_timestamp.as_ref().map(|t| t.0)),
            )
            .field(
                "DeletionTimestamp",
                "deletionTimestamp",
                m.deletion_timestamp
                    .as_ref()
                    .map(|t| time(Some(t.0)))
                    .unwrap_or(Value::Nil),
            )
            .field(
                "DeletionGracePeriodSeconds",
                "deletionGracePeriodSeconds",
                m.deletion_grace_period_seconds
                    .map(Value::Int)
                    .unwrap_or(Value::Nil),
            )
            .field("Labels", "labels", map_value(m.labels.iter().flatten()))
            .field(
                "Annotations",
                "annotations",
                map_value(m.annotations.iter().flatten()),
            )
            .field(
                "OwnerReferences",
                "ownerReferences",
                Value::List(Rc::new(owners)),
            )
            .field("Finalizers", "finalizers", strings(&m.finalizers))
            .field(
                "ManagedFields",
                "managedFields",
                Value::List(Rc::new(managed)),
            ),
    )
}

/// The Event as Go's `*v1.Event` for templates, after kube-eventer's one change:
/// `LastTimestamp` falls back to `EventTime`, then to `now`. (kube-eventer also deletes
/// double quotes from `Message`; we keep the message and escape it instead.)
pub fn to_value(ev: &Event, now: Timestamp) -> Value {
    let last = ev
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| ev.event_time.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let source = ev.source.clone().unwrap_or_default();
    let series = match &ev.series {
        Some(se) => Value::structure(
            Struct::new("v1.EventSeries")
                .field(
                    "Count",
                    "count",
                    Value::Int(i64::from(se.count.unwrap_or(0))),
                )
                .field(
                    "LastObservedTime",
                    "lastObservedTime",
                    time(se.last_observed_time.as_ref().map(|t| t.0)),
                ),
        ),
        None => Value::Nil,
    };
    let type_meta = Struct::new("v1.TypeMeta")
        .field("Kind", "kind", Value::str(""))
        .field("APIVersion", "apiVersion", Value::str(""));
    Value::structure(
        Struct::new("v1.Event")
            .embed("TypeMeta", "", Value::structure(type_meta))
            .embed("ObjectMeta", "metadata", object_meta(&ev.metadata))
            .field(
                "InvolvedObject",
                "involvedObject",
                reference(&ev.involved_object),
            )
            .field("Reason", "reason", s(&ev.reason))
            .field("Message", "message", s(&ev.message))
            .field(
                "Source",
                "source",
                Value::structure(
                    Struct::new("v1.EventSource")
                        .field("Component", "component", s(&source.component))
                        .field("Host", "host", s(&source.host)),
                ),
            )
            .field(
                "FirstTimestamp",
                "firstTimestamp",
                time(ev.first_timestamp.as_ref().map(|t| t.0)),
            )
            .field("LastTimestamp", "lastTimestamp", time(Some(last)))
            .field(
                "Count",
                "count",
                Value::Int(i64::from(ev.count.unwrap_or(0))),
            )
            .field("Type", "type", s(&ev.type_))
            .field(
                "EventTime",
                "eventTime",
                time(ev.event_time.as_ref().map(|t| t.0)),
            )
            .field("Series", "series", series)
            .field("Action", "action", s(&ev.action))
            .field(
                "Related",
                "related",
                ev.related.as_ref().map(reference).unwrap_or(Value::Nil),
            )
            .field(
                "ReportingController",
                "reportingComponent",
                s(&ev.reporting_component),
            )
            .field(
                "ReportingInstance",
                "reportingInstance",
                s(&ev.reporting_instance),
            ),
    )
}

/// How many times the Event has happened: `count`, or `series.count` for Events written
/// through events.k8s.io/v1.
pub fn occurrences(ev: &Event) -> i32 {
    let c = ev.count.unwrap_or(0);
    let s = ev.series.as_ref().and_then(|s| s.count).unwrap_or(0);
    c.max(s).max(1)
}

/// When the Event last happened, as the API says (`series.lastObservedTime`,
/// `lastTimestamp`, `eventTime`, then the object's creation).
pub fn last_seen(ev: &Event) -> Option<Timestamp> {
    let series = ev
        .series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0);
    let last = ev.last_timestamp.as_ref().map(|t| t.0);
    let evt = ev.event_time.as_ref().map(|t| t.0);
    let created = ev.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [series, last, evt].into_iter().flatten().max().or(created)
}

/// The namespace the `namespaces` filter matches: the involved object's, or for
/// cluster-scoped objects (Nodes, whose Events live in `default`) the Event's own.
pub fn filter_namespace(ev: &Event) -> &str {
    match ev.involved_object.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => ev.metadata.namespace.as_deref().unwrap_or(""),
    }
}

/// A short name of the involved object: `Kind/namespace/name` or `Kind/name`.
pub fn object_name(ev: &Event) -> String {
    let o = &ev.involved_object;
    let kind = o.kind.as_deref().unwrap_or("");
    let name = o.name.as_deref().unwrap_or("");
    match o.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{kind}/{ns}/{name}"),
        _ => format!("{kind}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventer::template::render_str;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub(crate) fn sample() -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-1.17b72a4a62c4a7d8", "namespace": "default",
                         "uid": "0b7a2c3e-1111-2222-3333-444455556666", "resourceVersion": "42",
                         "creationTimestamp": "2026-11-30T08:00:00Z"},
            "involvedObject": {"kind": "Node", "name": "node-1", "uid": "node-1"},
            "reason": "OOMKilling", "message": "Memory cgroup out of memory",
            "source": {"component": "kernel-monitor", "host": "node-1"},
            "firstTimestamp": "2026-11-30T08:00:00Z", "lastTimestamp": "2026-11-30T08:00:05Z",
            "count": 2, "type": "Warning", "reportingComponent": "nodeprobe"
        }))
        .unwrap()
    }

    #[test]
    fn go_field_names() {
        let v = to_value(&sample(), Timestamp::UNIX_EPOCH);
        let r = |t: &str| render_str(t, &v).unwrap();
        assert_eq!(
            r("{{ .Name }} {{ .Namespace }} {{ .ObjectMeta.UID }}"),
            "node-1.17b72a4a62c4a7d8 default 0b7a2c3e-1111-2222-3333-444455556666"
        );
        assert_eq!(r("{{ .InvolvedObject.Kind }}/{{ .InvolvedObject.Name }}|{{ .InvolvedObject.Namespace }}|"), "Node/node-1||");
        assert_eq!(r("{{ .Source.Component }} {{ .Source.Host }} {{ .Count }} {{ .Type }} {{ .ReportingController }}"), "kernel-monitor node-1 2 Warning nodeprobe");
        assert_eq!(
            r("{{ .Series }} {{ .Related }} {{ .DeletionTimestamp }} {{ .Labels }}"),
            "<nil> <nil> <nil> map[]"
        );
        assert_eq!(
            r("{{ .EventTime.IsZero }} {{ .LastTimestamp.Unix }}"),
            "true 1796025605"
        );
    }

    #[test]
    fn last_timestamp_falls_back() {
        let mut e = sample();
        e.last_timestamp = None;
        e.event_time = None;
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let v = to_value(&e, now);
        assert_eq!(
            render_str("{{ .LastTimestamp.Unix }}", &v).unwrap(),
            now.as_second().to_string()
        );
        e.last_timestamp = Some(Time("2026-11-30T09:00:00Z".parse().unwrap()));
        assert_eq!(last_seen(&e), Some("2026-11-30T09:00:00Z".parse().unwrap()));
        assert_eq!(occurrences(&e), 2);
        assert_eq!(filter_namespace(&e), "default");
        assert_eq!(object_name(&e), "Node/node-1");
    }
}
