//! `mysql`: every Event as one row of a MySQL/MariaDB table, upserted on the Event's uid.
//!
//! URI forms:
//! - kube-eventer's: `mysql:?user:pw@tcp(host:3306)/db?charset=utf8&table=kube_event` (a Go
//!   MySQL driver DSN after the `?`; every DSN parameter is kept, where kube-eventer keeps
//!   only the first one when `table=` is given);
//! - a URL: `mysql://user:pw@host:3306/db?table=kube_event` (user and password
//!   percent-decoded).
//!
//! `$VAR` in either is expanded from the environment (the password from a Secret).
//!
//! On start the table is created when missing, with kube-eventer's columns (so existing
//! queries keep working) plus `count`, `DATETIME(3)` times (UTC) and a unique key on
//! `event_id`; an existing kube-eventer table is adopted: missing columns are added,
//! `message` is widened to TEXT, nothing is dropped. Rows are written in multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE` statements; an update never replaces a newer one
//! (higher `count`). While the server is unreachable the rows wait in a bounded buffer
//! (oldest dropped first, counted as `buffer_full`) and the connection is retried with
//! backoff.
//!
//! Driver: `mysql_async`, not `sqlx`: it is tokio-native, a single crate family (no query
//! macros, no pool/any-database layers we would not use), builds with pure-Rust compression
//! and no TLS stack of its own, and reports server errors with their codes (1045 access
//! denied, 1049 unknown database) for clear messages.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use super::super::delivery::Queued;

use super::super::event::{last_seen, occurrences};
use super::super::filter::{Filter, FILTER_KEYS};
use super::super::fold::Message;
use super::super::metrics::EventerMetrics;
use super::super::template::gotime::{go_string, GoTime};
use super::super::uri::{parse_query, Uri, UriError};
use super::super::Item;
use super::{BatchQueue, BatchWorker, BuildError, Payload, Sink};

/// Rows per INSERT statement by default (`batch=`).
pub const DEFAULT_BATCH: usize = 500;
/// Events held while the database is unreachable, by default (`buffer=`).
pub const DEFAULT_BUFFER: usize = 20_000;
/// `TEXT` holds 65,535 bytes: longer messages are cut at a character boundary.
pub const MESSAGE_MAX_BYTES: usize = 65_535;
/// The `varchar(255)` columns.
pub const SHORT_MAX_CHARS: usize = 255;

/// Go driver parameters that have a meaning there and none here (accepted, ignored).
const GO_ONLY: &[&str] = &[
    "allowAllFiles",
    "allowCleartextPasswords",
    "allowFallbackToPlaintext",
    "allowNativePasswords",
    "allowOldPasswords",
    "checkConnLiveness",
    "clientFoundRows",
    "collation",
    "columnsWithAlias",
    "interpolateParams",
    "loc",
    "maxAllowedPacket",
    "multiStatements",
    "parseTime",
    "rejectReadOnly",
    "serverPubKey",
    "connectionAttributes",
];

/// Where and how to write (a parsed `--sink=mysql:…`). Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    pub user: String,
    pub password: String,
    /// Host name or IP (TCP), when not a socket.
    pub host: String,
    pub port: u16,
    /// `unix(/path)`.
    pub socket: Option<String>,
    pub database: String,
    pub table: String,
    /// Session variables set on every connection (the Go driver's unknown DSN parameters).
    pub session: Vec<(String, String)>,
    pub connect_timeout: Duration,
    /// Deadline of one statement (the larger of `readTimeout`/`writeTimeout`, default 30 s).
    pub io_timeout: Duration,
    pub batch: usize,
    pub buffer: usize,
}

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dsn({})", self.describe())
    }
}

impl Dsn {
    /// `user@host:port/db.table` (never the password).
    pub fn describe(&self) -> String {
        let at = match &self.socket {
            Some(s) => format!("unix({s})"),
            None => format!("{}:{}", self.host, self.port),
        };
        format!("{}@{at}/{}.{}", self.user, self.database, self.table)
    }
}

fn bad(what: &str, msg: impl Into<String>) -> UriError {
    UriError::Bad {
        what: what.into(),
        msg: msg.into(),
    }
}

/// Decoded query options (key, value, raw), as `parse_query` gives them.
pub type Query = Vec<(String, String, String)>;

