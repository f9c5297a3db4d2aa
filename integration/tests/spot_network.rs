//! Spot termination and network probes through the built binary.
//!
//! Spot: a network namespace made by the test (only `lo`, with 100.100.100.200,
//! 169.254.169.254 and 169.254.0.23 on it) runs `env/metadata-server.py`; nodeprobe runs
//! inside it with the clouds' real default endpoints. Network: fixture proc roots via
//! `--host-root`, and a DNS responder the test runs on 127.0.0.1. No traffic leaves loopback
//! or the namespace.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodeprobe_integration::{binary, is_root, nodeprobe, require, unique, Run};
use serde_json::Value;

const WHEN: &str = "2026-11-27T09:30:00Z";
const SILENT_UDP_PORT: u16 = 5300;

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn env_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("env").join(name)
}

/// A network namespace with the metadata addresses on `lo` and the fake metadata server
/// inside. Server killed and namespace deleted on drop.
struct MetadataNs {
    name: String,
    server: Option<Child>,
    dir: tempfile::TempDir,
}

impl MetadataNs {
    fn start() -> Option<Self> {
        if !require(
            is_root() && have("ip", "-V") && have(python(), "--version"),
            "root, iproute2 and python3 for the metadata network namespace",
        ) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("nodeprobe-it-meta-")
            .tempdir()
            .expect("tempdir");
        let name = unique("meta");
        let mut ns = MetadataNs {
            name: name.clone(),
            server: None,
            dir,
        };
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        for a in [
            "100.100.100.200/32",
            "169.254.169.254/32",
            "169.254.0.23/32",
        ] {
            ip(&["-n", &name, "addr", "add", a, "dev", "lo"]);
        }
        ns.set_mode("404");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &name, python()])
            .arg(env_script("metadata-server.py"))
            .arg("80")
            .arg(ns.mode_file())
            .arg(SILENT_UDP_PORT.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start metadata server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read server stdout");
        ns.server = Some(child);
        assert_eq!(line.trim(), "ready", "metadata server did not start");
        Some(ns)
    }

    fn mode_file(&self) -> PathBuf {
        self.dir.path().join("mode")
    }

    fn set_mode(&self, mode: &str) {
        std::fs::write(self.mode_file(), mode).expect("write mode");
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mode.log")).unwrap_or_default()
    }

    /// Run nodeprobe inside the namespace; returns the run and its wall time.
    fn nodeprobe(&self, args: &[&str]) -> (Run, Duration) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .arg(binary())
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("NODEPROBE_") {
                cmd.env_remove(k);
            }
        }
        let started = Instant::now();
        let out = cmd.output().expect("run nodeprobe in the namespace");
        (Run::from_output(out), started.elapsed())
    }
}

impl Drop for MetadataNs {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    nodeprobe_integration::sh("ip", args);
}

/// A host root with the DMI attributes of a cloud (or none).
fn dmi_root(attrs: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("nodeprobe-it-dmi-")
        .tempdir()
        .expect("tempdir");
    let id = d.path().join("sys/class/dmi/id");
    std::fs::create_dir_all(&id).unwrap();
    for (k, v) in attrs {
        std::fs::write(id.join(k), format!("{v}\n")).unwrap();
    }
    d
}

fn dmi_of(cloud: &str) -> Vec<(&'static str, &'static str)> {
    match cloud {
        "aliyun" => vec![
            ("sys_vendor", "Alibaba Cloud"),
            ("product_name", "Alibaba Cloud ECS"),
        ],
        "aws" => vec![("sys_vendor", "Amazon EC2"), ("bios_vendor", "Amazon EC2")],
        "azure" => vec![
            ("sys_vendor", "Microsoft Corporation"),
            ("product_name", "Virtual Machine"),
            ("chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77"),
        ],
        "gcp" => vec![
            ("sys_vendor", "Google"),
            ("product_name", "Google Compute Engine"),
        ],
        "tencent" => vec![("sys_vendor", "Tencent Cloud"), ("product_name", "CVM")],
        other => panic!("no DMI for {other}"),
    }
}

fn spot_line(run: &Run) -> Value {
    let line = run.result("InstanceExpired");
    assert_eq!(line["probe"], "spot", "{line}");
    line
}

