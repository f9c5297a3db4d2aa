//! Per-probe cost: runs each named probe's check ROUNDS times on this machine (host root
//! `/`, default settings, one current-thread runtime as in the agent) and prints the wall
//! time per check (mean, median, p95) and the CPU time per check of the whole process
//! (`CLOCK_PROCESS_CPUTIME_ID`: user + system of every thread, the blocking pool's too).
//!
//! ```text
//! cargo run --release -p probes --example probe_cost -- [ROUNDS] [PROBE,...]
//! ```
//!
//! ROUNDS defaults to 200; PROBE defaults to fd-pressure,psi,readonly-mounts,hung-tasks,kubelet
//! (the kubelet probe is measured against whatever answers on 127.0.0.1:10248, or a refused
//! connection).

use std::time::{Duration, Instant};

use probes::registry::{build, ProbeConfigs};
use probes::HostPaths;

fn cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .expect("clock_gettime");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args
        .next()
        .map(|r| r.parse().expect("ROUNDS: a number"))
        .unwrap_or(200);
    let names = args
        .next()
        .unwrap_or_else(|| "fd-pressure,psi,readonly-mounts,hung-tasks,kubelet".into());
    let names: Vec<&str> = names.split(',').collect();
    let host = HostPaths::default();
    let probes = build(&host, &ProbeConfigs::default(), &names);
    assert_eq!(probes.len(), names.len(), "unknown probe in {names:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("probe             rounds   mean      median    p95       cpu/check  outcome");
    for p in &probes {
        // warm up (page cache, first connections)
        for _ in 0..5 {
            rt.block_on(probes::run_probe(p.as_ref()));
        }
        let cpu0 = cpu_time();
        let mut times = Vec::with_capacity(rounds);
        let mut last = None;
        for _ in 0..rounds {
            let t = Instant::now();
            let run = rt.block_on(probes::run_probe(p.as_ref()));
            times.push(t.elapsed());
            last = Some(run);
        }
        let cpu = (cpu_time() - cpu0) / rounds as u32;
        times.sort();
        let mean = times.iter().sum::<Duration>() / rounds as u32;
        let outcome = last
            .map(|r| {
                r.findings
                    .iter()
                    .map(|f| {
                        let s = f.outcome.status().map_or("n/a", |s| s.as_str());
                        format!("{}={s}", f.spec.condition)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:<17} {:<8} {:<9} {:<9} {:<9} {:<10} {outcome}",
            p.name(),
            rounds,
            format!("{:.3}ms", mean.as_secs_f64() * 1e3),
            format!("{:.3}ms", times[rounds / 2].as_secs_f64() * 1e3),
            format!("{:.3}ms", times[rounds * 95 / 100].as_secs_f64() * 1e3),
            format!("{:.3}ms", cpu.as_secs_f64() * 1e3),
        );
    }
}
