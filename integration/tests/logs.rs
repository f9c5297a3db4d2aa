//! Kernel log monitor, end to end through the built binary (`nodeprobe watch-logs`,
//! `nodeprobe rules ...`) against the real `/dev/kmsg` and a real memcg OOM kill.
//!
//! Every kmsg test holds one lock (the ring is global), writes each line on a fresh fd
//! (per-fd ratelimit) with a unique marker, and matches only on that marker. Nothing here
//! floods the ring unless `NODEPROBE_IT_KMSG_FLOOD=1` is set (then one bounded flood).

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use nodeprobe_integration::journal::write_journal;
use nodeprobe_integration::kmsg::{
    default_kernel_rules, default_kernel_rules_path, kmsg_lock, kmsg_ok, kmsg_write,
};
use nodeprobe_integration::oom::{oom_ok, PodCgroup};
use nodeprobe_integration::{binary, nodeprobe, require, unique};
use serde_json::Value;

/// A rule file in a temp dir.
fn rule_file(dir: &Path, name: &str, json: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

/// A running `nodeprobe watch-logs --output json`.
struct Watcher {
    child: Child,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    stderr_path: PathBuf,
}

impl Watcher {
    fn start(rules: Option<&Path>, state_dir: &Path, tmp: &Path) -> Watcher {
        let stderr_path = tmp.join(format!("stderr-{}", unique("w")));
        let mut cmd = Command::new(binary());
        for (k, _) in std::env::vars() {
            if k.starts_with("NODEPROBE_") && k != "NODEPROBE_BIN" {
                cmd.env_remove(k);
            }
        }
        if let Some(r) = rules {
            cmd.arg("--log-monitors").arg(r);
        }
        cmd.arg("--state-dir")
            .arg(state_dir)
            .args(["--log-level", "info", "watch-logs", "--output", "json"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        let mut child = cmd.spawn().expect("spawn nodeprobe watch-logs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("watch-logs printed non-JSON {line:?}: {e}"),
                }
            }
        });
        let mut w = Watcher {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr_path,
        };
        w.wait_for("ready", Duration::from_secs(20), |v| v["kind"] == "ready");
        w
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Collect output for `d`.
    fn collect(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => break,
            }
        }
    }

    /// Wait for a line matching `pred` (also among those already seen).
    fn wait_for(&mut self, what: &str, d: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_from(0, what, d, pred)
    }

    /// Wait for a line matching `pred` among output lines from index `from` on.
    fn wait_for_from(
        &mut self,
        from: usize,
        what: &str,
        d: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().skip(from).find(|v| pred(v)) {
            return v.clone();
        }
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "timed out waiting for {what}; output: {:#?}\nstderr:\n{}",
            self.seen,
            self.stderr()
        );
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.seen.iter().filter(|v| pred(v)).count()
    }

    /// SIGTERM, wait for exit, collect the rest of the output (incl. the stats line).
    fn stop(mut self) -> Vec<Value> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(st.success(), "watch-logs exited {st}: {}", self.stderr());
                break;
            }
            assert!(Instant::now() < end, "watch-logs did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Ok(v) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(v);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_event(v: &Value, reason: &str) -> bool {
    v["kind"] == "event" && v["reason"] == reason
}

fn is_cond(v: &Value, cond: &str, status: &str) -> bool {
    v["kind"] == "condition" && v["condition"] == cond && v["status"] == status
}

#[test]
fn task_hung_line_gives_exactly_one_event() {
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique("hung");
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-monitor","lookback":"0","bufferSize":10,"conditions":[],
            "rules":[{{"type":"temporary","reason":"TaskHung","pattern":"{m}: INFO: task [\\S ]+:\\w+ blocked for more than \\w+ seconds\\."}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules), &tmp.path().join("state"), tmp.path());
    kmsg_write(6, &format!("{m}: unrelated noise"));
    kmsg_write(
        3,
        &format!("{m}: INFO: task kworker/u8:1:123 blocked for more than 120 seconds."),
    );
    kmsg_write(6, &format!("{m}: more noise after"));
    let e = w.wait_for("TaskHung event", Duration::from_secs(10), |v| {
        is_event(v, "TaskHung")
    });
    assert_eq!(
        e["message"],
        format!("{m}: INFO: task kworker/u8:1:123 blocked for more than 120 seconds.")
    );
    assert_eq!(e["source"], "it-monitor");
    w.collect(Duration::from_millis(1500));
    assert_eq!(w.count(|v| is_event(v, "TaskHung")), 1, "{:#?}", w.seen);
    let out = w.stop();
    let stats = out
        .iter()
        .find(|v| v["kind"] == "stats")
        .expect("stats line");
    assert!(stats["monitors"][0]["records_read"].as_u64().unwrap() >= 3);
    assert_eq!(stats["monitors"][0]["matches"], 1);
}