/// 404 → False, (Azure/GCP: their own "no notice" answer → False), notice → True with the
/// time (cloud detected from DMI), garbage → Unknown, slow → Unknown within the per-request
/// timeout.
fn spot_scenarios(cloud: &str) {
    let Some(ns) = MetadataNs::start() else {
        return;
    };
    let root = dmi_root(&dmi_of(cloud));
    let root = root.path().to_str().unwrap();
    let base = [
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "spot",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ns.nodeprobe(&refs)
    };

    let mut no_notice = vec!["404"];
    if matches!(cloud, "azure" | "gcp") {
        no_notice.push("empty");
    }
    for mode in no_notice {
        ns.set_mode(mode);
        let (r, _) = run(&["--cloud", cloud]);
        let l = spot_line(&r);
        assert_eq!(l["status"], "False", "{cloud}/{mode}: {l}\n{}", r.stderr);
        assert_eq!(l["reason"], "InstanceNotToBeTerminated", "{l}");
        assert_eq!(
            l["message"], "instance is not going to be terminated",
            "{l}"
        );
        assert_eq!(r.code, 0, "{cloud}/{mode}");
    }

    ns.set_mode("notice");
    // The cloud comes from DMI under the host root here (no --cloud).
    let (r, _) = run(&["--host-root", root]);
    let l = spot_line(&r);
    assert_eq!(l["status"], "True", "{cloud}/notice: {l}\n{}", r.stderr);
    assert_eq!(l["reason"], "InstanceToBeTerminated", "{l}");
    let msg = l["message"].as_str().unwrap();
    if cloud == "gcp" {
        assert!(msg.contains("preempted is TRUE"), "{msg}");
    } else {
        assert!(
            msg.starts_with(&format!("instance is going to be terminated at {WHEN}")),
            "{cloud}: {msg}"
        );
    }
    assert_eq!(r.code, 1);

    ns.set_mode("garbage");
    let (r, _) = run(&["--cloud", cloud]);
    let l = spot_line(&r);
    assert_eq!(l["status"], "Unknown", "{cloud}/garbage: {l}");
    let msg = l["message"].as_str().unwrap();
    assert!(
        msg.starts_with(cloud) && (msg.contains("not") || msg.contains("neither")),
        "{msg}"
    );
    assert_eq!(r.code, 2);

    ns.set_mode("slow");
    let (r, took) = run(&["--cloud", cloud, "--spot-request-timeout", "300ms"]);
    let l = spot_line(&r);
    assert_eq!(l["status"], "Unknown", "{cloud}/slow: {l}");
    assert!(
        l["message"].as_str().unwrap().contains("within 300ms"),
        "{l}"
    );
    assert!(took < Duration::from_secs(3), "{cloud}/slow took {took:?}");
    assert_eq!(r.code, 2);

    let log = ns.requests();
    match cloud {
        "aws" => assert!(
            log.contains("PUT /latest/api/token\nGET /latest/meta-data/spot/instance-action"),
            "{log}"
        ),
        "azure" => assert!(
            log.contains("GET /metadata/scheduledevents?api-version=2020-07-01"),
            "{log}"
        ),
        _ => assert!(!log.is_empty()),
    }
}

#[test]
fn spot_aliyun() {
    spot_scenarios("aliyun");
}

#[test]
fn spot_aws_imdsv2() {
    spot_scenarios("aws");
}

#[test]
fn spot_azure_scheduled_events() {
    spot_scenarios("azure");
}

#[test]
fn spot_gcp() {
    spot_scenarios("gcp");
}

#[test]
fn spot_tencent() {
    spot_scenarios("tencent");
}

#[test]
fn spot_unreachable_endpoint_is_unknown() {
    let Some(ns) = MetadataNs::start() else {
        return;
    };
    // Nothing listens on port 81: connection refused inside the namespace.
    let (r, _) = ns.nodeprobe(&[
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "spot",
        "--cloud",
        "aliyun",
        "--metadata-endpoint",
        "http://100.100.100.200:81",
    ]);
    let l = spot_line(&r);
    assert_eq!(l["status"], "Unknown", "{l}");
    assert!(
        l["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect to 100.100.100.200:81"),
        "{l}"
    );
}

#[test]
fn spot_without_a_cloud_is_not_applicable() {
    // No traffic: detection fails before any request.
    for attrs in [
        vec![],
        vec![
            ("sys_vendor", "QEMU"),
            ("product_name", "Standard PC (Q35 + ICH9, 2009)"),
        ],
        // Hyper-V without Azure's asset tag.
        vec![
            ("sys_vendor", "Microsoft Corporation"),
            ("product_name", "Virtual Machine"),
        ],
    ] {
        let root = dmi_root(&attrs);
        let r = nodeprobe(&[
            "--oneshot",
            "--oneshot-logs=false",
            "--output",
            "json",
            "--probes",
            "spot",
            "--host-root",
            root.path().to_str().unwrap(),
        ]);
        let v = r.json();
        assert_eq!(v["results"], serde_json::json!([]), "{v:#}");
        let na = &v["not_applicable"][0];
        assert_eq!(na["probe"], "spot", "{v:#}");
        assert_eq!(na["condition"], "InstanceExpired");
        assert!(
            na["message"]
                .as_str()
                .unwrap()
                .contains("not in a known cloud"),
            "{na}"
        );
        assert_eq!(r.code, 0);
    }
    let r = nodeprobe(&[
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "spot",
        "--cloud",
        "none",
    ]);
    assert_eq!(
        r.json()["not_applicable"][0]["condition"],
        "InstanceExpired"
    );
}

