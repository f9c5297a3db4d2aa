//! Parser of Go `text/template` syntax (pure): text and `{{ }}` actions with trim markers
//! `{{-`/`-}}`, comments, pipelines, variables, `if/else if/with/range/else/end`,
//! `break/continue`, `define/template/block`, string/raw/char/number/bool/nil literals.
//! Hostile input is bounded: template size and nesting depth.

use std::collections::HashMap;

/// Longest template accepted.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Deepest nesting of control structures and parentheses.
pub const MAX_NESTING: usize = 64;

/// Why a template does not parse. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

/// A parsed template: the main list and the `define`d ones.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    /// `{{ pipeline }}`: output (unless the pipeline declares variables).
    Action {
        line: usize,
        pipe: Pipe,
    },
    If {
        line: usize,
        pipe: Pipe,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        line: usize,
        pipe: Pipe,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        line: usize,
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Template {
        line: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break {
        line: usize,
    },
    Continue {
        line: usize,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Pipe {
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    /// `.` followed by a field chain (empty chain = dot itself).
    Dot(Vec<String>),
    /// `$name.Field...` (`$` alone is the root data).
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `( pipeline ).Field...`
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Field(String),
    Dot,
    Var(String),
    Ident(String),
    Str(String),
    Char(i64),
    Num(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    /// Whitespace inside an action (separates operands; `.A .B` vs `.A.B`).
    Space,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    toks: Vec<(Tok, usize)>,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        msg: msg.into(),
    })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn bump(&mut self, n: usize) {
        self.line += self.src[self.pos..self.pos + n].matches('\n').count();
        self.pos += n;
    }

    fn run(mut self) -> Result<Vec<(Tok, usize)>, ParseError> {
        let mut trim_next = false;
        while self.pos < self.src.len() {
            let rest = self.rest();
            let text_end = rest.find("{{").unwrap_or(rest.len());
            let mut text = &rest[..text_end];
            let trim_left =
                rest[text_end..].starts_with("{{-") && rest[text_end + 3..].starts_with(is_space);
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            if trim_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.toks.push((Tok::Text(text.to_string()), self.line));
            }
            self.bump(text_end);
            if self.pos >= self.src.len() {
                break;
            }
            // At "{{".
            let open_line = self.line;
            self.bump(if trim_left { 3 } else { 2 });
            // Comment: {{/* ... */}} (with optional trim markers around it).
            let r = self.rest().trim_start_matches(is_space);
            if r.starts_with("/*") {
                let skip = self.rest().len() - r.len();
                self.bump(skip);
                let Some(end) = self.rest().find("*/") else {
                    return err(open_line, "unclosed comment");
                };
                self.bump(end + 2);
                let r = self.rest();
                let (n, trim) = if r.starts_with(" -}}") {
                    (4, true)
                } else if r.starts_with("}}") {
                    (2, false)
                } else {
                    return err(self.line, "comment ends before closing delimiter");
                };
                self.bump(n);
                trim_next = trim;
                continue;
            }
            self.toks.push((Tok::Open, open_line));
            trim_next = self.action()?;
        }
        Ok(self.toks)
    }

    /// Lex one action up to and including `}}`; returns whether it ended with `-}}`.
    fn action(&mut self) -> Result<bool, ParseError> {
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return err(self.line, "unclosed action");
            };
            let line = self.line;
            if rest.starts_with("}}") {
                self.bump(2);
                self.toks.push((Tok::Close, line));
                return Ok(false);
            }
            if is_space(c) {
                let n = rest.len() - rest.trim_start_matches(is_space).len();
                let after = &rest[n..];
                if after.starts_with("-}}") {
                    self.bump(n + 3);
                    self.toks.push((Tok::Close, line));
                    return Ok(true);
                }
                self.bump(n);
                self.toks.push((Tok::Space, line));
                continue;
            }
            match c {
                '|' => self.one(Tok::Pipe, 1),
                '(' => self.one(Tok::LParen, 1),
                ')' => self.one(Tok::RParen, 1),
                ',' => self.one(Tok::Comma, 1),
                ':' if rest.starts_with(":=") => self.one(Tok::Declare, 2),
                '=' => self.one(Tok::Assign, 1),
                '"' => {
                    let (s, n) = unquote(rest).map_err(|m| ParseError { line, msg: m })?;
                    self.bump(n);
                    self.toks.push((Tok::Str(s), line));
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return err(line, "unterminated raw quoted string");
                    };
                    let s = rest[1..1 + end].to_string();
                    self.bump(end + 2);
                    self.toks.push((Tok::Str(s), line));
                }
                '\'' => {
                    let (v, n) = unquote_char(rest).map_err(|m| ParseError { line, msg: m })?;
                    self.bump(n);
                    self.toks.push((Tok::Char(v), line));
                }
                '.' => {
                    let name: String = rest[1..].chars().take_while(|c| is_alnum(*c)).collect();
                    if name.is_empty() {
                        if rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                            let n = number_len(rest);
                            let num = rest[..n].to_string();
                            self.bump(n);
                            self.toks.push((Tok::Num(num), line));
                        } else {
                            self.one(Tok::Dot, 1);
                        }
                    } else {
                        let n = 1 + name.len();
                        self.bump(n);
                        self.toks.push((Tok::Field(name), line));
                    }
                }
                '$' => {
                    let name: String = rest[1..].chars().take_while(|c| is_alnum(*c)).collect();
                    let n = 1 + name.len();
                    self.bump(n);
                    self.toks.push((Tok::Var(format!("${name}")), line));
                }
                c if c == '-' || c == '+' || c.is_ascii_digit() => {
                    let n = number_len(rest);
                    if n == 0 || (n == 1 && !c.is_ascii_digit()) {
                        return err(line, format!("bad number syntax: {:?}", &rest[..1]));
                    }
                    let num = rest[..n].to_string();
                    self.bump(n);
                    self.toks.push((Tok::Num(num), line));
                }
                c if is_alnum(c) => {
                    let name: String = rest.chars().take_while(|c| is_alnum(*c)).collect();
                    let n = name.len();
                    self.bump(n);
                    self.toks.push((Tok::Ident(name), line));
                }
                other => return err(line, format!("unexpected {other:?} in action")),
            }
        }
    }

    fn one(&mut self, t: Tok, n: usize) {
        let line = self.line;
        self.bump(n);
        self.toks.push((t, line));
    }
}

fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    while i < b.len() {
        let c = b[i];
        let prev = if i > 0 { b[i - 1] } else { 0 };
        let ok = c.is_ascii_alphanumeric()
            || c == b'.'
            || c == b'_'
            || ((c == b'+' || c == b'-')
                && (prev == b'e' || prev == b'E' || prev == b'p' || prev == b'P'));
        if !ok {
            break;
        }
        i += 1;
    }
    i
}

/// A Go interpreted string literal at the start of `s`: (value, bytes consumed).
fn unquote(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\n' => return Err("unterminated quoted string".into()),
            '\\' => {
                let (_, e) = it.next().ok_or("unterminated quoted string")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => return Err("unknown escape sequence \\'".into()),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v = 0u32;
                        for _ in 0..n {
                            let (_, h) = it.next().ok_or("unterminated quoted string")?;
                            v = v * 16 + h.to_digit(16).ok_or("invalid hex escape")?;
                        }
                        if e == 'x' {
                            // Go: a byte; bytes >= 0x80 would be invalid UTF-8 on their own.
                            out.push(char::from_u32(v).filter(|_| v < 0x80).unwrap_or('\u{FFFD}'));
                        } else {
                            out.push(
                                char::from_u32(v).ok_or("escape is invalid Unicode code point")?,
                            );
                        }
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, o) = it.next().ok_or("unterminated quoted string")?;
                            v = v * 8 + o.to_digit(8).ok_or("invalid octal escape")?;
                        }
                        out.push(char::from_u32(v).filter(|_| v < 0x80).unwrap_or('\u{FFFD}'));
                    }
                    other => return Err(format!("unknown escape sequence \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

fn unquote_char(s: &str) -> Result<(i64, usize), String> {
    let end = s[1..].find('\'').ok_or("unterminated character constant")? + 1;
    let inner = &s[1..end];
    let v = if let Some(esc) = inner.strip_prefix('\\') {
        let (txt, _) = unquote(&format!("\"\\{esc}\""))?;
        txt.chars().next().ok_or("empty character constant")? as i64
    } else {
        let mut cs = inner.chars();
        let c = cs.next().ok_or("empty character constant")?;
        if cs.next().is_some() {
            return Err("malformed character constant".into());
        }
        c as i64
    };
    Ok((v, end + 1))
}

fn parse_number(s: &str, line: usize) -> Result<Arg, ParseError> {
    let clean = s.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        i64::from_str_radix(b, 2).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(v) = int {
        return Ok(Arg::Int(if neg { -v } else { v }));
    }
    match body.parse::<f64>() {
        Ok(f) if !body.starts_with(|c: char| c.is_alphabetic()) => {
            Ok(Arg::Float(if neg { -f } else { f }))
        }
        _ => err(line, format!("bad number syntax: {s:?}")),
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
    defines: HashMap<String, Vec<Node>>,
    range_depth: usize,
}

/// What ended a list.
#[allow(clippy::enum_variant_names)]
enum End {
    Eof,
    End,
    Else,
    /// `{{else if ...}}` / `{{else with ...}}`: the keyword follows.
    ElseChain(String),
}

/// Parse a template.
pub fn parse(src: &str) -> Result<Tree, ParseError> {
    if src.len() > MAX_TEMPLATE_BYTES {
        return err(
            1,
            format!("template longer than {MAX_TEMPLATE_BYTES} bytes"),
        );
    }
    let toks = Lexer {
        src,
        pos: 0,
        line: 1,
        toks: Vec::new(),
    }
    .run()?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        defines: HashMap::new(),
        range_depth: 0,
    };
    let (root, end, line) = p.list(true)?;
    match end {
        End::Eof => Ok(Tree {
            root,
            defines: p.defines,
        }),
        End::End => err(line, "unexpected {{end}}"),
        End::Else | End::ElseChain(_) => err(line, "unexpected {{else}}"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }

    fn line(&self) -> usize {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map(|t| t.1)
            .unwrap_or(1)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|t| t.0.clone());
        self.i += 1;
        t
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.i += 1;
        }
    }

    fn expect_close(&mut self, ctx: &str) -> Result<(), ParseError> {
        self.skip_space();
        match self.next() {
            Some(Tok::Close) => Ok(()),
            _ => err(self.line(), format!("unexpected input in {ctx}")),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(self.line(), format!("nesting deeper than {MAX_NESTING}"));
        }
        Ok(())
    }

    /// Nodes up to `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, End, usize), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let line = self.line();
            match self.next() {
                None => return Ok((nodes, End::Eof, line)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    self.skip_space();
                    let line = self.line();
                    let kw = match self.peek() {
                        Some(Tok::Ident(k)) => Some(k.clone()),
                        _ => None,
                    };
                    match kw.as_deref() {
                        Some("end") => {
                            self.i += 1;
                            self.expect_close("end")?;
                            return Ok((nodes, End::End, line));
                        }
                        Some("else") => {
                            self.i += 1;
                            self.skip_space();
                            if let Some(Tok::Ident(k)) = self.peek() {
                                if k == "if" || k == "with" {
                                    let k = k.clone();
                                    self.i += 1;
                                    return Ok((nodes, End::ElseChain(k), line));
                                }
                            }
                            self.expect_close("else")?;
                            return Ok((nodes, End::Else, line));
                        }
                        Some("if") | Some("with") | Some("range") => {
                            self.i += 1;
                            let k = kw.unwrap_or_default();
                            nodes.push(self.control(&k, line)?);
                        }
                        Some("define") => {
                            self.i += 1;
                            if !top {
                                return err(line, "define not at top level");
                            }
                            let name = self.name_literal("define")?;
                            self.expect_close("define")?;
                            let (body, end, l) = self.list(false)?;
                            if !matches!(end, End::End) {
                                return err(l, "define without {{end}}");
                            }
                            self.defines.insert(name, body);
                        }
                        Some("block") => {
                            self.i += 1;
                            let name = self.name_literal("block")?;
                            let pipe = self.pipeline(false, "block")?;
                            let (body, end, l) = self.list(false)?;
                            if !matches!(end, End::End) {
                                return err(l, "block without {{end}}");
                            }
                            self.defines.insert(name.clone(), body);
                            nodes.push(Node::Template {
                                line,
                                name,
                                pipe: Some(pipe),
                            });
                        }
                        Some("template") => {
                            self.i += 1;
                            let name = self.name_literal("template")?;
                            self.skip_space();
                            let pipe = if self.peek() == Some(&Tok::Close) {
                                self.i += 1;
                                None
                            } else {
                                Some(self.pipeline(false, "template")?)
                            };
                            nodes.push(Node::Template { line, name, pipe });
                        }
                        Some(k @ ("break" | "continue")) => {
                            let is_break = k == "break";
                            self.i += 1;
                            if self.range_depth == 0 {
                                return err(line, format!("{{{{{k}}}}} outside {{{{range}}}}"));
                            }
                            self.expect_close(if is_break { "break" } else { "continue" })?;
                            nodes.push(if is_break {
                                Node::Break { line }
                            } else {
                                Node::Continue { line }
                            });
                        }
                        _ => {
                            let pipe = self.pipeline(true, "command")?;
                            nodes.push(Node::Action { line, pipe });
                        }
                    }
                }
                Some(_) => return err(line, "unexpected token"),
            }
        }
    }

    fn name_literal(&mut self, ctx: &str) -> Result<String, ParseError> {
        self.skip_space();
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => err(self.line(), format!("{ctx}: expected a quoted name")),
        }
    }

    fn control(&mut self, kw: &str, line: usize) -> Result<Node, ParseError> {
        self.enter()?;
        let pipe = self.pipeline(kw == "range", kw)?;
        if kw == "range" {
            self.range_depth += 1;
        }
        let (then, end, l) = self.list(false)?;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let otherwise = match end {
            End::End => Vec::new(),
            End::Else => {
                let (o, end, l) = self.list(false)?;
                if !matches!(end, End::End) {
                    return err(l, format!("expected {{{{end}}}} for {{{{{kw}}}}}"));
                }
                o
            }
            End::ElseChain(k) => {
                if kw == "range" {
                    return err(l, "range can't use else if/with");
                }
                // `{{else if x}}` = `{{else}}{{if x}}...{{end}}` sharing the one {{end}}.
                vec![self.control(&k, l)?]
            }
            End::Eof => {
                return err(
                    l,
                    format!("unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"),
                )
            }
        };
        self.depth -= 1;
        Ok(match kw {
            "if" => Node::If {
                line,
                pipe,
                then,
                otherwise,
            },
            "with" => Node::With {
                line,
                pipe,
                then,
                otherwise,
            },
            _ => Node::Range {
                line,
                pipe,
                body: then,
                otherwise,
            },
        })
    }

    /// A pipeline up to `}}` (consumed).
    fn pipeline(&mut self, allow_decl: bool, ctx: &str) -> Result<Pipe, ParseError> {
        let mut pipe = Pipe::default();
        self.skip_space();
        // Declarations: `$x :=`, `$x =`, `$i, $v :=`.
        let save = self.i;
        let mut vars = Vec::new();
        while let Some(Tok::Var(v)) = self.peek().cloned() {
            self.i += 1;
            self.skip_space();
            vars.push(v);
            match self.peek() {
                Some(Tok::Comma) if allow_decl && vars.len() < 2 => {
                    self.i += 1;
                    self.skip_space();
                    continue;
                }
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    pipe.assign = self.peek() == Some(&Tok::Assign);
                    self.i += 1;
                    pipe.decl = std::mem::take(&mut vars);
                    break;
                }
                _ => {
                    vars.clear();
                    self.i = save;
                    break;
                }
            }
        }
        if pipe.decl.len() > 1 && ctx != "range" {
            return err(self.line(), "too many declarations in command");
        }
        loop {
            self.skip_space();
            let cmd = self.command(ctx)?;
            pipe.cmds.push(cmd);
            self.skip_space();
            match self.next() {
                Some(Tok::Pipe) => continue,
                Some(Tok::Close) => break,
                _ => return err(self.line(), format!("unexpected input in {ctx}")),
            }
        }
        Ok(pipe)
    }

    /// Operands up to `|`, `)` or `}}` (not consumed).
    fn command(&mut self, ctx: &str) -> Result<Cmd, ParseError> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None | Some(Tok::Pipe) | Some(Tok::Close) | Some(Tok::RParen) => break,
                _ => args.push(self.operand()?),
            }
        }
        if args.is_empty() {
            return err(self.line(), format!("missing value for {ctx}"));
        }
        Ok(Cmd { args })
    }

    fn chain(&mut self) -> Vec<String> {
        let mut fields = Vec::new();
        while let Some(Tok::Field(f)) = self.peek().cloned() {
            self.i += 1;
            fields.push(f);
        }
        fields
    }

    fn operand(&mut self) -> Result<Arg, ParseError> {
        let line = self.line();
        let tok = self.next();
        Ok(match tok {
            Some(Tok::Dot) => {
                if matches!(self.peek(), Some(Tok::Field(_))) {
                    return err(line, "unexpected . after term \".\"");
                }
                Arg::Dot(Vec::new())
            }
            Some(Tok::Field(f)) => {
                let mut c = vec![f];
                c.extend(self.chain());
                Arg::Dot(c)
            }
            Some(Tok::Var(v)) => {
                let c = self.chain();
                Arg::Var(v, c)
            }
            Some(Tok::Str(s)) => Arg::Str(s),
            Some(Tok::Char(c)) => Arg::Int(c),
            Some(Tok::Num(n)) => parse_number(&n, line)?,
            Some(Tok::Ident(id)) => match id.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Func(id),
            },
            Some(Tok::LParen) => {
                self.enter()?;
                let mut pipe = Pipe::default();
                loop {
                    self.skip_space();
                    pipe.cmds.push(self.command("parenthesized pipeline")?);
                    self.skip_space();
                    match self.next() {
                        Some(Tok::Pipe) => continue,
                        Some(Tok::RParen) => break,
                        _ => return err(self.line(), "unclosed left paren"),
                    }
                }
                self.depth -= 1;
                let c = self.chain();
                Arg::Sub(Box::new(pipe), c)
            }
            _ => return err(line, "unexpected token in operand"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_shapes() {
        let t = parse(
            "a {{- .Type -}} b {{/* c */}}{{ if eq .Type \"Warning\" }}W{{ else if .X }}x{{ else }}N{{ end }}\
             {{ range $i, $v := .L }}{{ $i }}{{ break }}{{ end }}{{ with $x := .A.B }}{{ $x }}{{ end }}\
             {{ define \"t\" }}T{{ end }}{{ template \"t\" . }}{{ (printf \"%d\" 1) | len }}",
        )
        .unwrap();
        assert!(matches!(&t.root[0], Node::Text(s) if s == "a"));
        assert!(matches!(&t.root[2], Node::Text(s) if s == "b "));
        assert!(t.defines.contains_key("t"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("ok\n{{ if .X }}\nno end").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("without {{end}}"), "{e}");
        assert!(parse("{{ .X ").is_err());
        assert!(parse("{{ \"abc }}").is_err());
        assert!(parse("{{ end }}").is_err());
        assert!(parse("{{ break }}").is_err());
        assert!(parse("{{ 1x }}").is_err());
        assert!(parse("{{ ( }}").is_err());
        let deep = "{{ if 1 }}".repeat(100);
        assert!(parse(&deep).unwrap_err().msg.contains("nesting"));
        let parens = format!("{{{{ {} 1 {} }}}}", "(".repeat(200), ")".repeat(200));
        assert!(parse(&parens).is_err());
    }

    #[test]
    fn literals() {
        let t =
            parse(r#"{{ "a\n\u00e9\x41" }}{{ `r\n` }}{{ 'x' }}{{ 0x1F }}{{ -1.5e3 }}"#).unwrap();
        let args: Vec<&Arg> = t
            .root
            .iter()
            .map(|n| match n {
                Node::Action { pipe, .. } => &pipe.cmds[0].args[0],
                _ => panic!(),
            })
            .collect();
        assert!(matches!(args[0], Arg::Str(s) if s == "a\néA"));
        assert!(matches!(args[1], Arg::Str(s) if s == "r\\n"));
        assert!(matches!(args[2], Arg::Int(120)));
        assert!(matches!(args[3], Arg::Int(31)));
        assert!(matches!(args[4], Arg::Float(f) if *f == -1500.0));
    }
}