#[test]
fn multi_line_rule_matches_adjacent_records_only() {
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique("multi");
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-multi","bufferSize":10,
            "rules":[{{"type":"temporary","reason":"TwoLines","pattern":"{m}: Kill process \\d+ \\(\\w+\\) score \\d+ or sacrifice child\\n{m}: Killed process \\d+ \\(\\w+\\).*","patternGeneratedMessageSuffix":"two-line rule"}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules), &tmp.path().join("state"), tmp.path());
    // separated by noise: no match
    kmsg_write(
        3,
        &format!("{m}: Kill process 1 (a) score 9 or sacrifice child"),
    );
    kmsg_write(6, &format!("{m}: noise in between"));
    kmsg_write(3, &format!("{m}: Killed process 1 (a) total-vm:1kB"));
    // adjacent: one match
    kmsg_write(
        3,
        &format!("{m}: Kill process 2 (b) score 9 or sacrifice child"),
    );
    kmsg_write(3, &format!("{m}: Killed process 2 (b) total-vm:2kB"));
    let e = w.wait_for("TwoLines event", Duration::from_secs(10), |v| {
        is_event(v, "TwoLines")
    });
    assert_eq!(
        e["message"],
        format!(
            "{m}: Kill process 2 (b) score 9 or sacrifice child\n{m}: Killed process 2 (b) total-vm:2kB; two-line rule"
        )
    );
    w.collect(Duration::from_millis(1000));
    assert_eq!(w.count(|v| is_event(v, "TwoLines")), 1, "{:#?}", w.seen);
}

#[test]
fn restart_resumes_after_the_cursor_without_duplicates_or_loss() {
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let m = unique("restart");
    // lookback 5m: NPD would replay line A after a restart; the cursor must win.
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-restart","lookback":"5m","rules":[{{"type":"temporary","reason":"Marked","pattern":"{m}: line \\w+"}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    kmsg_write(4, &format!("{m}: line A"));
    w.wait_for("line A", Duration::from_secs(10), |v| {
        is_event(v, "Marked") && v["message"] == format!("{m}: line A")
    });
    w.stop();
    assert!(
        state.read_dir().unwrap().count() >= 1,
        "no state file written"
    );
    // written while the agent is down
    kmsg_write(4, &format!("{m}: line B"));
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    kmsg_write(4, &format!("{m}: line C"));
    w.wait_for("line C", Duration::from_secs(10), |v| {
        is_event(v, "Marked") && v["message"] == format!("{m}: line C")
    });
    w.collect(Duration::from_millis(1000));
    let msgs: Vec<String> = w
        .seen
        .iter()
        .filter(|v| is_event(v, "Marked"))
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        msgs,
        vec![format!("{m}: line B"), format!("{m}: line C")],
        "after restart: B (written while down) and C, never A again"
    );
}