/// Parse the URI of `--sink=mysql:<uri>` (pure). Returns the DSN and the query options
/// (for the filters).
pub fn parse_dsn(raw: &str, what: &str) -> Result<(Dsn, Query), UriError> {
    let raw = raw.trim();
    let (user, password, host, port, socket, database, query) =
        if let Some(rest) = raw.strip_prefix("mysql://") {
            parse_url_form(rest, what)?
        } else {
            parse_go_form(raw.strip_prefix('?').unwrap_or(raw), what)?
        };
    if database.is_empty() {
        return Err(bad(what, "no database name (…/DATABASE)"));
    }
    // MySQL names cannot hold NUL or end with a space; no real one holds other control
    // characters.
    if database.contains(char::is_control) || database.ends_with(char::is_whitespace) {
        return Err(bad(
            what,
            "the database name has control characters or ends with a space",
        ));
    }
    if user.is_empty() {
        return Err(bad(what, "no user (USER:PASSWORD@…)"));
    }
    let query = parse_query(&query);
    let mut dsn = Dsn {
        user,
        password,
        host,
        port,
        socket,
        database,
        table: "kube_event".into(),
        session: Vec::new(),
        connect_timeout: Duration::from_secs(10),
        io_timeout: Duration::from_secs(30),
        batch: DEFAULT_BATCH,
        buffer: DEFAULT_BUFFER,
    };
    let mut rw = Duration::ZERO;
    for (k, v, _) in &query {
        let dur = || {
            go_duration(v).ok_or_else(|| bad(what, format!("{k}={v:?}: not a duration (10s, 1m)")))
        };
        match k.as_str() {
            "table" => {
                if !is_identifier(v) {
                    return Err(bad(
                        what,
                        format!("table={v:?}: use letters, digits, _ and $ (at most 64)"),
                    ));
                }
                dsn.table = v.clone();
            }
            "batch" => {
                dsn.batch = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=5000).contains(n))
                    .ok_or_else(|| bad(what, format!("batch={v:?}: a number 1…5000")))?
            }
            "buffer" => {
                dsn.buffer = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000_000).contains(n))
                    .ok_or_else(|| bad(what, format!("buffer={v:?}: a number 1…10000000")))?
            }
            "charset" => {
                // Rows are always written as utf8mb4 (a superset of utf8/utf8mb3).
                if !v
                    .split(',')
                    .any(|c| matches!(c.trim(), "utf8" | "utf8mb4" | "utf8mb3"))
                {
                    return Err(bad(
                        what,
                        format!("charset={v:?}: only utf8/utf8mb4 (Event text is UTF-8)"),
                    ));
                }
            }
            "timeout" => dsn.connect_timeout = dur()?,
            "readTimeout" | "writeTimeout" => rw = rw.max(dur()?),
            "tls" => {
                if !matches!(v.as_str(), "false" | "") {
                    return Err(bad(
                        what,
                        format!(
                            "tls={v:?}: TLS to MySQL is not supported; use a private network or a local proxy"
                        ),
                    ));
                }
            }
            k if FILTER_KEYS.contains(&k) || GO_ONLY.contains(&k) => {}
            k => {
                // The Go driver sends unknown parameters as `SET k=v` on each connection.
                if !is_identifier(k) || !is_session_value(v) {
                    return Err(bad(
                        what,
                        format!("DSN parameter {k:?}: not a session variable assignment"),
                    ));
                }
                dsn.session.push((k.to_string(), v.clone()));
            }
        }
    }
    if !rw.is_zero() {
        dsn.io_timeout = rw;
    }
    Ok((dsn, query))
}

type Parts = (String, String, String, u16, Option<String>, String, String);

/// `[user[:password]@][net[(addr)]]/dbname[?params]`, split as the Go driver does: at the
/// last `/`, then at the last `@` before it (a password may hold `@`, `:` and `/`).
fn parse_go_form(dsn: &str, what: &str) -> Result<Parts, UriError> {
    let slash = dsn.rfind('/').ok_or_else(|| {
        bad(
            what,
            "DSN has no /DATABASE (USER:PASSWORD@tcp(HOST:PORT)/DATABASE)",
        )
    })?;
    let (head, tail) = (&dsn[..slash], &dsn[slash + 1..]);
    let (database, query) = tail.split_once('?').unwrap_or((tail, ""));
    let (cred, net) = match head.rfind('@') {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => ("", head),
    };
    let (user, password) = cred.split_once(':').unwrap_or((cred, ""));
    let (proto, addr) = match net.find('(') {
        Some(i) => {
            let addr = net[i + 1..]
                .strip_suffix(')')
                .ok_or_else(|| bad(what, format!("DSN address {net:?}: missing )")))?;
            (&net[..i], addr)
        }
        None => (net, ""),
    };
    let (host, port, socket) = match proto {
        "" | "tcp" | "tcp4" | "tcp6" => {
            let (h, p) = split_host_port(addr, what)?;
            (h, p, None)
        }
        "unix" => {
            if addr.is_empty() {
                return Err(bad(what, "unix() needs a socket path"));
            }
            (String::new(), 0, Some(addr.to_string()))
        }
        other => {
            return Err(bad(
                what,
                format!("DSN protocol {other:?}: use tcp or unix"),
            ))
        }
    };
    Ok((
        user.to_string(),
        password.to_string(),
        host,
        port,
        socket,
        database.to_string(),
        query.to_string(),
    ))
}

