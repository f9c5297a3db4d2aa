//! Executor of a parsed template over a [`Value`], with Go `text/template` semantics and
//! builtins, plus `json`/`toJson` and contextual JSON escaping: in a JSON template, a value
//! printed inside a JSON string literal is JSON-escaped, so the body stays valid JSON
//! whatever the Event's message holds. Bounded: output size, steps and call depth.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::gotime::{format, local_zone, GoTime, Parts};
use super::parse::{Arg, Cmd, Node, Pipe, Tree};
use super::printf::{sprint, sprintf, sprintln};
use super::value::Value;

/// Bounds of one execution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_output: usize,
    pub max_steps: u64,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output: 1 << 20,
            max_steps: 200_000,
            max_depth: 32,
        }
    }
}

/// Why a template could not be executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {msg}")]
pub struct ExecError {
    pub line: usize,
    pub msg: String,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// The JSON lexical state of the output so far (only tracked for JSON templates).
#[derive(Debug, Clone, Copy, Default)]
struct JsonCtx {
    in_string: bool,
    escape: bool,
}

struct Exec<'a> {
    tree: &'a Tree,
    limits: Limits,
    out: String,
    steps: u64,
    depth: usize,
    vars: Vec<(String, Value)>,
    json: Option<JsonCtx>,
    line: usize,
}

/// Run `tree` over `data`. With `json_context`, values printed inside JSON string literals
/// are JSON-escaped.
pub fn execute(
    tree: &Tree,
    data: &Value,
    json_context: bool,
    limits: Limits,
) -> Result<String, ExecError> {
    let mut ex = Exec {
        tree,
        limits,
        out: String::new(),
        steps: 0,
        depth: 0,
        vars: vec![("$".to_string(), data.clone())],
        json: json_context.then(JsonCtx::default),
        line: 1,
    };
    ex.list(&tree.root, data)?;
    Ok(ex.out)
}

/// Escape `s` for the inside of a JSON string literal.
pub fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