/// Item 6: a hung metadata service and a hung DNS server never delay another probe beyond
/// its own deadline; the whole run takes about the slowest probe's deadline.
#[test]
fn hung_dependencies_do_not_delay_other_probes() {
    let Some(ns) = MetadataNs::start() else {
        return;
    };
    ns.set_mode("slow");
    let silent = format!("127.0.0.1:{SILENT_UDP_PORT}");
    let (r, took) = ns.nodeprobe(&[
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "spot,network,pid-pressure",
        "--cloud",
        "aws",
        "--spot-request-timeout",
        "1s",
        "--network-dns-name",
        "silent.nodeprobe.invalid",
        "--network-dns-server",
        &silent,
        "--network-dns-timeout",
        "1s",
    ]);
    assert!(took < Duration::from_millis(4000), "took {took:?}");
    let spot = spot_line(&r);
    assert_eq!(spot["status"], "Unknown", "{spot}");
    let net = r.result("NetworkProblem");
    assert_eq!(net["status"], "True", "{net}");
    assert!(
        net["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1s"),
        "{net}"
    );
    let pid = r.result("PidPressure");
    assert!(pid["duration_ms"].as_u64().unwrap() < 900, "{pid}");
}

// === network ===

const ROUTE_HEADER: &str =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
const ROUTE_DEFAULT: &str = "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
const ROUTE_LINK: &str = "eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
const V6_DEFAULT: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n";
const V6_REJECT: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

/// A fixture proc root: conntrack `count/max` (None = module not loaded), IPv4 and IPv6
/// route tables.
fn proc_root(conntrack: Option<(u64, u64)>, v4: &[&str], v6: Option<&[&str]>) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("nodeprobe-it-net-")
        .tempdir()
        .expect("tempdir");
    let net = d.path().join("proc/net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(net.join("route"), format!("{ROUTE_HEADER}{}", v4.concat())).unwrap();
    if let Some(v6) = v6 {
        std::fs::write(net.join("ipv6_route"), v6.concat()).unwrap();
    }
    if let Some((count, max)) = conntrack {
        let nf = d.path().join("proc/sys/net/netfilter");
        std::fs::create_dir_all(&nf).unwrap();
        std::fs::write(nf.join("nf_conntrack_count"), format!("{count}\n")).unwrap();
        std::fs::write(nf.join("nf_conntrack_max"), format!("{max}\n")).unwrap();
    }
    d
}