/// `user:pw@host:port/db?params` (after `mysql://`), user and password percent-decoded.
fn parse_url_form(rest: &str, what: &str) -> Result<Parts, UriError> {
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (auth, path) = match base.find('/') {
        Some(i) => (&base[..i], &base[i + 1..]),
        None => (base, ""),
    };
    let (cred, hostport) = match auth.rfind('@') {
        Some(i) => (&auth[..i], &auth[i + 1..]),
        None => ("", auth),
    };
    let (user, password) = cred.split_once(':').unwrap_or((cred, ""));
    let dec = |s: &str| -> Result<String, UriError> {
        percent_decode(s).ok_or_else(|| bad(what, "bad %-escape in user or password"))
    };
    let (host, port) = split_host_port(hostport, what)?;
    Ok((
        dec(user)?,
        dec(password)?,
        host,
        port,
        None,
        dec(path.trim_end_matches('/'))?,
        query.to_string(),
    ))
}

fn split_host_port(addr: &str, what: &str) -> Result<(String, u16), UriError> {
    if addr.is_empty() {
        return Ok(("127.0.0.1".into(), 3306));
    }
    let (host, port) = if let Some(r) = addr.strip_prefix('[') {
        let (h, p) = r
            .split_once(']')
            .ok_or_else(|| bad(what, format!("address {addr:?}: missing ]")))?;
        (h, p.strip_prefix(':'))
    } else {
        match addr.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (addr, None),
        }
    };
    // A name or an address: no spaces, control characters or URL delimiters, and colons
    // only in an IPv6 address (bare `::1`, as Go's driver takes it, or `[::1]:3306`).
    if host.is_empty()
        || host.contains(|c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '[' | ']')
        })
        || (host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err())
    {
        return Err(bad(what, format!("address {addr:?}: no valid host")));
    }
    let port = match port {
        None => 3306,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(what, format!("address {addr:?}: bad port")))?,
    };
    Ok((host.to_string(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A Go duration as the DSN takes it (`30s`, `1m30s`, `500ms`).
fn go_duration(v: &str) -> Option<Duration> {
    probes::parse_duration(v).ok().filter(|d| !d.is_zero())
}

/// A MySQL identifier we accept unquoted-safe (we quote it anyway).
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

fn is_session_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '+' | ':' | '.' | ',' | '-' | ' ')
        })
}

/// One Event as a row (pure).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub event_id: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

fn cut_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn cut_bytes(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    s[..i].to_string()
}

impl Row {
    /// kube-eventer's columns from the Event: the involved object's namespace, kind and
    /// name; `event_id` is the Event's uid.
    pub fn of(ev: &Event) -> Row {
        let o = &ev.involved_object;
        let short = |s: &Option<String>| cut_chars(s.as_deref().unwrap_or(""), SHORT_MAX_CHARS);
        let first = ev
            .first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| ev.event_time.as_ref().map(|t| t.0));
        Row {
            event_id: short(&ev.metadata.uid),
            namespace: short(&o.namespace),
            kind: short(&o.kind),
            name: short(&o.name),
            type_: short(&ev.type_),
            reason: short(&ev.reason),
            message: cut_bytes(ev.message.as_deref().unwrap_or(""), MESSAGE_MAX_BYTES),
            count: occurrences(ev),
            first,
            last: last_seen(ev),
        }
    }

    fn params(&self, out: &mut Vec<mysql_async::Value>) {
        use mysql_async::Value as V;
        let text = |t: Option<Timestamp>| match t {
            Some(t) => go_string(&GoTime::local(t)),
            None => go_string(&GoTime::ZERO),
        };
        let dt = |t: Option<Timestamp>| match t {
            Some(t) => {
                let d = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
                V::Date(
                    u16::try_from(d.year()).unwrap_or(0),
                    d.month() as u8,
                    d.day() as u8,
                    d.hour() as u8,
                    d.minute() as u8,
                    d.second() as u8,
                    u32::try_from(d.subsec_nanosecond() / 1000).unwrap_or(0),
                )
            }
            None => V::NULL,
        };
        for s in [
            &self.namespace,
            &self.kind,
            &self.name,
            &self.type_,
            &self.reason,
            &self.message,
            &self.event_id,
        ] {
            out.push(V::Bytes(s.as_bytes().to_vec()));
        }
        out.push(V::Bytes(text(self.first).into_bytes()));
        out.push(V::Bytes(text(self.last).into_bytes()));
        out.push(V::Int(i64::from(self.count)));
        out.push(dt(self.first));
        out.push(dt(self.last));
    }
}

/// The columns we write, in order (kube-eventer's first).
const COLUMNS: &[&str] = &[
    "namespace",
    "kind",
    "name",
    "type",
    "reason",
    "message",
    "event_id",
    "first_occurrence_time",
    "last_occurrence_time",
    "count",
    "first_occurrence",
    "last_occurrence",
];

