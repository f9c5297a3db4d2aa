//! `--sink=<name>:<uri>` and `--source=kubernetes:<url>` parsing (pure): kube-eventer's
//! syntax, `$VAR`/`${VAR}` expansion from the environment (secrets come from env), query
//! options decoded like Go's `url.ParseQuery`. Errors name the sink and the option, never a
//! secret's value.

use std::collections::HashSet;

/// Why a sink or source specification is unusable (a startup error, exit 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("{0:?} is not <name>:<uri>")]
    Syntax(String),
    #[error("sink {sink}: unknown sink type (supported: {supported})")]
    UnknownSink { sink: String, supported: String },
    #[error("{what}: environment variable ${var} is not set")]
    Env { what: String, var: String },
    #[error("{what}: {msg}")]
    Bad { what: String, msg: String },
}

/// Query keys whose values are secrets (redacted in messages and logs).
pub const SECRET_KEYS: &[&str] = &["access_token", "sign", "secret", "token", "password"];

/// Expand `$VAR` and `${VAR}` like Go's `os.ExpandEnv`, except that an unset variable is an
/// error (kube-eventer silently expands it to nothing, sending e.g. an empty token) and
/// `$$` is a literal `$`.
pub fn expand_env(
    s: &str,
    what: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, UriError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, used) = if let Some(b) = after.strip_prefix('{') {
            match b.find('}') {
                Some(end) => (&b[..end], end + 2),
                None => {
                    return Err(UriError::Bad {
                        what: what.into(),
                        msg: "unclosed ${ in URI".into(),
                    })
                }
            }
        } else if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        } else {
            let n = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            (&after[..n], n)
        };
        if name.is_empty() {
            // "$" followed by no name stays as it is (as in Go).
            out.push('$');
            rest = after;
            continue;
        }
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(UriError::Env {
                    what: what.into(),
                    var: name.into(),
                })
            }
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A parsed URI: `scheme://authority/path?query`, the query kept both raw (per `&`-part,
/// to forward unknown parameters untouched) and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// (decoded key, decoded value, raw `k=v` text) per query part.
    pub query: Vec<(String, String, String)>,
}

impl Uri {
    /// Parse an absolute `http`/`https` URI, or (with `allow_empty`) an empty one.
    pub fn parse(s: &str, what: &str) -> Result<Uri, UriError> {
        let bad = |msg: String| UriError::Bad {
            what: what.into(),
            msg,
        };
        let (base, query) = match s.split_once('?') {
            Some((b, q)) => (b, q),
            None => (s, ""),
        };
        let base = base.split('#').next().unwrap_or("");
        let (scheme, rest) = base
            .split_once("://")
            .ok_or_else(|| bad(format!("URI {:?} has no scheme://host", redact_text(s))))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad(format!("URI scheme {scheme:?} is not http or https")));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(char::is_whitespace) {
            return Err(bad(format!("URI {:?} has no valid host", redact_text(s))));
        }
        // Validate with the HTTP crate (what the client will send).
        let probe = format!("{scheme}://{authority}{path}");
        probe
            .parse::<http::Uri>()
            .map_err(|e| bad(format!("URI {:?}: {e}", redact_text(s))))?;
        let query = parse_query(query.split('#').next().unwrap_or(""));
        Ok(Uri {
            scheme,
            authority: authority.to_string(),
            path: path.to_string(),
            query,
        })
    }

    /// Every value of `key` (repeatable options).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
            .collect()
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.all(key).into_iter().next()
    }

    /// Every value of `key`, each split at commas, trimmed, empties dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.all(key)
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect()
    }

    /// The URL to send to: scheme, host, path and the query parts whose keys are not in
    /// `own` (the sink's options), raw as given.
    pub fn endpoint(&self, own: &[&str]) -> String {
        let own: HashSet<&str> = own.iter().copied().collect();
        let kept: Vec<&str> = self
            .query
            .iter()
            .filter(|(k, _, _)| !own.contains(k.as_str()))
            .map(|(_, _, raw)| raw.as_str())
            .collect();
        let mut u = format!("{}://{}{}", self.scheme, self.authority, self.path);
        if !kept.is_empty() {
            u.push('?');
            u.push_str(&kept.join("&"));
        }
        u
    }

    /// Keys present that are not in `known`.
    pub fn unknown_keys(&self, known: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self
            .query
            .iter()
            .map(|(k, _, _)| k.clone())
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        v.dedup();
        v
    }
}

/// Decode a query string like Go's `url.ParseQuery` (`+` is a space; `a=b=c` is key `a`,
/// value `b=c`).
pub fn parse_query(q: &str) -> Vec<(String, String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|raw| {
            let (k, v) = raw.split_once('=').unwrap_or((raw, ""));
            let dec = |x: &str| {
                form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (dec(k), dec(v), raw.to_string())
        })
        .collect()
}

/// A URI with the values of secret query keys replaced by `***`.
pub fn redact_text(s: &str) -> String {
    let Some((base, q)) = s.split_once('?') else {
        return s.to_string();
    };
    let parts: Vec<String> = q
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if SECRET_KEYS.contains(&k) => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

/// One `--sink` flag: the sink type and its URI (after `$VAR` expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    pub name: String,
    pub raw: String,
}

/// Split `name:uri` at the first `:` and expand the environment in the URI.
pub fn split_sink(
    flag: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SinkSpec, UriError> {
    let (name, uri) = flag
        .split_once(':')
        .ok_or_else(|| UriError::Syntax(redact_text(flag)))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(UriError::Syntax(redact_text(flag)));
    }
    let raw = expand_env(uri.trim(), &format!("sink {name}"), lookup)?;
    Ok(SinkSpec {
        name: name.to_string(),
        raw,
    })
}

