//! The part of Go's `fmt` that templates reach through `printf`, `print` and `println`:
//! verbs `v s d q t f F e E g G x X o b c U T %`, flags `-+# 0`, width and precision, and
//! Go's error forms (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA …)`).

use super::value::{go_float, Value};
use crate::state::go_quote;

/// Go's `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !is_string(a) && !is_string(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&a.to_go_string());
    }
    out
}

/// Go's `fmt.Sprintln`: always spaces, and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out: Vec<String> = args.iter().map(Value::to_go_string).collect();
    let mut s = out.join(" ");
    out.clear();
    s.push('\n');
    s
}

fn is_string(v: &Value) -> bool {
    matches!(v, Value::Str(_) | Value::Safe(_))
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0usize;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
            let mut n: Option<usize> = None;
            while let Some(&(_, d)) = chars.peek() {
                match d.to_digit(10) {
                    Some(v) => {
                        n = Some(
                            n.unwrap_or(0)
                                .saturating_mul(10)
                                .saturating_add(v as usize)
                                .min(10_000),
                        );
                        chars.next();
                    }
                    None => break,
                }
            }
            n
        };
        spec.width = num(&mut chars);
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            spec.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = match format_one(verb, &spec, arg) {
            Some(s) => s,
            None => {
                out.push_str(&format!(
                    "%!{verb}({}={})",
                    arg.type_name(),
                    arg.to_go_string()
                ));
                continue;
            }
        };
        pad_into(&mut out, &body, &spec, verb);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.to_go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn pad_into(out: &mut String, body: &str, spec: &Spec, verb: char) {
    let len = body.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(body);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero
        && matches!(
            verb,
            'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'x' | 'X' | 'o' | 'b'
        )
    {
        // Zero padding goes after the sign.
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), &body[1..]),
            _ => (None, body),
        };
        if let Some(s) = sign {
            out.push(s);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn signed(s: String, negative: bool, spec: &Spec) -> String {
    if negative {
        format!("-{s}")
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> Option<String> {
    match (verb, arg) {
        ('T', a) => Some(a.type_name().to_string()),
        ('v', Value::Str(s) | Value::Safe(s)) if spec.sharp => Some(go_quote(s)),
        ('v', Value::Int(i)) => Some(signed(i.unsigned_abs().to_string(), *i < 0, spec)),
        ('v', Value::Float(f)) => Some(signed(go_float(f.abs(), 'g', spec.prec), *f < 0.0, spec)),
        ('v', a) => Some(a.to_go_string()),
        ('s', Value::Str(s) | Value::Safe(s)) => Some(truncate(s, spec.prec)),
        (
            's',
            a @ (Value::Time(_)
            | Value::Struct(_)
            | Value::Map(_)
            | Value::List(_)
            | Value::Nil
            | Value::Invalid),
        ) => Some(truncate(&a.to_go_string(), spec.prec)),
        ('q', Value::Str(s) | Value::Safe(s)) => Some(if spec.sharp && !s.contains('`') {
            format!("`{s}`")
        } else {
            go_quote(s)
        }),
        ('q', Value::Int(i)) => char::from_u32(*i as u32).map(|c| format!("'{}'", quote_char(c))),
        ('t', Value::Bool(b)) => Some(b.to_string()),
        ('d', Value::Int(i)) => Some(signed(i.unsigned_abs().to_string(), *i < 0, spec)),
        ('b', Value::Int(i)) => Some(signed(format!("{:b}", i.unsigned_abs()), *i < 0, spec)),
        ('o', Value::Int(i)) => Some(signed(
            format!(
                "{}{:o}",
                if spec.sharp { "0" } else { "" },
                i.unsigned_abs()
            ),
            *i < 0,
            spec,
        )),
        ('x' | 'X', Value::Int(i)) => {
            let mut s = format!("{:x}", i.unsigned_abs());
            if spec.sharp {
                s = format!("0x{s}");
            }
            if verb == 'X' {
                s = s.to_uppercase();
            }
            Some(signed(s, *i < 0, spec))
        }
        ('x' | 'X', Value::Str(s) | Value::Safe(s)) => {
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            Some(if verb == 'X' { hex.to_uppercase() } else { hex })
        }
        ('c', Value::Int(i)) => Some(char::from_u32(*i as u32).unwrap_or('\u{FFFD}').to_string()),
        ('U', Value::Int(i)) => Some(format!("U+{:04X}", i)),
        ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Value::Float(f)) => {
            let v = verb.to_ascii_lowercase();
            let s = go_float(f.abs(), v, spec.prec);
            let s = if verb == 'G' || verb == 'E' {
                s.to_uppercase()
            } else {
                s
            };
            Some(signed(s, *f < 0.0, spec))
        }
        _ => None,
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn quote_char(c: char) -> String {
    match c {
        '\'' => "\\'".into(),
        '\\' => "\\\\".into(),
        '\n' => "\\n".into(),
        '\t' => "\\t".into(),
        '\r' => "\\r".into(),
        c if (c as u32) < 0x20 || c == '\u{7f}' => format!("\\x{:02x}", c as u32),
        c => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    #[test]
    fn verbs_like_go() {
        assert_eq!(sprintf("%s=%d", &[s("a"), Value::Int(5)]), "a=5");
        assert_eq!(sprintf("%5s|%-5s|", &[s("ab"), s("cd")]), "   ab|cd   |");
        assert_eq!(
            sprintf(
                "%05d %+d %x %X %#x",
                &[
                    Value::Int(-42),
                    Value::Int(3),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(255)
                ]
            ),
            "-0042 +3 ff FF 0xff"
        );
        assert_eq!(
            sprintf(
                "%.2f %v %g",
                &[Value::Float(1.23456), Value::Float(2.5), Value::Float(1e-7)]
            ),
            "1.23 2.5 1e-07"
        );
        assert_eq!(sprintf("%q", &[s("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(sprintf("%d", &[s("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[s("x")]), "x %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("x"), Value::Int(1)]), "x%!(EXTRA int=1)");
        assert_eq!(
            sprintf(
                "%.3s|%T|%t",
                &[s("abcdef"), Value::Int(1), Value::Bool(true)]
            ),
            "abc|int|true"
        );
        assert_eq!(
            sprintf("%c%U", &[Value::Int(0x4e2d), Value::Int(0x4e2d)]),
            "中U+4E2D"
        );
        assert_eq!(sprintf("%", &[]), "%!(NOVERB)");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[Value::Int(1), Value::Int(2), s("a"), Value::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }
}
