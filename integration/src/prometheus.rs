//! A real Prometheus server (Debian's `prometheus` package, 2.42) for the monitoring tests:
//! started by `integration/env/prometheus-start.sh` on a free loopback port with a config in a
//! temp dir, stopped by its PID (`prometheus-stop.sh`) on drop, and queried through its HTTP
//! API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::agent::free_port;
use crate::fakeapi::parse_json_response;
use crate::require;

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// Whether Prometheus and promtool are installed (skips locally, fails in CI; the test
/// command's services-start.sh installs them).
pub fn prometheus_ok() -> bool {
    require(
        Path::new(PROMETHEUS).exists() && Path::new(PROMTOOL).exists(),
        "Debian's prometheus package (/usr/bin/prometheus, /usr/bin/promtool)",
    )
}

fn env_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("env").join(name)
}

/// A running Prometheus; stopped (by PID) and its directory removed on drop.
pub struct Prometheus {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Prometheus {
    /// Start with `config` (prometheus.yml text) and `files` (name, text) written next to it
    /// (rule files the config names relatively).
    pub fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("nodeprobe-it-prometheus-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write rule file");
        }
        let port = free_port();
        let out = Command::new("bash")
            .arg(env_script("prometheus-start.sh"))
            .arg(dir.path())
            .arg(port.to_string())
            .output()
            .expect("run prometheus-start.sh");
        assert!(
            out.status.success(),
            "prometheus-start.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Prometheus { dir, port }
    }

    /// Prometheus's own log (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// POST a form to an API path: (HTTP status, JSON body).
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.http("POST", path, &body)
    }

    /// GET an API path: (HTTP status, JSON body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.http("GET", path, "")
    }

    fn http(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        // HTTP/1.0: the answer is the whole body up to the close (never chunked).
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to prometheus");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write request");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        parse_json_response(&buf)
    }

    /// Evaluate `expr` now: the result vector, or Prometheus's error (a parse error, …).
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let (code, v) = self.post("/api/v1/query", &[("query", expr)]);
        if code != 200 || v["status"] != "success" {
            return Err(format!("{code}: {v}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The label sets of every series `selector` matches (over the last hour).
    pub fn series(&self, selector: &str) -> Result<Vec<Value>, String> {
        let (code, v) = self.post("/api/v1/series", &[("match[]", selector)]);
        if code != 200 || v["status"] != "success" {
            return Err(format!("{code}: {v}"));
        }
        Ok(v["data"].as_array().cloned().unwrap_or_default())
    }

    /// Active alerts (pending and firing).
    pub fn alerts(&self) -> Vec<Value> {
        let (_, v) = self.get("/api/v1/alerts");
        v["data"]["alerts"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(env_script("prometheus-stop.sh"))
            .arg(self.dir.path())
            .status();
    }
}

/// Percent-encoding for a form value (everything but unreserved characters).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