/// `CREATE TABLE IF NOT EXISTS` of a new table.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{table}` (\n\
         `id` bigint NOT NULL AUTO_INCREMENT,\n\
         `namespace` varchar(255) NOT NULL DEFAULT '',\n\
         `kind` varchar(255) NOT NULL DEFAULT '',\n\
         `name` varchar(255) NOT NULL DEFAULT '',\n\
         `type` varchar(255) NOT NULL DEFAULT '',\n\
         `reason` varchar(255) NOT NULL DEFAULT '',\n\
         `message` text,\n\
         `event_id` varchar(255) NOT NULL DEFAULT '',\n\
         `first_occurrence_time` varchar(255) NOT NULL DEFAULT '',\n\
         `last_occurrence_time` varchar(255) NOT NULL DEFAULT '',\n\
         `update_time` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,\n\
         `count` int NOT NULL DEFAULT 1,\n\
         `first_occurrence` datetime(3) NULL,\n\
         `last_occurrence` datetime(3) NULL,\n\
         PRIMARY KEY (`id`),\n\
         UNIQUE KEY `event_id` (`event_id`),\n\
         KEY `last_occurrence` (`last_occurrence`)\n\
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
}

/// Columns an adopted table must have (name, definition to add).
const ADDED: &[(&str, &str)] = &[
    ("namespace", "varchar(255) NOT NULL DEFAULT ''"),
    ("kind", "varchar(255) NOT NULL DEFAULT ''"),
    ("name", "varchar(255) NOT NULL DEFAULT ''"),
    ("type", "varchar(255) NOT NULL DEFAULT ''"),
    ("reason", "varchar(255) NOT NULL DEFAULT ''"),
    ("message", "text"),
    ("event_id", "varchar(255) NOT NULL DEFAULT ''"),
    ("first_occurrence_time", "varchar(255) NOT NULL DEFAULT ''"),
    ("last_occurrence_time", "varchar(255) NOT NULL DEFAULT ''"),
    (
        "update_time",
        "timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP",
    ),
    ("count", "int NOT NULL DEFAULT 1"),
    ("first_occurrence", "datetime(3) NULL"),
    ("last_occurrence", "datetime(3) NULL"),
];

/// The column kube-eventer's duplicate rows get to keep the unique key possible (their `id`).
pub const LEGACY_COLUMN: &str = "kube_eventer_id";

/// The multi-row upsert of `rows` rows. An update applies only when its `count` is not
/// lower than the stored one (a late, older update never overwrites a newer one); `count`
/// is assigned last because MySQL evaluates the assignments in order.
pub fn upsert_sql(table: &str, rows: usize) -> String {
    let one = format!(
        "({}, CURRENT_TIMESTAMP)",
        vec!["?"; COLUMNS.len()].join(",")
    );
    let values = vec![one.as_str(); rows].join(",");
    let cols = COLUMNS
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(",");
    let newer = "VALUES(`count`) >= `count`";
    let sets = COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "event_id" | "count"))
        .chain(["update_time"].iter())
        .map(|c| format!("`{c}` = IF({newer}, VALUES(`{c}`), `{c}`)"))
        .chain(std::iter::once(format!(
            "`count` = IF({newer}, VALUES(`count`), `count`)"
        )))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO `{table}` ({cols},`update_time`) VALUES {values} ON DUPLICATE KEY UPDATE {sets}"
    )
}

/// Keep the newest update of each Event of a batch (same uid: the higher count, else the
/// later one), in the order of their first appearance.
pub fn collapse(rows: Vec<Row>) -> Vec<Row> {
    let mut at: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    for r in rows {
        match at.get(&r.event_id) {
            Some(&i) if !r.event_id.is_empty() => {
                if r.count >= out[i].count {
                    out[i] = r;
                }
            }
            _ => {
                at.insert(r.event_id.clone(), out.len());
                out.push(r);
            }
        }
    }
    out
}

#[derive(Debug)]
pub struct Mysql {
    label: String,
    filter: Filter,
    pub dsn: Dsn,
}

impl Mysql {
    pub fn from_uri(label: String, raw: &str) -> Result<Mysql, UriError> {
        let what = format!("sink {label}");
        let (dsn, query) = parse_dsn(raw, &what)?;
        // The filters read the same options as every sink's.
        let u = Uri {
            scheme: "http".into(),
            authority: "mysql".into(),
            path: "/".into(),
            query: query
                .into_iter()
                .filter(|(k, _, _)| FILTER_KEYS.contains(&k.as_str()))
                .collect(),
        };
        Ok(Mysql {
            filter: Filter::from_uri(&u, &what, None)?,
            label,
            dsn,
        })
    }
}

impl Sink for Mysql {
    fn label(&self) -> &str {
        &self.label
    }
    fn filter(&self) -> &Filter {
        &self.filter
    }
    fn build(&self, _msg: &Message, _now: Timestamp) -> Result<Payload, BuildError> {
        Err(BuildError("the mysql sink writes batches".into()))
    }
    fn is_batch(&self) -> bool {
        true
    }
    fn batch_worker(&self, q: BatchQueue) -> Option<BatchWorker> {
        Some(Box::pin(run(self.label.clone(), self.dsn.clone(), q)))
    }
}

