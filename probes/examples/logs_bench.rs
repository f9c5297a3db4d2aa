//! Rule-engine throughput: replays a generated kernel log (mostly noise, ~1 line in 1,000
//! matching a rule) through the default kernel-monitor rules with NPD's buffer semantics,
//! on one thread, and prints lines/s.
//!
//! ```text
//! cargo run --release -p probes --example logs_bench -- [LINES] [RULE_FILE]
//! ```
//! LINES defaults to 1,000,000; RULE_FILE defaults to the built-in kernel-monitor.json.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use probes::logs::{Matcher, MonitorConfig, MonitorStats};

/// Kernel noise as it appears on busy Kubernetes nodes.
const NOISE: &[&str] = &[
    "audit: type=1400 audit({t}.123:{n}): apparmor=\"DENIED\" operation=\"open\" profile=\"cri-containerd.apparmor.d\" name=\"/proc/{n}/status\" pid={n} comm=\"runc\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0",
    "IPv6: ADDRCONF(NETDEV_CHANGE): cali{n:x}: link becomes ready",
    "cni0: port {p}(veth{n:x}) entered blocking state",
    "cni0: port {p}(veth{n:x}) entered forwarding state",
    "device veth{n:x} entered promiscuous mode",
    "EXT4-fs (nvme0n1p{p}): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.",
    "overlayfs: upperdir is in-use as upperdir/workdir of another mount, accessing files from both mounts will result in undefined behavior.",
    "xfs filesystem being remounted at /var/lib/kubelet/pods/{n:x}/volumes supports timestamps until 2038",
    "eth0: renamed from tmp{n}",
    "IPVS: rr: TCP 10.96.{p}.{p}:443 - no destination available",
    "nf_conntrack: default automatic helper assignment has been turned off for security reasons",
    "TCP: request_sock_TCP: Possible SYN flooding on port {n}. Sending cookies.  Check SNMP counters.",
    "docker0: port {p}(veth{n:x}) entered disabled state",
    "kauditd_printk_skb: {p} callbacks suppressed",
    "EXT4-fs (dm-{p}): re-mounted. Opts: (null). Quota mode: none.",
    " dump_stack_lvl+0x57/0x80",
    " ? srso_alias_return_thunk+0x5/0xfbef5",
    "systemd[1]: Started cri-containerd-{n:x}.scope - libcontainer container {n:x}.",
    "cgroup: fork rejected by pids controller in /kubepods/burstable/pod{n:x}",
    "Memory cgroup stats for /kubepods/burstable/pod{n:x}/{n:x}:",
];

/// Lines the default rules report (1 in 1,000 of the generated log).
const PROBLEMS: &[&str] = &[
    "INFO: task kworker/u8:{p}:{n} blocked for more than 120 seconds.",
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab/{n:x},task_memcg=/kubepods/burstable/pod3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab/{n:x},task=java,pid={n},uid=0",
    "nf_conntrack: table full, dropping packet",
    "eth{p}: neighbor table overflow!",
    "TCP: too many orphaned sockets",
    "BUG: kernel NULL pointer dereference, address: 00000000000000{p}",
    "unregister_netdevice: waiting for eth{p} to become free. Usage count = {p}",
];

fn render(template: &str, n: u64) -> String {
    template
        .replace("{t}", &(1_700_000_000 + n / 100).to_string())
        .replace("{n:x}", &format!("{:x}", n.wrapping_mul(2_654_435_761)))
        .replace("{n}", &(n % 100_000).to_string())
        .replace("{p}", &(n % 16).to_string())
}

fn rss_kib() -> Option<u64> {
    let status =
        std::fs::read_to_string(probes::HostPaths::default().proc().join("self/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|s| {
            s.replace(['_', ','], "")
                .parse()
                .expect("LINES must be a number")
        })
        .unwrap_or(1_000_000);
    let config = match args.next() {
        Some(p) => MonitorConfig::load(&p).expect("rule file"),
        None => MonitorConfig::defaults()
            .expect("default rules")
            .into_iter()
            .next()
            .expect("kernel-monitor"),
    };
    println!(
        "rules: {} ({} rules: {} single-line, {} multi-line), bufferSize {}",
        config.origin,
        config.rules.len(),
        config.ruleset.fast_rule_count(),
        config.ruleset.multiline_rule_count(),
        config.buffer_size
    );
    // A pool of 100,000 distinct lines, cycled; 1 in 1,000 is a problem line.
    let pool: Vec<String> = (0..100_000u64)
        .map(|i| {
            if i % 1000 == 999 {
                render(PROBLEMS[(i / 1000) as usize % PROBLEMS.len()], i)
            } else {
                render(NOISE[(i as usize * 7 + i as usize / 13) % NOISE.len()], i)
            }
        })
        .collect();
    let avg_len = pool.iter().map(|l| l.len()).sum::<usize>() / pool.len();
    let stats = Arc::new(MonitorStats::new(config.source.clone()));
    let mut matcher = Matcher::new(config, Arc::clone(&stats), SystemTime::now());
    let now = SystemTime::now();
    let rss_before = rss_kib();
    let mut findings = 0u64;
    let started = Instant::now();
    for i in 0..total {
        let (f, _) = matcher.push(&pool[(i % pool.len() as u64) as usize], now);
        findings += f.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let rss_after = rss_kib();
    println!(
        "{total} lines (avg {avg_len} B) in {secs:.3} s on one thread: {:.0} lines/s, {} matches, {findings} findings",
        total as f64 / secs,
        stats.matches.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        println!("RSS before {a} KiB, after {b} KiB (the pool of lines is allocated before)");
    }
}
