//! Cost of `--oneshot`'s kernel-log pass over a full ring, without touching the host's
//! ring: a synthetic ring of raw `/dev/kmsg` records (kernel noise of busy Kubernetes
//! nodes, 1 line in 200 matching a default rule) filling `SIZE` bytes of message text, all
//! within the lookback (the worst case), each run parsed with the kmsg parser, timed like
//! the device reader does and scanned with the default kernel-monitor rules
//! ([`probes::logs::scan::scan`]). The `read()` system calls are measured on this machine's
//! real ring ([`probes::logs::scan::read_kernel`], read only; root), per record, and added
//! for a full ring's count of records, with the rule load, for the estimate of the whole
//! pass. `integration/bench/oneshot.sh` measures the binary end to end.
//!
//! ```text
//! cargo run --release -p probes --example oneshot_scan_bench -- [SIZE_KIB...]
//! ```
//! SIZE_KIB defaults to 128 (the kernel's default `log_buf_len`), 1024 and 32768 (the largest
//! `log_buf_len`).

use std::time::{Duration, Instant, SystemTime};

use probes::logs::driver::Record;
use probes::logs::scan::{read_kernel, scan};
use probes::logs::{kmsg, MonitorConfig, MonitorStats, Plugin};

const NOISE: &[&str] = &[
    "audit: type=1400 audit(1700000000.123:{n}): apparmor=\"DENIED\" operation=\"open\" profile=\"cri-containerd.apparmor.d\" name=\"/proc/{n}/status\" pid={n} comm=\"runc\"",
    "IPv6: ADDRCONF(NETDEV_CHANGE): cali{n}: link becomes ready",
    "cni0: port {p}(veth{n}) entered blocking state",
    "cni0: port {p}(veth{n}) entered forwarding state",
    "device veth{n} entered promiscuous mode",
    "EXT4-fs (nvme0n1p{p}): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.",
    "eth0: renamed from tmp{n}",
    "IPVS: rr: TCP 10.96.{p}.{p}:443 - no destination available",
    "TCP: request_sock_TCP: Possible SYN flooding on port {n}. Sending cookies.  Check SNMP counters.",
    "kauditd_printk_skb: {p} callbacks suppressed",
    " dump_stack_lvl+0x57/0x80",
    "Memory cgroup stats for /kubepods/burstable/pod{n}/{n}:",
];

const PROBLEMS: &[&str] = &[
    "INFO: task kworker/u8:{p}:{n} blocked for more than 120 seconds.",
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab/{n},task_memcg=/kubepods/burstable/pod3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab/{n},task=java,pid={n},uid=0",
    "EXT4-fs (sda1): Remounting filesystem read-only",
];

/// Raw records (`PRI,SEQ,USEC,FLAGS;message\n`) whose messages add up to `bytes`.
fn ring(bytes: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut n = 0u64;
    while total < bytes {
        let template = if n % 200 == 199 {
            PROBLEMS[(n / 200) as usize % PROBLEMS.len()]
        } else {
            NOISE[n as usize % NOISE.len()]
        };
        let msg = template
            .replace("{n}", &format!("{:x}", n.wrapping_mul(2_654_435_761)))
            .replace("{p}", &(n % 16).to_string());
        total += msg.len();
        // one record per 100 µs, all within the last minute of a day-old boot
        let usec = 86_400_000_000 - 60_000_000 + n * 100;
        out.push(format!("6,{n},{usec},-;{msg}\n").into_bytes());
        n += 1;
    }
    out
}

fn main() {
    let sizes: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .map(|a| a.parse().expect("SIZE_KIB is a number"))
            .collect();
        if args.is_empty() {
            vec![128, 1024, 32 * 1024]
        } else {
            args
        }
    };
    // loading (parse, validate, compile) the built-in rule files, as --oneshot does first
    let mut loads: Vec<Duration> = (0..20)
        .map(|_| {
            let t0 = Instant::now();
            MonitorConfig::defaults().expect("built-in rules");
            t0.elapsed()
        })
        .collect();
    loads.sort();
    println!(
        "built-in rule files load+compile: median {:.2} ms",
        loads[loads.len() / 2].as_secs_f64() * 1e3
    );
    let load_ms = loads[loads.len() / 2].as_secs_f64() * 1e3;
    // reading the real ring, per record (the device: one read() per record)
    let kmsg_path = probes::HostPaths::default().dev().join("kmsg");
    let mut reads = Vec::new();
    let mut real_records = 0;
    for _ in 0..50 {
        let stats = std::sync::Arc::new(MonitorStats::new("bench"));
        let t0 = Instant::now();
        match read_kernel(kmsg_path.clone(), stats) {
            Ok((records, _)) => {
                reads.push(t0.elapsed());
                real_records = records.len();
            }
            Err(e) => {
                println!("the real ring cannot be read ({e}); read cost not measured");
                break;
            }
        }
    }
    reads.sort();
    let per_record_us = reads
        .get(reads.len() / 2)
        .map(|d| d.as_secs_f64() * 1e6 / real_records.max(1) as f64);
    if let Some(us) = per_record_us {
        println!(
            "real ring: {real_records} records read (open, read to EAGAIN, parse, time) in median {:.2} ms: {us:.2} us a record",
            reads[reads.len() / 2].as_secs_f64() * 1e3
        );
    }
    let config = MonitorConfig::defaults()
        .expect("built-in rules")
        .into_iter()
        .find(|c| c.plugin == Plugin::Kmsg)
        .expect("a kmsg rule file");
    for kib in sizes {
        let raw = ring(kib * 1024);
        let runs = if kib <= 1024 { 200 } else { 10 };
        let mut times = Vec::with_capacity(runs);
        let mut findings = (0, 0);
        for _ in 0..runs {
            let t0 = Instant::now();
            let now = (SystemTime::now(), Duration::from_secs(86_400));
            let records = raw.iter().filter_map(|r| {
                let k = kmsg::parse_record(r).ok()?;
                Some(Record {
                    at: kmsg::record_time(now, k.usec),
                    position: None,
                    message: k.message,
                })
            });
            let since = now.0 - Duration::from_secs(300);
            let r = scan(&config, records, Some(since), now.0);
            times.push(t0.elapsed());
            findings = (
                r.events.len() as u64 + r.events_omitted,
                r.conditions
                    .iter()
                    .filter(|c| c.status == probes::ConditionStatus::True)
                    .count(),
            );
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        if let Some(us) = per_record_us {
            println!(
                "ring {kib} KiB estimate: rule load {load_ms:.2} ms + reads {:.2} ms + scan {:.2} ms = {:.2} ms",
                us * raw.len() as f64 / 1e3,
                ms(times[times.len() / 2]),
                load_ms + us * raw.len() as f64 / 1e3 + ms(times[times.len() / 2]),
            );
        }
        println!(
            "ring {kib} KiB: {} records, {} temporary findings, {} True conditions; scan median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({runs} runs)",
            raw.len(),
            findings.0,
            findings.1,
            ms(times[times.len() / 2]),
            ms(times[times.len() * 95 / 100]),
            ms(times[times.len() - 1]),
        );
    }
}