/// Why a write failed, for the metric label and the retry decision.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{target}: access denied for user {user:?} (wrong user or password): {msg}")]
    Auth {
        target: String,
        user: String,
        msg: String,
    },
    #[error("{target}: database {db:?} does not exist or is not accessible: {msg}")]
    Database {
        target: String,
        db: String,
        msg: String,
    },
    #[error("{target}: connection: {msg}")]
    Connection { target: String, msg: String },
    #[error("{target}: timed out after {after:?}")]
    Timeout { target: String, after: Duration },
    /// The server refused the statement (a data problem, not the connection).
    #[error("{target}: server error {code}: {msg}")]
    Statement {
        target: String,
        code: u16,
        msg: String,
    },
}

impl DbError {
    fn cause(&self) -> &'static str {
        match self {
            DbError::Auth { .. } => "auth",
            DbError::Database { .. } => "database",
            DbError::Connection { .. } => "connect",
            DbError::Timeout { .. } => "timeout",
            DbError::Statement { .. } => "statement",
        }
    }

    fn of(e: mysql_async::Error, dsn: &Dsn) -> DbError {
        let target = format!(
            "mysql {}/{}",
            match &dsn.socket {
                Some(s) => format!("unix({s})"),
                None => format!("{}:{}", dsn.host, dsn.port),
            },
            dsn.database
        );
        match e {
            mysql_async::Error::Server(s) => match s.code {
                1045 | 1698 => DbError::Auth {
                    target,
                    user: dsn.user.clone(),
                    msg: s.message,
                },
                1044 | 1049 => DbError::Database {
                    target,
                    db: dsn.database.clone(),
                    msg: s.message,
                },
                // Server shutting down, connection killed, too many connections, read-only.
                1053 | 1927 | 2006 | 2013 | 1040 | 1290 | 1836 => DbError::Connection {
                    target,
                    msg: s.message,
                },
                code => DbError::Statement {
                    target,
                    code,
                    msg: s.message,
                },
            },
            other => DbError::Connection {
                target,
                msg: other.to_string(),
            },
        }
    }
}

async fn timed<T>(
    dsn: &Dsn,
    after: Duration,
    f: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(after, f).await {
        Ok(r) => r.map_err(|e| DbError::of(e, dsn)),
        Err(_) => Err(DbError::Timeout {
            target: dsn.describe(),
            after,
        }),
    }
}

/// Connect and make the table ready (create or adopt).
async fn connect(dsn: &Dsn) -> Result<mysql_async::Conn, DbError> {
    let mut b = mysql_async::OptsBuilder::default()
        .user(Some(dsn.user.clone()))
        .pass(Some(dsn.password.clone()))
        .db_name(Some(dsn.database.clone()))
        .prefer_socket(false);
    b = match &dsn.socket {
        Some(s) => b.socket(Some(s.clone())),
        None => b.ip_or_hostname(dsn.host.clone()).tcp_port(dsn.port),
    };
    let mut init = vec!["SET NAMES utf8mb4".to_string()];
    init.extend(dsn.session.iter().map(|(k, v)| format!("SET {k}={v}")));
    b = b.init(init);
    let mut conn = timed(dsn, dsn.connect_timeout, mysql_async::Conn::new(b)).await?;
    prepare_table(&mut conn, dsn).await?;
    Ok(conn)
}

