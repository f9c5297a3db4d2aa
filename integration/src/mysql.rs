//! MariaDB for the eventer's MySQL sink tests: the shared server of services.env
//! (`NODEPROBE_IT_MYSQL_*`, required in CI) with one database per test, or a private
//! server a test may stop and start (outages). Queries go through the `mariadb` client.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::require;

/// A MariaDB server the tests can reach over TCP.
#[derive(Debug, Clone)]
pub struct Db {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The database this handle queries.
    pub database: String,
    /// The server's directory (mariadb-start.sh D), for stop/start.
    pub dir: PathBuf,
}

/// A private server, stopped and removed on drop.
pub struct PrivateDb {
    pub db: Db,
    env_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn env_dir() -> Option<PathBuf> {
    std::env::var_os("NODEPROBE_IT_ENV_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("env")).filter(|p| p.exists()))
}

fn parse_env(text: &str, database: Option<&str>) -> Option<Db> {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    Some(Db {
        host: get("NODEPROBE_IT_MYSQL_HOST")?,
        port: get("NODEPROBE_IT_MYSQL_PORT")?.parse().ok()?,
        user: get("NODEPROBE_IT_MYSQL_USER")?,
        password: get("NODEPROBE_IT_MYSQL_PASSWORD")?,
        database: database
            .map(str::to_string)
            .or_else(|| get("NODEPROBE_IT_MYSQL_DATABASE"))?,
        dir: get("NODEPROBE_IT_MYSQL_DIR")?.into(),
    })
}

impl Db {
    /// The server of services.env (skip, or fail in CI, when there is none).
    pub fn from_env() -> Option<Db> {
        let text: String = std::env::vars()
            .filter(|(k, _)| k.starts_with("NODEPROBE_IT_MYSQL_"))
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        let db = parse_env(&text, None);
        let ok = require(
            db.is_some(),
            "MariaDB (NODEPROBE_IT_MYSQL_* from services.env)",
        ) && require(crate::runtimes::have("mariadb"), "the mariadb client");
        db.filter(|_| ok)
    }

    /// A fresh database on the same server, for one test.
    pub fn fresh(&self, tag: &str) -> Db {
        let name = crate::unique(tag).replace('-', "_");
        self.sql(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"));
        Db {
            database: name,
            ..self.clone()
        }
    }

    /// `mysql:?user:$VAR@tcp(host:port)/db?…` (kube-eventer's form) with the password in
    /// `$var`.
    pub fn sink(&self, var: &str, params: &str) -> String {
        format!(
            "mysql:?{}:${var}@tcp({}:{})/{}?{params}",
            self.user, self.host, self.port, self.database
        )
    }

    /// Run SQL; the rows, tab-separated columns (batch mode: `\n`, `\t`, `\\` escaped).
    pub fn try_sql(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let o = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--protocol=tcp",
                "-N",
                "-B",
                "-h",
                &self.host,
            ])
            .arg(format!("-P{}", self.port))
            .arg(format!("-u{}", self.user))
            .arg(format!("-p{}", self.password))
            .arg(&self.database)
            .args(["-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    pub fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL {sql:?} failed: {e}"))
    }

    /// The single value of a query, "" when there is no row.
    pub fn value(&self, sql: &str) -> String {
        self.sql(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default()
    }
}

impl PrivateDb {
    /// Start a private server (mariadb-start.sh into a temporary directory).
    pub fn start() -> Option<PrivateDb> {
        let env = env_dir()?;
        if !require(
            Path::new("/usr/sbin/mariadbd").exists(),
            "mariadbd (mariadb-server)",
        ) {
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("nodeprobe-it-mariadb-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().join("m");
        let o = Command::new("bash")
            .arg(env.join("mariadb-start.sh"))
            .arg(&dir)
            .output()
            .expect("mariadb-start.sh");
        assert!(
            o.status.success(),
            "mariadb-start.sh: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let db = parse_env(&String::from_utf8_lossy(&o.stdout), None).expect("its env lines");
        Some(PrivateDb {
            db,
            env_dir: env,
            _tmp: tmp,
        })
    }

    /// Stop the server, keeping its data.
    pub fn stop(&self) {
        let st = Command::new("bash")
            .arg(self.env_dir.join("mariadb-stop.sh"))
            .arg(&self.db.dir)
            .arg("--keep")
            .status()
            .expect("mariadb-stop.sh");
        assert!(st.success());
    }

    /// Start it again on the same data directory and port.
    pub fn restart(&self) {
        let o = Command::new("bash")
            .arg(self.env_dir.join("mariadb-start.sh"))
            .arg(&self.db.dir)
            .output()
            .expect("mariadb-start.sh");
        assert!(
            o.status.success(),
            "mariadb-start.sh again: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for PrivateDb {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.env_dir.join("mariadb-stop.sh"))
            .arg(&self.db.dir)
            .status();
    }
}

/// Decode a `HEX(…)` column.
pub fn unhex(h: &str) -> String {
    let b: Vec<u8> = (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8(b).expect("utf-8")
}