fn network(root: &Path, extra: &[&str]) -> (Run, Value) {
    let mut args = vec![
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "network",
        "--host-root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let r = nodeprobe(&args);
    let l = r.result("NetworkProblem");
    (r, l)
}

#[test]
fn network_conntrack_and_routes_from_a_fixture_proc_root() {
    let healthy = proc_root(
        Some((100, 1000)),
        &[ROUTE_DEFAULT, ROUTE_LINK],
        Some(&[V6_REJECT]),
    );
    let (r, l) = network(healthy.path(), &[]);
    assert_eq!(l["status"], "False", "{l}");
    assert_eq!(l["reason"], "NodeHasNoNetworkProblem");
    assert_eq!(
        l["detail"],
        "conntrack table 10.0% full (100 of 1000 entries); default route: IPv4 via eth0, IPv6 none"
    );
    assert_eq!(r.code, 0);

    let full = proc_root(Some((950, 1000)), &[ROUTE_DEFAULT], None);
    let (r, l) = network(full.path(), &[]);
    assert_eq!(l["status"], "True", "{l}");
    assert_eq!(l["reason"], "ConntrackTableFull");
    assert_eq!(
        l["message"],
        "conntrack table 95.0% full (950 of 1000 entries), over 90%"
    );
    assert_eq!(r.code, 1);
    let (_, l) = network(full.path(), &["--network-conntrack-threshold", "96"]);
    assert_eq!(l["status"], "False", "{l}");

    // Module not loaded (no conntrack files) is not a problem.
    let unloaded = proc_root(None, &[ROUTE_DEFAULT], None);
    let (_, l) = network(unloaded.path(), &[]);
    assert_eq!(l["status"], "False", "{l}");
    assert!(
        l["detail"]
            .as_str()
            .unwrap()
            .contains("conntrack not loaded"),
        "{l}"
    );

    // Only an IPv6 default route: fine. Neither (IPv6 only a reject route): problem.
    let v6only = proc_root(None, &[ROUTE_LINK], Some(&[V6_DEFAULT]));
    let (_, l) = network(v6only.path(), &[]);
    assert_eq!(l["status"], "False", "{l}");
    let noroute = proc_root(None, &[ROUTE_LINK], Some(&[V6_REJECT]));
    let (_, l) = network(noroute.path(), &[]);
    assert_eq!(l["status"], "True", "{l}");
    assert_eq!(l["reason"], "NoDefaultRoute");
    let (_, l) = network(noroute.path(), &["--network-require-default-route=false"]);
    assert_eq!(l["status"], "False", "{l}");

    // Both failing: the generic reason, both messages.
    let both = proc_root(Some((999, 1000)), &[ROUTE_LINK], None);
    let (_, l) = network(both.path(), &[]);
    assert_eq!(l["reason"], "NodeHasNetworkProblem", "{l}");
    assert_eq!(
        l["message"],
        "ConntrackTableFull: conntrack table 99.9% full (999 of 1000 entries), over 90%; NoDefaultRoute: no default route (neither IPv4 0.0.0.0/0 nor IPv6 ::/0)"
    );

    // Unreadable route table: Unknown, never a false problem or a false Ok.
    let garbage = proc_root(None, &["this is not a route table\n"], None);
    let (r, l) = network(garbage.path(), &[]);
    assert_eq!(l["status"], "Unknown", "{l}");
    assert_eq!(r.code, 2);
}

/// A DNS responder on 127.0.0.1: NXDOMAIN for `nx.*`, 192.0.2.10 for `ok.*`, silence for
/// anything else. Stops on drop.
struct DnsResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsResponder {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(r) = answer(&buf[..n]) {
                    let _ = sock.send_to(&r, peer);
                }
            }
        });
        DnsResponder {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DnsResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Build the responder's answer to one query (None = stay silent).
fn answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 17 {
        return None;
    }
    let first_label = &q[13..13 + usize::from(q[12]).min(q.len() - 13)];
    let qtype = u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]);
    let mut r = q.to_vec();
    r[2] = 0x81; // QR, RD
    match first_label {
        b"nx" => {
            r[3] = 0x83; // RA, NXDOMAIN
        }
        b"ok" => {
            r[3] = 0x80;
            if qtype == 1 {
                r[6..8].copy_from_slice(&1u16.to_be_bytes());
                r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10]);
            }
        }
        _ => return None,
    }
    Some(r)
}

#[test]
fn network_dns_against_a_local_responder() {
    let dns = DnsResponder::start();
    let server = dns.addr.to_string();
    let root = proc_root(None, &[ROUTE_DEFAULT], None);
    let with = |name: &'static str, timeout: &'static str| {
        let server = server.clone();
        let root = root.path().to_path_buf();
        move || {
            let started = Instant::now();
            let out = network(
                &root,
                &[
                    "--network-dns-name",
                    name,
                    "--network-dns-server",
                    &server,
                    "--network-dns-timeout",
                    timeout,
                ],
            );
            (out, started.elapsed())
        }
    };

    let ((r, l), _) = with("ok.nodeprobe.invalid", "2s")();
    assert_eq!(l["status"], "False", "{l}");
    assert!(
        l["detail"].as_str().unwrap().contains(&format!(
            "dns: ok.nodeprobe.invalid resolves to 192.0.2.10 via {server}"
        )),
        "{l}"
    );
    assert_eq!(r.code, 0);

    let ((_, l), _) = with("nx.nodeprobe.invalid", "2s")();
    assert_eq!(l["status"], "True", "{l}");
    assert_eq!(l["reason"], "DNSResolutionFailed");
    assert_eq!(
        l["message"],
        format!("DNS: nx.nodeprobe.invalid does not exist (NXDOMAIN from {server})")
    );

    let ((_, l), took) = with("silent.nodeprobe.invalid", "300ms")();
    assert_eq!(l["status"], "True", "{l}");
    assert_eq!(l["reason"], "DNSResolutionFailed");
    assert_eq!(
        l["message"],
        format!(
            "DNS: cannot resolve silent.nodeprobe.invalid: {server} did not answer within 300ms"
        )
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}
