//! The data a template sees: a small model of Go values (structs with Go field names,
//! maps, slices, `time.Time`, nil pointers) and Go's `%v` printing of them.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::gotime::{go_string, GoTime};

/// One Go value.
#[derive(Debug, Clone)]
pub enum Value {
    /// No value (a missing map key): prints `<no value>`.
    Invalid,
    /// A nil pointer, slice or map: prints `<nil>`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Time(GoTime),
    Map(Rc<BTreeMap<String, Value>>),
    List(Rc<Vec<Value>>),
    Struct(Rc<Struct>),
    /// Already-escaped output of `json`/`toJson`: never escaped again.
    Safe(Rc<str>),
}

/// A Go struct: fields in declaration order, each with its Go and JSON names. `embedded`
/// fields promote their own fields (Go's `.Name` on an Event reaches `ObjectMeta.Name`).
#[derive(Debug, Clone, Default)]
pub struct Struct {
    pub type_name: &'static str,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub go: &'static str,
    pub json: &'static str,
    pub embedded: bool,
    pub value: Value,
}

impl Struct {
    pub fn new(type_name: &'static str) -> Self {
        Struct {
            type_name,
            fields: Vec::new(),
        }
    }

    pub fn field(mut self, go: &'static str, json: &'static str, value: Value) -> Self {
        self.fields.push(Field {
            go,
            json,
            embedded: false,
            value,
        });
        self
    }

    pub fn embed(mut self, go: &'static str, json: &'static str, value: Value) -> Self {
        self.fields.push(Field {
            go,
            json,
            embedded: true,
            value,
        });
        self
    }

    /// Field `name`, directly or promoted from an embedded struct (breadth first, as Go).
    pub fn get(&self, name: &str) -> Option<&Value> {
        if let Some(f) = self.fields.iter().find(|f| f.go == name) {
            return Some(&f.value);
        }
        self.fields
            .iter()
            .filter(|f| f.embedded)
            .find_map(|f| match &f.value {
                Value::Struct(s) => s.get(name),
                _ => None,
            })
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    pub fn opt_str(s: Option<&String>) -> Value {
        Value::str(s.map(String::as_str).unwrap_or(""))
    }

    pub fn structure(s: Struct) -> Value {
        Value::Struct(Rc::new(s))
    }

    /// Go's name of the value's type, for error messages and `%T`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "<nil>",
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) | Value::Safe(_) => "string",
            Value::Time(_) => "time.Time",
            Value::Map(_) => "map[string]string",
            Value::List(_) => "[]interface {}",
            Value::Struct(s) => s.type_name,
        }
    }

    /// Go's `text/template` truth: false, 0, "", nil and empty collections are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Safe(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Time(_) | Value::Struct(_) => true,
        }
    }

    /// Print as Go's `fmt.Sprint` would (text/template's `{{ . }}`).
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write_go(&mut out, true);
        out
    }

    fn write_go(&self, out: &mut String, top: bool) {
        match self {
            Value::Invalid => out.push_str(if top { "<no value>" } else { "<nil>" }),
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&go_float(*f, 'g', None)),
            Value::Str(s) | Value::Safe(s) => out.push_str(s),
            Value::Time(t) => out.push_str(&go_string(t)),
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Struct(s) => {
                out.push('{');
                for (i, f) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    f.value.write_go(out, false);
                }
                out.push('}');
            }
        }
    }

    /// JSON encoding (`toJson`): structs by their JSON field names with empty fields
    /// omitted (the API's `omitempty`), times as RFC 3339 UTC, zero times as null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Invalid | Value::Nil => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) | Value::Safe(s) => J::String(s.to_string()),
            Value::Time(t) => match t.ts {
                Some(ts) => J::String(ts.to_string()),
                None => J::Null,
            },
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::Struct(s) => {
                let mut obj = serde_json::Map::new();
                for f in &s.fields {
                    if f.value.is_empty() {
                        continue;
                    }
                    match (f.embedded, f.json, f.value.to_json()) {
                        // Go's `json:",inline"` (TypeMeta): the fields join the parent.
                        (true, "", J::Object(inner)) => obj.extend(inner),
                        (_, name, v) => {
                            obj.insert(name.to_string(), v);
                        }
                    }
                }
                J::Object(obj)
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => true,
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Str(s) => s.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Time(t) => t.ts.is_none(),
            _ => false,
        }
    }
}

/// Go's float formatting for `%v`/`%g` (shortest representation, exponent for large or
/// small magnitudes) and `%f`/`%e` with a precision.
pub fn go_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    match verb {
        'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), f),
        'e' | 'E' => {
            let s = go_exp(&format!("{:.*e}", prec.unwrap_or(6), f));
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        _ => {
            // %g / %v: shortest round-trip digits; exponent when exp < -4 || exp >= 21
            // (Go's %v uses 21 as the shortest-format threshold).
            if let Some(p) = prec {
                let s = format!("{:.*e}", p.saturating_sub(1), f);
                let exp: i32 = s
                    .split_once('e')
                    .and_then(|(_, e)| e.parse().ok())
                    .unwrap_or(0);
                if exp < -4 || exp >= p.max(1) as i32 {
                    return go_exp(&s);
                }
                let decimals = (p as i32 - 1 - exp).max(0) as usize;
                let s = format!("{f:.decimals$}");
                return if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                };
            }
            let e = format!("{f:e}");
            let exp: i32 = e
                .split_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0);
            if !(-4..21).contains(&exp) {
                go_exp(&e)
            } else {
                let s = format!("{f}");
                s
            }
        }
    }
}

/// Rust `1.5e3` → Go `1.5e+03`.
fn go_exp(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_printing() {
        let s = Struct::new("v1.EventSource")
            .field("Component", "component", Value::str("kubelet"))
            .field("Host", "host", Value::str("node-1"));
        assert_eq!(Value::structure(s).to_go_string(), "{kubelet node-1}");
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), Value::str("2"));
        m.insert("a".to_string(), Value::str("1"));
        assert_eq!(Value::Map(Rc::new(m)).to_go_string(), "map[a:1 b:2]");
        assert_eq!(Value::Invalid.to_go_string(), "<no value>");
        assert_eq!(Value::Nil.to_go_string(), "<nil>");
        assert_eq!(go_float(1.5, 'g', None), "1.5");
        assert_eq!(go_float(1e21, 'g', None), "1e+21");
        assert_eq!(go_float(3.0, 'g', None), "3");
        assert_eq!(go_float(1.23456, 'f', Some(2)), "1.23");
        assert_eq!(go_float(1234.5, 'e', Some(2)), "1.23e+03");
    }

    #[test]
    fn promoted_fields() {
        let meta = Struct::new("v1.ObjectMeta").field("Name", "name", Value::str("ev1"));
        let ev = Struct::new("v1.Event")
            .embed("ObjectMeta", "metadata", Value::structure(meta))
            .field("Reason", "reason", Value::str("R"));
        assert_eq!(ev.get("Name").unwrap().to_go_string(), "ev1");
        assert_eq!(ev.get("Reason").unwrap().to_go_string(), "R");
        assert!(ev.get("Nope").is_none());
        assert_eq!(
            Value::structure(ev).to_json(),
            serde_json::json!({"metadata": {"name": "ev1"}, "reason": "R"})
        );
    }
}