/// `--source=kubernetes:<url>[?inClusterConfig=…&insecure=…&auth=…]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSpec {
    /// API server URL from the flag (`https://kubernetes.default`), if any.
    pub server: Option<String>,
    pub in_cluster: bool,
    pub insecure: bool,
    /// kubeconfig path (`auth=`).
    pub kubeconfig: Option<String>,
}

pub fn parse_source(
    flag: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<SourceSpec, UriError> {
    let what = "source";
    let (name, rest) = flag.split_once(':').unwrap_or((flag, ""));
    if name != "kubernetes" {
        return Err(UriError::Bad {
            what: what.into(),
            msg: format!("unknown source {name:?} (only \"kubernetes\" is supported)"),
        });
    }
    let rest = expand_env(rest, what, lookup)?;
    let (base, q) = rest.split_once('?').unwrap_or((&rest, ""));
    let opts = parse_query(q);
    let get = |k: &str| {
        opts.iter()
            .find(|(key, _, _)| key == k)
            .map(|(_, v, _)| v.clone())
    };
    let bool_opt = |k: &str, default: bool| -> Result<bool, UriError> {
        match get(k).as_deref() {
            None | Some("") => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(UriError::Bad {
                what: what.into(),
                msg: format!("{k}={v:?} is not true or false"),
            }),
        }
    };
    let known = [
        "inClusterConfig",
        "insecure",
        "auth",
        "useServiceAccount",
        "kubeletPort",
        "kubeletHttps",
    ];
    if let Some((k, _, _)) = opts.iter().find(|(k, _, _)| !known.contains(&k.as_str())) {
        return Err(UriError::Bad {
            what: what.into(),
            msg: format!("unknown option {k:?}"),
        });
    }
    let server = if base.is_empty() {
        None
    } else {
        let u = Uri::parse(base, what)?;
        Some(format!("{}://{}", u.scheme, u.authority))
    };
    let kubeconfig = get("auth").filter(|a| !a.is_empty());
    Ok(SourceSpec {
        server,
        in_cluster: bool_opt("inClusterConfig", kubeconfig.is_none())?,
        insecure: bool_opt("insecure", false)?,
        kubeconfig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKEN" => Some("t0k=n".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn env_expansion() {
        assert_eq!(
            expand_env("a=$TOKEN&b=${TOKEN}x", "s", &env).unwrap(),
            "a=t0k=n&b=t0k=nx"
        );
        assert_eq!(
            expand_env("$$5 and $ alone and $EMPTY.", "s", &env).unwrap(),
            "$5 and $ alone and ."
        );
        let e = expand_env("x=$MISSING", "sink dingtalk", &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sink dingtalk: environment variable $MISSING is not set"
        );
        assert!(expand_env("${OPEN", "s", &env).is_err());
    }

    #[test]
    fn sink_uris_like_kube_eventer() {
        let s = split_sink(
            "webhook:http://127.0.0.1:8080/hook/x?level=Warning&method=POST&header=Content-Type=application/json&header=X-Sig=YWJj==&k=a%20b+c&reason=OOM,Hung&reason=Killing",
            &env,
        )
        .unwrap();
        assert_eq!(s.name, "webhook");
        let u = Uri::parse(&s.raw, "sink webhook").unwrap();
        assert_eq!(
            u.all("header"),
            vec!["Content-Type=application/json", "X-Sig=YWJj=="]
        );
        assert_eq!(u.get("k"), Some("a b c"));
        assert_eq!(u.list("reason"), vec!["OOM", "Hung", "Killing"]);
        assert_eq!(
            u.endpoint(&["level", "method", "header", "reason"]),
            "http://127.0.0.1:8080/hook/x?k=a%20b+c"
        );
        let d = split_sink(
            "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=$TOKEN&label=c1",
            &env,
        )
        .unwrap();
        let u = Uri::parse(&d.raw, "sink dingtalk").unwrap();
        assert_eq!(u.get("access_token"), Some("t0k=n"));
        assert_eq!(u.path, "/robot/send");
        assert!(split_sink("nocolon", &env).is_err());
        assert!(split_sink(":x", &env).is_err());
        assert!(Uri::parse("ftp://x/y", "s").is_err());
        assert!(Uri::parse("http:///nohost", "s").is_err());
        assert!(Uri::parse("not a uri", "s").is_err());
        assert_eq!(
            redact_text("https://h/p?access_token=abc&label=x"),
            "https://h/p?access_token=***&label=x"
        );
    }

    #[test]
    fn source_flags() {
        let s = parse_source("kubernetes:https://kubernetes.default", &env).unwrap();
        assert_eq!(s.server.as_deref(), Some("https://kubernetes.default"));
        assert!(s.in_cluster && !s.insecure);
        let s = parse_source(
            "kubernetes:?inClusterConfig=false&auth=/k/config&insecure=true",
            &env,
        )
        .unwrap();
        assert_eq!(
            (s.server, s.in_cluster, s.insecure, s.kubeconfig.as_deref()),
            (None, false, true, Some("/k/config"))
        );
        assert!(parse_source("kafka:x", &env).is_err());
        assert!(parse_source("kubernetes:?insecure=maybe", &env).is_err());
        assert!(parse_source("kubernetes:?bogus=1", &env).is_err());
    }
}