impl Exec<'_> {
    fn fail<T>(&self, msg: impl Into<String>) -> Result<T, ExecError> {
        Err(ExecError {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn step(&mut self) -> Result<(), ExecError> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return self.fail(format!(
                "template took more than {} steps",
                self.limits.max_steps
            ));
        }
        Ok(())
    }

    fn check_output(&self) -> Result<(), ExecError> {
        if self.out.len() > self.limits.max_output {
            return self.fail(format!(
                "output longer than {} bytes",
                self.limits.max_output
            ));
        }
        Ok(())
    }

    /// Literal template text: copied, and the JSON state follows it.
    fn text(&mut self, s: &str) -> Result<(), ExecError> {
        self.out.push_str(s);
        if let Some(ctx) = self.json.as_mut() {
            track(ctx, s);
        }
        self.check_output()
    }

    /// A printed value.
    fn emit(&mut self, v: &Value) -> Result<(), ExecError> {
        let safe = matches!(v, Value::Safe(_));
        let s = v.to_go_string();
        match self.json {
            Some(ctx) if ctx.in_string && !safe => json_escape_into(&mut self.out, &s),
            Some(ctx) if ctx.in_string => self.out.push_str(&s),
            _ => return self.text(&s),
        }
        self.check_output()
    }

    fn list(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, ExecError> {
        for n in nodes {
            self.step()?;
            match self.node(n, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn scoped(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, ExecError> {
        let mark = self.vars.len();
        let r = self.list(nodes, dot);
        self.vars.truncate(mark);
        r
    }

    fn node(&mut self, n: &Node, dot: &Value) -> Result<Flow, ExecError> {
        match n {
            Node::Text(t) => self.text(t)?,
            Node::Action { line, pipe } => {
                self.line = *line;
                let v = self.pipe(pipe, dot)?;
                if pipe.decl.is_empty() {
                    self.emit(&v)?;
                }
            }
            Node::If {
                line,
                pipe,
                then,
                otherwise,
            } => {
                self.line = *line;
                let mark = self.vars.len();
                let v = self.pipe(pipe, dot)?;
                let r = if v.truth() {
                    self.list(then, dot)
                } else {
                    self.list(otherwise, dot)
                };
                self.vars.truncate(mark);
                return r;
            }
            Node::With {
                line,
                pipe,
                then,
                otherwise,
            } => {
                self.line = *line;
                let mark = self.vars.len();
                let v = self.pipe(pipe, dot)?;
                let r = if v.truth() {
                    self.list(then, &v)
                } else {
                    self.list(otherwise, dot)
                };
                self.vars.truncate(mark);
                return r;
            }
            Node::Range {
                line,
                pipe,
                body,
                otherwise,
            } => {
                self.line = *line;
                return self.range(pipe, body, otherwise, dot);
            }
            Node::Template { line, name, pipe } => {
                self.line = *line;
                let Some(body) = self.tree.defines.get(name) else {
                    return self.fail(format!("no such template {name:?}"));
                };
                let arg = match pipe {
                    Some(p) => self.pipe(p, dot)?,
                    None => Value::Nil,
                };
                self.depth += 1;
                if self.depth > self.limits.max_depth {
                    return self.fail(format!(
                        "exceeded maximum template depth ({})",
                        self.limits.max_depth
                    ));
                }
                // A called template sees only `$` = its argument.
                let saved = std::mem::replace(&mut self.vars, vec![("$".into(), arg.clone())]);
                let r = self.list(body, &arg);
                self.vars = saved;
                self.depth -= 1;
                r?;
            }
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
    ) -> Result<Flow, ExecError> {
        let mark = self.vars.len();
        // Evaluate without declaring: range declares per element.
        let plain = Pipe {
            decl: Vec::new(),
            assign: false,
            cmds: pipe.cmds.clone(),
        };
        let v = self.pipe(&plain, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                .collect(),
            Value::Map(m) => m.iter().map(|(k, x)| (Value::str(k), x.clone())).collect(),
            Value::Int(n) => (0..(*n).max(0))
                .take(self.limits.max_steps as usize)
                .map(|i| (Value::Int(i), Value::Int(i)))
                .collect(),
            Value::Nil | Value::Invalid => Vec::new(),
            other => {
                return self.fail(format!("range can't iterate over {}", other.to_go_string()))
            }
        };
        if items.is_empty() {
            return self.scoped(otherwise, dot);
        }
        for (k, x) in items {
            self.step()?;
            match pipe.decl.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), x.clone())),
                [i, v, ..] => {
                    self.vars.push((i.clone(), k));
                    self.vars.push((v.clone(), x.clone()));
                }
            }
            let flow = self.list(body, &x);
            self.vars.truncate(mark);
            match flow? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        Ok(Flow::Normal)
    }

    fn var(&self, name: &str) -> Result<Value, ExecError> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value, ExecError> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            self.step()?;
            last = Some(self.command(cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Invalid);
        for name in &pipe.decl {
            if pipe.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return self.fail(format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        cmd: &Cmd,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, ExecError> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match first {
            Arg::Func(name) => self.call(name, rest, dot, piped),
            // A field chain with arguments is a method call (`.LastTimestamp.Format "..."`).
            Arg::Dot(chain) | Arg::Var(_, chain)
                if !chain.is_empty() && (!rest.is_empty() || piped.is_some()) =>
            {
                let base = match first {
                    Arg::Var(v, _) => self.var(v)?,
                    _ => dot.clone(),
                };
                let recv = self.fields(base, &chain[..chain.len() - 1])?;
                let mut args = Vec::new();
                for a in rest {
                    args.push(self.arg(a, dot)?);
                }
                args.extend(piped);
                self.method(&recv, &chain[chain.len() - 1], &args)
            }
            _ => {
                if !rest.is_empty() || piped.is_some() {
                    return self.fail(format!(
                        "can't give argument to non-function {}",
                        describe(first)
                    ));
                }
                self.arg(first, dot)
            }
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, ExecError> {
        self.step()?;
        match a {
            Arg::Dot(chain) => self.fields(dot.clone(), chain),
            Arg::Var(v, chain) => {
                let base = self.var(v)?;
                self.fields(base, chain)
            }
            Arg::Func(name) => self.call(name, &[], dot, None),
            Arg::Str(s) => Ok(Value::str(s)),
            Arg::Int(i) => Ok(Value::Int(*i)),
            Arg::Float(f) => Ok(Value::Float(*f)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => self.fail("nil is not a command"),
            Arg::Sub(pipe, chain) => {
                let mark = self.vars.len();
                let v = self.pipe(pipe, dot);
                self.vars.truncate(mark);
                self.fields(v?, chain)
            }
        }
    }

    fn fields(&mut self, mut v: Value, chain: &[String]) -> Result<Value, ExecError> {
        for name in chain {
            self.step()?;
            v = match &v {
                Value::Struct(s) => match s.get(name) {
                    Some(x) => x.clone(),
                    None => {
                        return self.fail(format!(
                            "can't evaluate field {name} in type {}",
                            s.type_name
                        ))
                    }
                },
                Value::Map(m) => m.get(name).cloned().unwrap_or(Value::Invalid),
                Value::Time(_) => self.method(&v, name, &[])?,
                Value::Nil => return self.fail(format!("nil pointer evaluating {name}")),
                Value::Invalid => return self.fail(format!("nil data; no entry for key {name:?}")),
                other => {
                    return self.fail(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    ))
                }
            };
        }
        Ok(v)
    }

    /// Methods of `time.Time` (the only methods Event fields have that templates use).
    fn method(&mut self, recv: &Value, name: &str, args: &[Value]) -> Result<Value, ExecError> {
        let Value::Time(t) = recv else {
            return match recv {
                Value::Struct(s) => self.fail(format!(
                    "can't evaluate field {name} in type {}",
                    s.type_name
                )),
                other => self.fail(format!("can't call method {name} on {}", other.type_name())),
            };
        };
        let want = |n: usize, ex: &Self| -> Result<(), ExecError> {
            if args.len() != n {
                return ex.fail(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ));
            }
            Ok(())
        };
        let parts = || Parts::of(t, local_zone());
        Ok(match name {
            "Format" => {
                want(1, self)?;
                let Value::Str(layout) = &args[0] else {
                    return self.fail("Format: layout is not a string");
                };
                Value::str(&format(t, layout, local_zone()))
            }
            "String" => {
                want(0, self)?;
                Value::Str(Rc::from(recv.to_go_string()))
            }
            "Unix" => {
                want(0, self)?;
                Value::Int(t.ts.map(|ts| ts.as_second()).unwrap_or(-62_135_596_800))
            }
            "UnixMilli" => {
                want(0, self)?;
                Value::Int(
                    t.ts.map(|ts| ts.as_millisecond())
                        .unwrap_or(-62_135_596_800_000),
                )
            }
            "IsZero" => {
                want(0, self)?;
                Value::Bool(t.ts.is_none())
            }
            "UTC" => {
                want(0, self)?;
                Value::Time(GoTime {
                    ts: t.ts,
                    utc: true,
                })
            }
            "Local" => {
                want(0, self)?;
                Value::Time(GoTime {
                    ts: t.ts,
                    utc: t.ts.is_none(),
                })
            }
            "Year" => Value::Int(parts().year),
            "Month" => Value::Int(i64::from(parts().month)),
            "Day" => Value::Int(i64::from(parts().day)),
            "Hour" => Value::Int(i64::from(parts().hour)),
            "Minute" => Value::Int(i64::from(parts().minute)),
            "Second" => Value::Int(i64::from(parts().second)),
            "Nanosecond" => Value::Int(i64::from(parts().nanos)),
            "YearDay" => Value::Int(i64::from(parts().yday)),
            _ => return self.fail(format!("can't evaluate field {name} in type time.Time")),
        })
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, ExecError> {
        // and/or evaluate lazily and return the deciding operand.
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(piped.is_some());
            if n == 0 {
                return self.fail(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut last = Value::Invalid;
            for a in args {
                last = self.arg(a, dot)?;
                if (name == "and") != last.truth() {
                    return Ok(last);
                }
            }
            if let Some(p) = piped {
                last = p;
            }
            return Ok(last);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(a, dot)?);
        }
        vals.extend(piped);
        let n = vals.len();
        let arity = |want: usize, ex: &Self| -> Result<(), ExecError> {
            if n != want {
                return ex.fail(format!(
                    "wrong number of args for {name}: want {want} got {n}"
                ));
            }
            Ok(())
        };
        Ok(match name {
            "not" => {
                arity(1, self)?;
                Value::Bool(!vals[0].truth())
            }
            "len" => {
                arity(1, self)?;
                Value::Int(match &vals[0] {
                    Value::Str(s) | Value::Safe(s) => s.len() as i64,
                    Value::List(l) => l.len() as i64,
                    Value::Map(m) => m.len() as i64,
                    Value::Nil => 0,
                    other => {
                        return self.fail(format!(
                            "error calling len: len of type {}",
                            other.type_name()
                        ))
                    }
                })
            }
            "index" => {
                if n == 0 {
                    return self.fail("wrong number of args for index: want at least 1 got 0");
                }
                let mut v = vals[0].clone();
                for k in &vals[1..] {
                    v = match (&v, k) {
                        (Value::Map(m), Value::Str(key)) => {
                            m.get(&**key).cloned().unwrap_or(Value::str(""))
                        }
                        (Value::Nil, Value::Str(_)) => Value::str(""),
                        (Value::List(l), Value::Int(i)) => {
                            match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                                Some(x) => x.clone(),
                                None => {
                                    return self.fail(format!(
                                        "error calling index: index out of range: {i}"
                                    ))
                                }
                            }
                        }
                        (Value::Str(s), Value::Int(i)) => {
                            match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                                Some(b) => Value::Int(i64::from(*b)),
                                None => {
                                    return self.fail(format!(
                                        "error calling index: index out of range: {i}"
                                    ))
                                }
                            }
                        }
                        (a, b) => {
                            return self.fail(format!(
                                "error calling index: cannot index {} with {}",
                                a.type_name(),
                                b.type_name()
                            ))
                        }
                    };
                }
                v
            }
            "slice" => {
                if n == 0 || n > 4 {
                    return self.fail(format!("wrong number of args for slice: got {n}"));
                }
                let idx: Vec<usize> = vals[1..]
                    .iter()
                    .map(|x| match x {
                        Value::Int(i) if *i >= 0 => Ok(*i as usize),
                        _ => self.fail("error calling slice: bad index"),
                    })
                    .collect::<Result<_, _>>()?;
                match &vals[0] {
                    Value::Str(s) => {
                        let lo = idx.first().copied().unwrap_or(0);
                        let hi = idx.get(1).copied().unwrap_or(s.len());
                        if idx.len() > 2
                            || lo > hi
                            || hi > s.len()
                            || !s.is_char_boundary(lo)
                            || !s.is_char_boundary(hi)
                        {
                            return self.fail("error calling slice: index out of range");
                        }
                        Value::str(&s[lo..hi])
                    }
                    Value::List(l) => {
                        let lo = idx.first().copied().unwrap_or(0);
                        let hi = idx.get(1).copied().unwrap_or(l.len());
                        if lo > hi || hi > l.len() {
                            return self.fail("error calling slice: index out of range");
                        }
                        Value::List(Rc::new(l[lo..hi].to_vec()))
                    }
                    other => {
                        return self.fail(format!(
                            "error calling slice: can't slice item of type {}",
                            other.type_name()
                        ))
                    }
                }
            }
            "print" => Value::Str(Rc::from(sprint(&vals))),
            "println" => Value::Str(Rc::from(sprintln(&vals))),
            "printf" => {
                let Some(Value::Str(f)) = vals.first() else {
                    return self.fail("printf: format is not a string");
                };
                let f = f.clone();
                Value::Str(Rc::from(sprintf(&f, &vals[1..])))
            }
            "html" => Value::Str(Rc::from(html_escape(&sprint(&vals)))),
            "js" => Value::Str(Rc::from(js_escape(&sprint(&vals)))),
            "urlquery" => Value::Str(Rc::from(query_escape(&sprint(&vals)))),
            "json" => {
                arity(1, self)?;
                Value::Safe(Rc::from(match &vals[0] {
                    Value::Str(s) | Value::Safe(s) => {
                        let mut o = String::with_capacity(s.len());
                        json_escape_into(&mut o, s);
                        o
                    }
                    other => other.to_json().to_string(),
                }))
            }
            "toJson" => {
                arity(1, self)?;
                Value::Safe(Rc::from(vals[0].to_json().to_string()))
            }
            "eq" => {
                if n < 2 {
                    return self.fail("missing argument for comparison");
                }
                let mut any = false;
                for other in &vals[1..] {
                    if self.compare(&vals[0], other)? == std::cmp::Ordering::Equal {
                        any = true;
                        break;
                    }
                }
                Value::Bool(any)
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                arity(2, self)?;
                use std::cmp::Ordering::*;
                let o = self.compare(&vals[0], &vals[1])?;
                Value::Bool(match name {
                    "ne" => o != Equal,
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                })
            }
            "call" => return self.fail("error calling call: no functions in this data"),
            _ => return self.fail(format!("function {name:?} not defined")),
        })
    }

    fn compare(&self, a: &Value, b: &Value) -> Result<std::cmp::Ordering, ExecError> {
        use std::cmp::Ordering;
        Ok(match (a, b) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Less),
            (Value::Int(x), Value::Float(y)) => {
                (*x as f64).partial_cmp(y).unwrap_or(Ordering::Less)
            }
            (Value::Float(x), Value::Int(y)) => {
                x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Less)
            }
            (Value::Str(x) | Value::Safe(x), Value::Str(y) | Value::Safe(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Time(x), Value::Time(y)) => x.ts.cmp(&y.ts),
            (Value::Nil, Value::Nil) => Ordering::Equal,
            (Value::Nil, _) | (_, Value::Nil) => Ordering::Less,
            (x, y) => {
                return self.fail(format!(
                    "error calling comparison: incompatible types for comparison ({} and {})",
                    x.type_name(),
                    y.type_name()
                ))
            }
        })
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Str(s) => format!("{s:?}"),
        Arg::Int(i) => i.to_string(),
        Arg::Float(f) => f.to_string(),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Dot(c) if c.is_empty() => ".".into(),
        Arg::Dot(c) => format!(".{}", c.join(".")),
        Arg::Var(v, c) => format!(
            "{v}{}",
            c.iter().map(|f| format!(".{f}")).collect::<String>()
        ),
        Arg::Func(f) => f.clone(),
        Arg::Sub(..) => "(pipeline)".into(),
    }
}

fn track(ctx: &mut JsonCtx, s: &str) {
    for b in s.bytes() {
        if ctx.in_string {
            if ctx.escape {
                ctx.escape = false;
            } else if b == b'\\' {
                ctx.escape = true;
            } else if b == b'"' {
                ctx.in_string = false;
            }
        } else if b == b'"' {
            ctx.in_string = true;
        }
    }
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&#39;"),
            '"' => o.push_str("&#34;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// Build a map value.
pub fn map_value<'a>(it: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let m: BTreeMap<String, Value> = it
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::str(v)))
        .collect();
    Value::Map(Rc::new(m))
}