async fn prepare_table(conn: &mut mysql_async::Conn, dsn: &Dsn) -> Result<(), DbError> {
    let t = &dsn.table;
    let io = dsn.io_timeout;
    let cols: Vec<(String, String)> = timed(
        dsn,
        io,
        conn.exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (t.as_str(),),
        ),
    )
    .await?;
    if cols.is_empty() {
        timed(dsn, io, conn.query_drop(create_table_sql(t))).await?;
        tracing::info!("mysql {}: created table {t}", dsn.describe());
        return Ok(());
    }
    let have: HashMap<String, String> = cols
        .into_iter()
        .map(|(n, ty)| (n.to_ascii_lowercase(), ty.to_ascii_lowercase()))
        .collect();
    for (col, def) in ADDED {
        if !have.contains_key(*col) {
            timed(
                dsn,
                io,
                conn.query_drop(format!("ALTER TABLE `{t}` ADD COLUMN `{col}` {def}")),
            )
            .await?;
            tracing::info!("mysql {}: added column {col} to {t}", dsn.describe());
        }
    }
    if let Some(ty) = have.get("message") {
        if ty.starts_with("varchar") || ty.starts_with("char") || ty == "tinytext" {
            timed(
                dsn,
                io,
                conn.query_drop(format!("ALTER TABLE `{t}` MODIFY `message` text")),
            )
            .await?;
            tracing::info!(
                "mysql {}: widened {t}.message from {ty} to text",
                dsn.describe()
            );
        }
    }
    // A unique key whose first column is event_id (ours, or one added below).
    let keyed: Option<String> = timed(
        dsn,
        io,
        conn.exec_first(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND SEQ_IN_INDEX = 1 AND COLUMN_NAME = 'event_id' LIMIT 1",
            (t.as_str(),),
        ),
    )
    .await?;
    if keyed.is_none() {
        let dup: Option<String> = timed(
            dsn,
            io,
            conn.query_first(format!(
                "SELECT event_id FROM `{t}` GROUP BY event_id HAVING COUNT(*) > 1 LIMIT 1"
            )),
        )
        .await?;
        if dup.is_none() {
            timed(
                dsn,
                io,
                conn.query_drop(format!(
                    "ALTER TABLE `{t}` ADD UNIQUE KEY `event_id` (`event_id`)"
                )),
            )
            .await?;
        } else {
            // kube-eventer wrote one row per update: its rows keep their id in a new
            // column so each stays distinct; ours have 0 there, one row per Event.
            if !have.contains_key(LEGACY_COLUMN) {
                timed(
                    dsn,
                    io,
                    conn.query_drop(format!(
                        "ALTER TABLE `{t}` ADD COLUMN `{LEGACY_COLUMN}` bigint NOT NULL DEFAULT 0"
                    )),
                )
                .await?;
            }
            if have.contains_key("id") {
                timed(
                    dsn,
                    io,
                    conn.query_drop(format!("UPDATE `{t}` SET `{LEGACY_COLUMN}` = `id`")),
                )
                .await?;
            }
            timed(
                dsn,
                io,
                conn.query_drop(format!(
                    "ALTER TABLE `{t}` ADD UNIQUE KEY `event_id` (`event_id`, `{LEGACY_COLUMN}`)"
                )),
            )
            .await?;
        }
        tracing::info!(
            "mysql {}: added a unique key on {t}.event_id (one row per Event from now on)",
            dsn.describe()
        );
    }
    let timed_idx: Option<String> = timed(
        dsn,
        io,
        conn.exec_first(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1 AND COLUMN_NAME = 'last_occurrence' LIMIT 1",
            (t.as_str(),),
        ),
    )
    .await?;
    if timed_idx.is_none() {
        timed(
            dsn,
            io,
            conn.query_drop(format!(
                "ALTER TABLE `{t}` ADD KEY `last_occurrence` (`last_occurrence`)"
            )),
        )
        .await?;
    }
    tracing::info!("mysql {}: using existing table {t}", dsn.describe());
    Ok(())
}

async fn write(conn: &mut mysql_async::Conn, dsn: &Dsn, rows: &[Row]) -> Result<(), DbError> {
    let mut params = Vec::with_capacity(rows.len() * COLUMNS.len());
    for r in rows {
        r.params(&mut params);
    }
    let sql = upsert_sql(&dsn.table, rows.len());
    timed(
        dsn,
        dsn.io_timeout,
        conn.exec_drop(sql, mysql_async::Params::Positional(params)),
    )
    .await
}

struct Pending {
    row: Row,
    item: Arc<Item>,
}