#[test]
fn state_from_another_boot_is_ignored_and_lookback_applies() {
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let m = unique("boot");
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-boot","lookback":"5m",
            "conditions":[{{"type":"ItCond","reason":"ItFine","message":"fine"}}],
            "rules":[{{"type":"temporary","reason":"Before","pattern":"{m}: before start"}}]}}"#
        ),
    );
    // a cursor far ahead and a True condition, but from another boot
    std::fs::write(
        state.join("logmonitor-kmsg-it-boot.json"),
        r#"{"version":1,"boot_id":"00000000-0000-0000-0000-000000000000","last_seq":999999999999,
            "conditions":[{"condition":"ItCond","status":"True","reason":"Old","message":"old","transition_unix_ms":1}]}"#,
    )
    .unwrap();
    kmsg_write(4, &format!("{m}: before start"));
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    w.wait_for(
        "line from before start (lookback)",
        Duration::from_secs(10),
        |v| is_event(v, "Before"),
    );
    let c = w.wait_for("initial condition", Duration::from_secs(5), |v| {
        v["kind"] == "condition" && v["condition"] == "ItCond"
    });
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ItFine");
    w.stop();

    // a corrupt state file is a warning, not a crash
    let m2 = unique("corrupt");
    std::fs::write(state.join("logmonitor-kmsg-it-boot.json"), b"{not json").unwrap();
    let rules2 = rule_file(
        tmp.path(),
        "r2.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-boot","rules":[{{"type":"temporary","reason":"After","pattern":"{m2}: after"}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules2), &state, tmp.path());
    kmsg_write(4, &format!("{m2}: after"));
    w.wait_for(
        "event despite corrupt state",
        Duration::from_secs(10),
        |v| is_event(v, "After"),
    );
    assert!(w.stderr().contains("corrupt state file"), "{}", w.stderr());
    w.stop();

    // an unwritable state directory is a warning too
    let m3 = unique("unwritable");
    let not_a_dir = tmp.path().join("plain-file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let rules3 = rule_file(
        tmp.path(),
        "r3.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-unwritable","rules":[{{"type":"temporary","reason":"Still","pattern":"{m3}: still works"}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules3), &not_a_dir.join("state"), tmp.path());
    kmsg_write(4, &format!("{m3}: still works"));
    w.wait_for(
        "event despite unwritable state",
        Duration::from_secs(10),
        |v| is_event(v, "Still"),
    );
    let out = w.stop();
    let stats = out.iter().find(|v| v["kind"] == "stats").expect("stats");
    assert!(
        stats["monitors"][0]["state_errors"].as_u64().unwrap() > 0,
        "{stats}"
    );
}

#[test]
fn permanent_condition_survives_restart_and_clear_after_clears() {
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let m = unique("ro");
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-ro","lookback":"5m",
            "conditions":[
              {{"type":"ReadonlyFilesystem","reason":"FilesystemIsNotReadOnly","message":"Filesystem is not read-only"}},
              {{"type":"ItFlaky","reason":"ItNotFlaky","message":"not flaky","clearAfter":"2s"}}],
            "rules":[
              {{"type":"permanent","condition":"ReadonlyFilesystem","reason":"FilesystemIsReadOnly","pattern":"{m}: EXT4-fs \\(\\w+\\): Remounting filesystem read-only"}},
              {{"type":"permanent","condition":"ItFlaky","reason":"ItIsFlaky","pattern":"{m}: flaky"}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    let init = w.wait_for("initial ReadonlyFilesystem", Duration::from_secs(5), |v| {
        is_cond(v, "ReadonlyFilesystem", "False")
    });
    assert_eq!(init["reason"], "FilesystemIsNotReadOnly");
    kmsg_write(
        2,
        &format!("{m}: EXT4-fs (sda1): Remounting filesystem read-only"),
    );
    kmsg_write(4, &format!("{m}: flaky"));
    let t = w.wait_for("ReadonlyFilesystem True", Duration::from_secs(10), |v| {
        is_cond(v, "ReadonlyFilesystem", "True")
    });
    assert_eq!(t["reason"], "FilesystemIsReadOnly");
    assert_eq!(
        t["message"],
        format!("{m}: EXT4-fs (sda1): Remounting filesystem read-only")
    );
    w.wait_for("ItFlaky True", Duration::from_secs(10), |v| {
        is_cond(v, "ItFlaky", "True")
    });
    let after = w.seen.len();
    let cleared = w.wait_for_from(after, "ItFlaky cleared", Duration::from_secs(10), |v| {
        is_cond(v, "ItFlaky", "False")
    });
    assert_eq!(cleared["reason"], "ItNotFlaky");
    assert_eq!(cleared["message"], "not flaky");
    w.stop();

    // restart in the same boot: still True, same reason, same transition time, no new
    // change (the line is inside the 5m lookback, but the cursor is past it)
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    let again = w.wait_for("restored ReadonlyFilesystem", Duration::from_secs(5), |v| {
        v["kind"] == "condition" && v["condition"] == "ReadonlyFilesystem"
    });
    assert_eq!(again["status"], "True");
    assert_eq!(again["reason"], "FilesystemIsReadOnly");
    assert_eq!(again["transition_unix_ms"], t["transition_unix_ms"]);
    w.collect(Duration::from_millis(1000));
    assert_eq!(
        w.count(|v| v["kind"] == "condition" && v["condition"] == "ReadonlyFilesystem"),
        1,
        "{:#?}",
        w.seen
    );
    let flaky = w.seen.iter().find(|v| v["condition"] == "ItFlaky").unwrap();
    assert_eq!(flaky["status"], "False");
}

/// A real memcg OOM kill in a kubelet-like cgroup v1 path, seen by the default rules.
#[test]
fn real_pod_oom_kill_is_attributed() {
    if !kmsg_ok() || !oom_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let cg = PodCgroup::create(20);
    let (uid, cid) = (cg.uid.clone(), cg.container_id.clone());

    // default rules (kernel-monitor, and docker-monitor on the host journal, or its outage)
    let mut w = Watcher::start(None, &tmp.path().join("state"), tmp.path());
    let ready = w
        .seen
        .iter()
        .find(|v| v["kind"] == "ready")
        .unwrap()
        .clone();
    assert!(
        ready["monitors"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("kernel-monitor")),
        "{ready}"
    );
    cg.oom_kill();
    let e = w.wait_for("PodOOMKilling for our pod", Duration::from_secs(15), |v| {
        is_event(v, "PodOOMKilling") && v["oom"]["pod_uid"] == uid.as_str()
    });
    assert_eq!(e["source"], "kernel-monitor");
    assert_eq!(e["oom"]["container_id"], cid.as_str());
    assert_eq!(e["oom"]["task"], "python3");
    assert!(e["oom"]["pid"].as_u64().unwrap() > 0);
    assert_eq!(e["oom"]["memcg"], cg.memcg());
    assert!(e["message"].as_str().unwrap().starts_with("oom-kill:"));
    // fires once per OOM kill (NPD's alternation re-fires on later lines)
    kmsg_write(6, &unique("oom-after"));
    kmsg_write(6, &unique("oom-after"));
    w.collect(Duration::from_millis(1000));
    assert_eq!(
        w.count(|v| is_event(v, "PodOOMKilling") && v["oom"]["pod_uid"] == uid.as_str()),
        1,
        "{:#?}",
        w.seen
    );
    drop(w);
    drop(cg);
}

#[test]
fn rules_check_and_test_report_errors_with_usage_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let good = rule_file(
        tmp.path(),
        "good.json",
        r#"{"plugin":"kmsg","source":"s","conditions":[],"rules":[{"type":"temporary","reason":"TaskHung","pattern":"task \\S+:\\w+ blocked for more than \\w+ seconds\\."}]}"#,
    );
    let bad_regex = rule_file(
        tmp.path(),
        "bad-regex.json",
        r#"{"plugin":"kmsg","rules":[{"type":"temporary","reason":"Broken","pattern":"task (\\S+ blocked"}]}"#,
    );
    let malformed = rule_file(
        tmp.path(),
        "malformed.json",
        r#"{"plugin":"kmsg","rules":[{"#,
    );

    let r = nodeprobe(&["rules", "check", good.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("OK"), "{r:?}");

    let r = nodeprobe(&[
        "rules",
        "check",
        good.to_str().unwrap(),
        bad_regex.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(r.stderr.contains("bad-regex.json"), "{r:?}");
    assert!(r.stderr.contains("\"Broken\""), "{r:?}");
    assert!(r.stderr.contains("unclosed group"), "{r:?}");

    let r = nodeprobe(&["rules", "check", malformed.to_str().unwrap()]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(
        r.stderr.contains("malformed.json: malformed rule file"),
        "{r:?}"
    );

    // the daemon-side loader refuses them too, before touching the kernel log
    let r = nodeprobe(&[
        "--config.system-log-monitor",
        bad_regex.to_str().unwrap(),
        "--state-dir",
        tmp.path().to_str().unwrap(),
        "watch-logs",
    ]);
    assert_eq!(r.code, 64, "{r:?}");
    assert!(r.stderr.contains("\"Broken\""), "{r:?}");

    // rules test: offline replay with NPD semantics
    let r = nodeprobe(&[
        "rules",
        "test",
        "--rules",
        good.to_str().unwrap(),
        "--output",
        "json",
        "--line",
        "noise",
        "--line",
        "INFO: task kworker/0:1:42 blocked for more than 120 seconds.",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["lines"], 2);
    assert_eq!(v["counts"]["TaskHung"], 1);
    assert_eq!(v["matches"][0]["line"], 2);
    // the short form: rule file as first path, lines on stdin
    let out = Command::new(binary())
        .args(["rules", "test", good.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"x\nINFO: task a:1 blocked for more than 5 seconds.\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("line 2: TaskHung (temporary)"), "{text}");
    assert!(text.contains("TaskHung: 1"), "{text}");

    // the default kernel rules against today's kernel wording, from a dmesg -r log
    let log = tmp.path().join("dmesg.txt");
    std::fs::write(
        &log,
        "<1>[  100.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
         <4>[  100.100000] Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI\n\
         <3>[  101.000000] EXT4-fs (sda1): Remounting filesystem read-only\n\
         <6>[  102.000000] eth0: neighbor table overflow!\n\
         <6>[  103.000000] nothing here\n",
    )
    .unwrap();
    let rules = default_kernel_rules_path();
    let r = nodeprobe(&[
        "rules",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "kmsg",
        "--output",
        "json",
        log.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["counts"]["KernelOops"], 2, "{v:#}");
    assert_eq!(v["counts"]["FilesystemIsReadOnly"], 1, "{v:#}");
    assert_eq!(v["counts"]["ARPOverFlow"], 1, "{v:#}");
}

/// Opt-in (`NODEPROBE_IT_KMSG_FLOOD=1`): one bounded flood that overruns the global ring
/// while the monitor is stopped (SIGSTOP), then a rule line: still detected, lost > 0.
#[test]
fn ring_overrun_is_counted_and_reading_goes_on() {
    if std::env::var("NODEPROBE_IT_KMSG_FLOOD").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: kmsg flood test (set NODEPROBE_IT_KMSG_FLOOD=1; it rotates the global ring)"
        );
        return;
    }
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique("flood");
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-flood","rules":[{{"type":"temporary","reason":"AfterFlood","pattern":"{m}: after the flood"}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules), &tmp.path().join("state"), tmp.path());
    let pid = w.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    // A reader of our own, positioned at the newest record now: once a read on it fails
    // with EPIPE, the ring has wrapped past where the stopped monitor was too. Flood until
    // then (whatever the ring size), bounded at 20,000 lines (~18 MiB).
    let mut probe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg for reading");
    std::io::Seek::seek(&mut probe, std::io::SeekFrom::End(0)).expect("seek kmsg end");
    let filler = "x".repeat(900);
    let mut overrun = false;
    let mut i = 0;
    while !overrun && i < 20_000 {
        for _ in 0..50 {
            kmsg_write(7, &format!("{m}: flood {i} {filler}"));
            i += 1;
        }
        let mut buf = [0u8; 8192];
        overrun = matches!(
            std::io::Read::read(&mut probe, &mut buf),
            Err(e) if e.raw_os_error() == Some(libc::EPIPE)
        );
    }
    assert!(overrun, "the ring did not wrap after {i} lines");
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    kmsg_write(4, &format!("{m}: after the flood"));
    w.wait_for("rule line after the flood", Duration::from_secs(15), |v| {
        is_event(v, "AfterFlood")
    });
    let out = w.stop();
    let stats = out.iter().find(|v| v["kind"] == "stats").expect("stats");
    assert!(
        stats["monitors"][0]["records_lost"].as_u64().unwrap() > 0,
        "{stats:#}"
    );
    assert!(
        stats["monitors"][0]["overruns"].as_u64().unwrap() > 0,
        "{stats:#}"
    );
}

/// The users' docker-monitor.json (journald, SYSLOG_IDENTIFIER=dockerd) over real journal
/// files: CorruptDockerImage found once, other identifiers ignored, no replay on restart,
/// entries added later (while running and while stopped) are found.
#[test]
fn journald_corrupt_docker_image_from_real_journal_files() {
    if !require(
        Path::new("/lib/systemd/systemd-journal-remote").exists(),
        "systemd-journal-remote (Debian package systemd-journal-remote)",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let journal_dir = tmp.path().join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    let users = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probes/rules/docker-monitor.json");
    let text = std::fs::read_to_string(users).unwrap().replace(
        "\"/var/log/journal\"",
        &format!("{:?}", journal_dir.to_str().unwrap()),
    );
    let rules = rule_file(tmp.path(), "docker-monitor.json", &text);
    let m = unique("jd");
    let corrupt = |tag: &str| {
        format!("Error trying v2 registry: failed to register layer: rename /var/lib/docker/image/overlay2/layerdb/tmp/{m}-{tag} /var/lib/docker/image/overlay2/layerdb/sha256/x: directory not empty")
    };
    write_journal(
        &journal_dir,
        "a",
        &[
            ("dockerd", "level=info msg=\"noise\""),
            ("containerd", &corrupt("other-identifier")),
            ("dockerd", &corrupt("one")),
        ],
    );
    let state = tmp.path().join("state");
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    let e = w.wait_for("CorruptDockerImage", Duration::from_secs(10), |v| {
        is_event(v, "CorruptDockerImage")
    });
    assert_eq!(e["source"], "docker-monitor");
    assert_eq!(e["message"], corrupt("one"));
    // a new journal file while running
    write_journal(&journal_dir, "b", &[("dockerd", &corrupt("two"))]);
    w.wait_for("second CorruptDockerImage", Duration::from_secs(10), |v| {
        is_event(v, "CorruptDockerImage") && v["message"] == corrupt("two")
    });
    w.stop();
    // written while stopped; nothing replayed after the restart
    write_journal(&journal_dir, "c", &[("dockerd", &corrupt("three"))]);
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    w.wait_for(
        "entry written while stopped",
        Duration::from_secs(10),
        |v| is_event(v, "CorruptDockerImage") && v["message"] == corrupt("three"),
    );
    w.collect(Duration::from_millis(1500));
    let msgs: Vec<&str> = w
        .seen
        .iter()
        .filter(|v| is_event(v, "CorruptDockerImage"))
        .filter_map(|v| v["message"].as_str())
        .collect();
    assert_eq!(msgs, vec![corrupt("three").as_str()]);
}

/// Syslog-style timestamp (`Jan _2 15:04:05`, UTC) of now.
fn syslog_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%b %e %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// NPD's upstream kernel-monitor-filelog.json (logPath pointed at a temp file): lines
/// appended are matched, a rotated file is followed, nothing is replayed after a restart.
#[test]
fn filelog_follows_appends_and_rotation_without_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("kern.log");
    std::fs::write(&log, "").unwrap();
    let upstream = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../probes/tests/fixtures/npd-config/kernel-monitor-filelog.json");
    let text = std::fs::read_to_string(upstream).unwrap().replace(
        "\"/var/log/kern.log\"",
        &format!("{:?}", log.to_str().unwrap()),
    );
    let rules = rule_file(tmp.path(), "kernel-monitor-filelog.json", &text);
    let m = unique("fl");
    let append = |msg: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(f, "{} node1 kernel: [ 1234.5678] {msg}", syslog_now()).unwrap();
    };
    let state = tmp.path().join("state");
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    append(&format!("{m} unrelated"));
    append(&format!(
        "INFO: task {m}:123 blocked for more than 120 seconds."
    ));
    let e = w.wait_for("TaskHung from the file", Duration::from_secs(10), |v| {
        is_event(v, "TaskHung")
    });
    assert_eq!(
        e["message"],
        format!("INFO: task {m}:123 blocked for more than 120 seconds.")
    );
    // rotation: rename away, new file at the path
    std::fs::rename(&log, tmp.path().join("kern.log.1")).unwrap();
    std::fs::write(&log, "").unwrap();
    append(&format!(
        "INFO: task {m}-rotated:7 blocked for more than 120 seconds."
    ));
    w.wait_for("TaskHung after rotation", Duration::from_secs(10), |v| {
        is_event(v, "TaskHung") && v["message"].as_str().unwrap().contains("-rotated")
    });
    w.stop();
    append(&format!(
        "INFO: task {m}-down:8 blocked for more than 120 seconds."
    ));
    let mut w = Watcher::start(Some(&rules), &state, tmp.path());
    w.wait_for(
        "line appended while stopped",
        Duration::from_secs(10),
        |v| is_event(v, "TaskHung") && v["message"].as_str().unwrap().contains("-down"),
    );
    w.collect(Duration::from_millis(1200));
    assert_eq!(w.count(|v| is_event(v, "TaskHung")), 1, "{:#?}", w.seen);
}

/// Every default kernel rule against today's kernel wording, written to the real kmsg.
/// (The default file with `lookback` 0, so lines from earlier tests are not replayed.)
#[test]
fn default_kernel_rules_match_todays_wording_via_kmsg() {
    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    let rules = rule_file(
        tmp.path(),
        "kernel-monitor.json",
        &default_kernel_rules("0"),
    );
    let m = unique("defaults");
    let lines: &[(u8, &str, &str)] = &[
        (
            3,
            "TaskHung",
            "INFO: task jbd2/nvme0n1p1-8:312 blocked for more than 122 seconds.",
        ),
        (
            4,
            "UnregisterNetDevice",
            "unregister_netdevice: waiting for eth0 to become free. Usage count = 2",
        ),
        (
            1,
            "KernelOops",
            "BUG: kernel NULL pointer dereference, address: 0000000000000008",
        ),
        (
            4,
            "KernelOops",
            "Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI",
        ),
        (
            3,
            "AUFSUmountHung",
            "INFO: task umount.aufs:77 blocked for more than 120 seconds.",
        ),
        (
            3,
            "DockerHung",
            "INFO: task docker:78 blocked for more than 120 seconds.",
        ),
        (
            2,
            "FilesystemIsReadOnly",
            "EXT4-fs (nvme0n1p1): Remounting filesystem read-only",
        ),
        (
            4,
            "TCPMemOverFlow",
            "TCP: out of memory -- consider tuning tcp_mem",
        ),
        (4, "TCPSkOverFlow", "TCP: too many orphaned sockets"),
        (4, "NFOverFlow", "nf_conntrack: table full, dropping packet"),
        (
            4,
            "ARPOverFlow",
            "neighbour: arp_cache: neighbor table overflow!",
        ),
    ];
    let mut w = Watcher::start(Some(&rules), &tmp.path().join("state"), tmp.path());
    for (level, _, line) in lines {
        kmsg_write(*level, &format!("{m}: {line}"));
    }
    let ours = |v: &Value| v["message"].as_str().is_some_and(|s| s.contains(&m));
    for (_, reason, line) in lines {
        let want = format!("{m}: {line}");
        w.wait_for(reason, Duration::from_secs(10), |v| {
            v["message"] == want.as_str()
                && ((v["kind"] == "event" && v["reason"] == *reason)
                    || (v["kind"] == "condition"
                        && v["reason"] == *reason
                        && v["status"] == "True"))
        });
    }
    w.collect(Duration::from_millis(800));
    // umount.aufs and docker hangs are TaskHung events too (as in NPD); nothing else fires
    let events: Vec<&str> = w
        .seen
        .iter()
        .filter(|v| v["kind"] == "event" && ours(v))
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "TaskHung",
            "UnregisterNetDevice",
            "KernelOops",
            "KernelOops",
            "TaskHung",
            "TaskHung",
            "TCPMemOverFlow",
            "TCPSkOverFlow",
            "NFOverFlow",
            "ARPOverFlow"
        ]
    );
    let conditions: Vec<(String, String)> = w
        .seen
        .iter()
        .filter(|v| v["kind"] == "condition" && ours(v))
        .map(|v| {
            (
                v["condition"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        vec![
            ("KernelDeadlock".to_string(), "AUFSUmountHung".to_string()),
            ("KernelDeadlock".to_string(), "DockerHung".to_string()),
            (
                "ReadonlyFilesystem".to_string(),
                "FilesystemIsReadOnly".to_string()
            ),
        ]
    );
}

/// Issue 15: the replay tool reads any bytes. The issue's file (a line with `\xff\xfe`, then
/// a TaskHung line) through the shipped kernel rules, as a user types it; plus CRLF, NUL
/// bytes and a line far over the limit. And watch-logs over the real kernel log, where a
/// record carries the same bytes.
#[test]
fn replay_and_watch_read_any_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mixed = tmp.path().join("mixed.log");
    std::fs::write(
        &mixed,
        b"Nov 27 07:15:14 node1 kernel: usb 1-1: string descriptor \xff\xfe\n\
          Nov 27 07:15:15 node1 kernel: INFO: task kworker/0:1:42 blocked for more than 120 seconds.\n",
    )
    .unwrap();
    let rules = default_kernel_rules_path();
    let r = nodeprobe(&[
        "rules",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "syslog",
        mixed.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("line 2: TaskHung (temporary)"), "{r:?}");
    assert!(
        r.stdout
            .contains("line 1: note: invalid UTF-8 replaced with U+FFFD"),
        "{r:?}"
    );
    assert!(r.stdout.contains("TaskHung: 1"), "{r:?}");

    // CRLF endings, a zero-filled block before a line, 3 MiB without a newline, then a hit
    let mut junk = b"Nov 27 07:15:14 node1 kernel: a\r\n\0\0\0\0".to_vec();
    junk.extend_from_slice(
        b"Nov 27 07:15:15 node1 kernel: INFO: task a:1 blocked for more than 5 seconds.\r\n",
    );
    junk.extend(std::iter::repeat_n(b'x', 3 << 20));
    junk.extend_from_slice(b"\nNov 27 07:15:16 node1 kernel: TCP: too many orphaned sockets\n");
    let junk_path = tmp.path().join("junk.log");
    std::fs::write(&junk_path, &junk).unwrap();
    let r = nodeprobe(&[
        "rules",
        "test",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "syslog",
        "--output",
        "json",
        junk_path.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["lines"], 4, "{v:#}");
    assert_eq!(v["counts"]["TaskHung"], 1, "{v:#}");
    assert_eq!(v["counts"]["TCPSkOverFlow"], 1, "{v:#}");
    assert_eq!(v["matches"][0]["line"], 2, "{v:#}");
    assert_eq!(
        v["matches"][0]["message"],
        "INFO: task a:1 blocked for more than 5 seconds."
    );
    assert_eq!(v["matches"][1]["line"], 4, "{v:#}");
    assert_eq!(v["repaired"]["cut_lines"], 1, "{v:#}");
    assert_eq!(v["repaired"]["nul_bytes"], 4, "{v:#}");

    if !kmsg_ok() {
        return;
    }
    let _g = kmsg_lock();
    let m = unique("bytes");
    let rules = rule_file(
        tmp.path(),
        "r.json",
        &format!(
            r#"{{"plugin":"kmsg","source":"it-monitor","lookback":"0","conditions":[],
            "rules":[{{"type":"temporary","reason":"TaskHung","pattern":"{m}: INFO: task [\\S ]+:\\w+ blocked for more than \\w+ seconds\\."}}]}}"#
        ),
    );
    let mut w = Watcher::start(Some(&rules), &tmp.path().join("state"), tmp.path());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .unwrap();
    let mut record = format!("<6>{m}: descriptor ").into_bytes();
    record.extend_from_slice(b"\xff\xfe\x01 end\n");
    f.write_all(&record).unwrap();
    drop(f);
    kmsg_write(
        3,
        &format!("{m}: INFO: task kworker/u8:1:123 blocked for more than 120 seconds."),
    );
    w.wait_for("TaskHung event", Duration::from_secs(10), |v| {
        is_event(v, "TaskHung")
    });
    let out = w.stop();
    let stats = out.iter().find(|v| v["kind"] == "stats").expect("stats");
    assert_eq!(stats["monitors"][0]["parse_errors"], 0, "{stats:#}");
}
