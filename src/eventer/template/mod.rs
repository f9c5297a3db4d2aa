//! Go `text/template` for sink bodies: kube-eventer's templates (`custom_body_configmap`)
//! run unchanged over the Event with Go's field names.
//!
//! An own small engine rather than the `gtmpl` crate: gtmpl (last release 0.7.1) has no
//! way to know whether a value lands inside a JSON string literal, so it cannot escape in
//! context, and it has no bounds on hostile templates. Here the parser ([`parse`]) is pure
//! and separate from the executor ([`exec`]); both are bounded (template size, nesting,
//! output size, steps, call depth).

pub mod exec;
pub mod gotime;
pub mod parse;
pub mod printf;
pub mod value;

pub use exec::{ExecError, Limits};
pub use parse::ParseError;
pub use value::Value;

/// How printed values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// JSON template: values inside JSON string literals are JSON-escaped.
    Json,
    /// Text as Go prints it.
    None,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    tree: parse::Tree,
    escape: Escape,
    source_len: usize,
}

impl Template {
    /// Parse `src`. With `escape = None` the escaping is chosen from the text: a template
    /// whose first non-blank character is `{` or `[` is a JSON template.
    pub fn parse(src: &str, escape: Option<Escape>) -> Result<Template, ParseError> {
        let tree = parse::parse(src)?;
        let escape = escape.unwrap_or_else(|| {
            if src.trim_start().starts_with(['{', '[']) {
                Escape::Json
            } else {
                Escape::None
            }
        });
        Ok(Template {
            tree,
            escape,
            source_len: src.len(),
        })
    }

    pub fn escape(&self) -> Escape {
        self.escape
    }

    pub fn source_len(&self) -> usize {
        self.source_len
    }

    /// Render over `data` within the default bounds.
    pub fn render(&self, data: &Value) -> Result<String, ExecError> {
        self.render_with(data, Limits::default())
    }

    pub fn render_with(&self, data: &Value, limits: Limits) -> Result<String, ExecError> {
        exec::execute(&self.tree, data, self.escape == Escape::Json, limits)
    }
}

/// Parse and render in one go (for fuzzing and tests).
pub fn render_str(src: &str, data: &Value) -> Result<String, String> {
    let t = Template::parse(src, None).map_err(|e| e.to_string())?;
    t.render(data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::value::Struct;
    use super::*;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    fn data() -> Value {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), Value::str("web"));
        let meta = Struct::new("v1.ObjectMeta")
            .field("Name", "name", Value::str("ev.1"))
            .field("Labels", "labels", Value::Map(Rc::new(labels)));
        Value::structure(
            Struct::new("v1.Event")
                .embed("ObjectMeta", "metadata", Value::structure(meta))
                .field("Type", "type", Value::str("Warning"))
                .field(
                    "Message",
                    "message",
                    Value::str("a \"quoted\"\nline\\ 100%"),
                )
                .field("Count", "count", Value::Int(3))
                .field(
                    "List",
                    "list",
                    Value::List(Rc::new(vec![Value::str("x"), Value::str("y")])),
                )
                .field("Series", "series", Value::Nil),
        )
    }

    fn r(src: &str) -> String {
        render_str(src, &data()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn go_semantics() {
        assert_eq!(r("{{ .Name }}/{{ .ObjectMeta.Name }}"), "ev.1/ev.1");
        assert_eq!(
            r("{{ .Labels.app }}|{{ .Labels.nope }}|{{ index .Labels \"nope\" }}|"),
            "web|<no value>||"
        );
        assert_eq!(
            r("{{ if eq .Type \"Warning\" \"Error\" }}W{{ else }}N{{ end }}"),
            "W"
        );
        assert_eq!(r("{{ if gt .Count 2 }}many{{ end }}"), "many");
        assert_eq!(
            r("{{ range $i, $v := .List }}{{ $i }}={{ $v }};{{ end }}"),
            "0=x;1=y;"
        );
        assert_eq!(
            r("{{ range .List }}{{ if eq . \"y\" }}{{ break }}{{ end }}{{ . }}{{ end }}"),
            "x"
        );
        assert_eq!(
            r("{{ range .Nope }}{{ else }}empty{{ end }}"),
            "ERR template line 1: can't evaluate field Nope in type v1.Event"
        );
        assert_eq!(
            r("{{ with .Series }}s{{ else }}no series{{ end }}"),
            "no series"
        );
        assert_eq!(r("{{ .Series }}"), "<nil>");
        assert_eq!(r("{{ .Message | len }}"), "21");
        assert_eq!(r("{{ printf \"%s-%03d\" .Type .Count }}"), "Warning-003");
        assert_eq!(r("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}"), "2");
        assert_eq!(r("{{ and 1 0 }}{{ or 0 \"\" \"z\" }}{{ not 0 }}"), "0ztrue");
        assert_eq!(
            r("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .Type }}"),
            "[Warning]"
        );
        assert_eq!(
            r("{{ slice .Type 0 4 }}{{ html \"<a>\" }}{{ urlquery \"a b&\" }}"),
            "Warn&lt;a&gt;a+b%26"
        );
        assert_eq!(
            r("{{ .Count.X }}"),
            "ERR template line 1: can't evaluate field X in type int"
        );
        assert_eq!(
            r("{{ nofunc 1 }}"),
            "ERR template line 1: function \"nofunc\" not defined"
        );
        assert_eq!(
            r("{{ .Series.Count }}"),
            "ERR template line 1: nil pointer evaluating Count"
        );
    }

    #[test]
    fn text_templates_print_verbatim() {
        assert_eq!(r("msg: {{ .Message }}"), "msg: a \"quoted\"\nline\\ 100%");
    }

    #[test]
    fn json_templates_escape_inside_strings_only() {
        let out = r("{\"m\": \"{{ .Message }}\", \"c\": {{ .Count }}, \"j\": {{ toJson .Message }}, \"k\": \"{{ json .Message }}\"}");
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(v["m"], "a \"quoted\"\nline\\ 100%");
        assert_eq!(v["c"], 3);
        assert_eq!(v["j"], v["m"]);
        assert_eq!(v["k"], v["m"]);
        // An escaped quote in the template text keeps the string open.
        let out = r("{\"m\": \"say \\\"{{ .Message }}\\\" now\"}");
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(v["m"], "say \"a \"quoted\"\nline\\ 100%\" now");
        // toJson of a struct uses JSON names.
        let out = r("{{ toJson .ObjectMeta }}");
        assert_eq!(out, r#"{"labels":{"app":"web"},"name":"ev.1"}"#);
    }

    #[test]
    fn hostile_templates_are_bounded() {
        let t = Template::parse(
            "{{ range 100000000 }}{{ range 100000000 }}x{{ end }}{{ end }}",
            None,
        )
        .unwrap();
        assert!(t.render(&data()).unwrap_err().msg.contains("steps"));
        let t = Template::parse(
            "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
            None,
        )
        .unwrap();
        assert!(t.render(&data()).unwrap_err().msg.contains("depth"));
        let t =
            Template::parse("{{ range 100000 }}{{ printf \"%0100d\" 1 }}{{ end }}", None).unwrap();
        let e = t
            .render_with(
                &data(),
                Limits {
                    max_output: 10_000,
                    ..Limits::default()
                },
            )
            .unwrap_err();
        assert!(e.msg.contains("output longer"), "{e}");
    }
}