/// The sink's worker: drain the queue into the bounded buffer, write batches, reconnect.
async fn run(label: String, dsn: Dsn, q: BatchQueue) {
    let BatchQueue {
        mut rx,
        len,
        metrics,
    } = q;
    let take = |q: Queued| {
        len.fetch_sub(1, Ordering::Relaxed);
        match q {
            Queued::Deliver(item) => Some(item),
            Queued::Reset(_) => None,
        }
    };
    let mut buf: VecDeque<Pending> = VecDeque::new();
    let mut conn: Option<mysql_async::Conn> = None;
    let mut attempt: u32 = 0;
    let mut retry_at: Option<Instant> = None;
    let mut open = true;
    let mut drops_logged: (Option<Instant>, u64) = (None, 0);
    let mut statement_errors: u32 = 0;
    loop {
        // Take what is queued (wait when there is nothing to do).
        let idle = buf.is_empty() || retry_at.is_some_and(|t| Instant::now() < t);
        if idle && open {
            let wake = retry_at.map(|t| t.max(Instant::now()));
            let got = match wake {
                Some(t) => tokio::time::timeout_at(t.into(), rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            };
            match got {
                Some(Some(q)) => {
                    if let Some(item) = take(q) {
                        push(&mut buf, item, &dsn, &label, &metrics, &mut drops_logged)
                    }
                }
                Some(None) => open = false,
                None => {}
            }
        }
        while open {
            match rx.try_recv() {
                Ok(q) => {
                    if let Some(item) = take(q) {
                        push(&mut buf, item, &dsn, &label, &metrics, &mut drops_logged)
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        metrics.queue_len(&label, buf.len());
        if buf.is_empty() {
            if !open {
                break;
            }
            continue;
        }
        if let Some(t) = retry_at.filter(|t| Instant::now() < *t) {
            if !open {
                // Stopping with the database away: keep trying until the shutdown grace
                // ends. What is left is not recorded as delivered: the next run sends it.
                tokio::time::sleep_until(t.into()).await;
            }
            continue;
        }
        retry_at = None;
        if conn.is_none() {
            match connect(&dsn).await {
                Ok(c) => {
                    if attempt > 0 {
                        tracing::info!("sink {label}: connected to {} again", dsn.describe());
                    }
                    conn = Some(c);
                    attempt = 0;
                }
                Err(e) => {
                    fail(&label, &metrics, &e, &mut attempt, &mut retry_at);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let n = buf.len().min(dsn.batch);
        let rows = collapse(buf.iter().take(n).map(|p| p.row.clone()).collect());
        match write(c, &dsn, &rows).await {
            Ok(()) => {
                statement_errors = 0;
                for p in buf.drain(..n) {
                    let latency = p.item.received.elapsed();
                    let age = last_seen(&p.item.event)
                        .and_then(|t| Duration::try_from(Timestamp::now().duration_since(t)).ok());
                    metrics.delivered(&label, Some(latency), age);
                }
            }
            Err(e @ DbError::Statement { .. }) => {
                // The data, not the connection: write the batch row by row, drop (and count)
                // the rows the server refuses, after a few tries.
                statement_errors += 1;
                metrics.failed(&label, e.cause());
                if statement_errors < 3 {
                    tracing::warn!("sink {label}: {e}; retrying");
                    retry_at = Some(Instant::now() + Duration::from_millis(200));
                    continue;
                }
                statement_errors = 0;
                for p in buf.drain(..n).collect::<Vec<_>>() {
                    match write(c, &dsn, std::slice::from_ref(&p.row)).await {
                        Ok(()) => metrics.delivered(&label, Some(p.item.received.elapsed()), None),
                        Err(e) => {
                            tracing::warn!(
                                "sink {label}: dropping event {} ({}): {e}",
                                p.row.event_id,
                                p.row.reason
                            );
                            metrics.failed(&label, e.cause());
                            metrics.dropped(&label, "rejected", 1);
                        }
                    }
                }
            }
            Err(e) => {
                conn = None;
                fail(&label, &metrics, &e, &mut attempt, &mut retry_at);
            }
        }
    }
    metrics.queue_len(&label, 0);
    if let Some(c) = conn {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
    }
}

fn fail(
    label: &str,
    metrics: &EventerMetrics,
    e: &DbError,
    attempt: &mut u32,
    retry_at: &mut Option<Instant>,
) {
    metrics.failed(label, e.cause());
    let wait = super::super::delivery::backoff(
        *attempt,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    if *attempt == 0 || matches!(e, DbError::Auth { .. } | DbError::Database { .. }) {
        tracing::error!("sink {label}: {e}; events are kept and retried (next in {wait:?})");
    } else {
        tracing::info!("sink {label}: {e}; retrying in {wait:?}");
    }
    metrics.inc(&metrics.retried, label);
    *attempt = attempt.saturating_add(1);
    *retry_at = Some(Instant::now() + wait);
}

fn push(
    buf: &mut VecDeque<Pending>,
    item: Arc<Item>,
    dsn: &Dsn,
    label: &str,
    metrics: &EventerMetrics,
    logged: &mut (Option<Instant>, u64),
) {
    buf.push_back(Pending {
        row: Row::of(&item.event),
        item,
    });
    if buf.len() > dsn.buffer {
        // Oldest first: the newest state of the cluster matters most after an outage.
        if let Some(old) = buf.pop_front() {
            metrics.dropped(label, "buffer_full", 1);
            logged.1 += 1;
            let now = Instant::now();
            if logged
                .0
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
            {
                tracing::warn!(
                    "sink {label}: buffer of {} full while {} is unreachable: dropped {} oldest event(s) (last: {} {})",
                    dsn.buffer,
                    dsn.describe(),
                    logged.1,
                    old.row.reason,
                    old.row.event_id
                );
                *logged = (Some(now), 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(s: &str) -> Dsn {
        parse_dsn(s, "sink mysql").unwrap().0
    }

    #[test]
    fn kube_eventer_dsn_keeps_every_parameter() {
        let d = dsn("?root:p@ss:w/rd@tcp(10.0.0.1:3307)/kube_eventer?charset=utf8&table=kube_event2&timeout=5s&readTimeout=40s&time_zone='%2B00:00'&level=Warning");
        assert_eq!(d.user, "root");
        assert_eq!(d.password, "p@ss:w/rd");
        assert_eq!((d.host.as_str(), d.port), ("10.0.0.1", 3307));
        assert_eq!(d.database, "kube_eventer");
        assert_eq!(d.table, "kube_event2");
        assert_eq!(d.connect_timeout, Duration::from_secs(5));
        assert_eq!(d.io_timeout, Duration::from_secs(40));
        assert_eq!(
            d.session,
            vec![("time_zone".to_string(), "'+00:00'".to_string())]
        );
        assert!(!format!("{d:?}").contains("p@ss"), "{d:?}");
        let d = dsn("?u@unix(/run/mysqld/mysqld.sock)/db");
        assert_eq!(d.socket.as_deref(), Some("/run/mysqld/mysqld.sock"));
        assert_eq!(d.table, "kube_event");
        let d = dsn("?u:pw@/db");
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", 3306));
    }

    #[test]
    fn url_form() {
        let d = dsn("mysql://ev%40x:p%2Fw%3F@[::1]:3310/events?table=t_1&batch=100&buffer=50");
        assert_eq!((d.user.as_str(), d.password.as_str()), ("ev@x", "p/w?"));
        assert_eq!((d.host.as_str(), d.port), ("::1", 3310));
        assert_eq!((d.database.as_str(), d.table.as_str()), ("events", "t_1"));
        assert_eq!((d.batch, d.buffer), (100, 50));
        let d = dsn("mysql://u:pw@db.example/events");
        assert_eq!((d.host.as_str(), d.port), ("db.example", 3306));
    }

    #[test]
    fn bad_dsns_are_named() {
        let e = |s: &str| parse_dsn(s, "sink mysql").unwrap_err().to_string();
        assert!(
            e("?u:pw@tcp(h:3306)").contains("DATABASE"),
            "{}",
            e("?u:pw@tcp(h:3306)")
        );
        assert!(e("?u:pw@tcp(h:3306/db").contains("missing )"));
        assert!(e("?u:pw@tcp(h:0)/db").contains("bad port"));
        assert!(e("?u:pw@udp(h)/db").contains("protocol"));
        assert!(e("?:pw@tcp(h)/db").contains("no user"));
        assert!(e("?u:pw@tcp(h)/db?table=a;drop").contains("table"));
        assert!(e("?u:pw@tcp(h)/db?charset=latin1").contains("charset"));
        assert!(e("?u:pw@tcp(h)/db?tls=true").contains("TLS"));
        assert!(e("?u:pw@tcp(h)/db?x=1;drop+table+t").contains("session variable"));
        assert!(e("?u:pw@tcp(h)/db?timeout=soon").contains("duration"));
        assert!(e("?u:pw@tcp(h)/db?batch=0").contains("batch"));
        assert!(e("mysql://u:%zz@h/db").contains("%-escape"));
        // found by fuzzing (mysql_dsn): a stray bracket, control bytes, colons outside IPv6
        assert!(e("?u:pw@tcp(F:\x17\x17:1])/db").contains("no valid host"));
        assert!(e("?u:pw@tcp(db\x01:3306)/db").contains("no valid host"));
        assert!(e("?u:pw@tcp(a:b:c)/db").contains("no valid host"));
        assert!(e("?u:pw@/\x00\x00[k").contains("control characters"));
        assert!(e("?u:pw@/d ?timeout=1s").contains("ends with a space"));
        assert_eq!(dsn("?u:pw@tcp(::1)/db").host, "::1");
        let f = Mysql::from_uri("mysql".into(), "?u:pw@tcp(h)/db?level=Info").unwrap_err();
        assert!(f.to_string().contains("level"), "{f}");
        let m = Mysql::from_uri("mysql".into(), "?u:pw@tcp(h)/db?level=Warning&kinds=Pod").unwrap();
        assert_eq!(m.filter().kinds, vec!["Pod".to_string()]);
        // the password never appears in an error
        assert!(!e("?u:s3cret@tcp(h:x)/db").contains("s3cret"));
    }

    fn event(uid: &str, count: i32, msg: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"uid": uid, "name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns1"},
            "reason": "BackOff", "message": msg, "type": "Warning", "count": count,
            "firstTimestamp": "2026-11-30T08:00:00Z", "lastTimestamp": "2026-11-30T08:00:05Z"
        }))
        .unwrap()
    }

    #[test]
    fn rows_and_statements() {
        let long = "长".repeat(30_000); // 90,000 bytes
        let r = Row::of(&event("u1", 3, &long));
        assert_eq!(r.message.len(), 65_535); // 21,845 characters of 3 bytes
        assert!(long.starts_with(&r.message));
        assert_eq!(
            (r.namespace.as_str(), r.kind.as_str(), r.name.as_str()),
            ("ns1", "Pod", "p")
        );
        assert_eq!(r.count, 3);
        let mut p = Vec::new();
        r.params(&mut p);
        assert_eq!(p.len(), COLUMNS.len());
        assert_eq!(p[11], mysql_async::Value::Date(2026, 11, 30, 8, 0, 5, 0));
        let sql = upsert_sql("kube_event", 2);
        assert_eq!(sql.matches('?').count(), 2 * COLUMNS.len());
        assert!(sql.ends_with("`count` = IF(VALUES(`count`) >= `count`, VALUES(`count`), `count`)"));
        assert!(create_table_sql("t").contains("UNIQUE KEY `event_id` (`event_id`)"));
        let rows = collapse(vec![
            Row::of(&event("a", 1, "x")),
            Row::of(&event("b", 1, "y")),
            Row::of(&event("a", 3, "x3")),
            Row::of(&event("a", 2, "x2")),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].event_id.as_str(), rows[0].count), ("a", 3));
        assert_eq!(rows[0].message, "x3");
    }
}
