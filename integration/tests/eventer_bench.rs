//! Eventer benchmarks (ignored; run by `integration/bench/eventer.sh`, figures in the README):
//! against the real kube-apiserver of `NODEPROBE_IT_KUBECONFIG` and a local webhook that
//! answers at once,
//! - latency: Event created at the API (just before the create request) → body received,
//!   p50/p99 over `NODEPROBE_BENCH_LATENCY_EVENTS` (default 300) Events at ~20/s;
//! - throughput: `NODEPROBE_BENCH_EVENTS` (default 10,000) Events in the cluster, an eventer
//!   started with `--since 1h` delivers all of them through filters; first → last body;
//! - footprint: the eventer's VmRSS and child processes with those Events in the cluster.
//!
//! No assertions on time: the figures are printed.

use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{self, StreamExt};
use nodeprobe_integration::eventer::{real_kubeconfig, Ev, Eventer, Kube, TestNamespace};
use nodeprobe_integration::procstat::{children, env_n, rss_kib};
use nodeprobe_integration::receivers::{Receiver, Vendor};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
#[ignore = "benchmark: integration/bench/eventer.sh"]
fn eventer_latency_throughput_footprint() {
    let kc = real_kubeconfig().expect("NODEPROBE_IT_KUBECONFIG");
    let k = Kube::new(&kc);
    let ns = TestNamespace::new(&k, "evbench");
    let n = ns.name.clone();

    // Latency.
    let hook = Receiver::start(Vendor::Webhook { status: 200 });
    let sink = format!(
        "webhook:{}?custom_body_file=/dev/null&namespaces={n}",
        hook.url("/lat")
    );
    let tpl = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tpl.path(), r#"{"name": "{{ .Name }}"}"#).unwrap();
    let sink = sink.replace("/dev/null", tpl.path().to_str().unwrap());
    let e = Eventer::start(&kc, &["--sink", &sink], &[]);
    let count = env_n("NODEPROBE_BENCH_LATENCY_EVENTS", 300);
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("lat-{i}");
        let t = SystemTime::now();
        k.create_event(&Ev {
            ns: &n,
            name: &name,
            kind: "Pod",
            obj: "p",
            obj_ns: Some(&n),
            type_: "Warning",
            reason: "Bench",
            message: "latency",
        });
        sent.push((name, t));
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = hook.wait_for("every latency body", Duration::from_secs(60), |g| {
        g.len() >= count
    });
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(name, t)| {
            let r = got
                .iter()
                .find(|r| r.body.contains(&format!("\"{name}\"")))?;
            r.wall
                .duration_since(*t)
                .ok()
                .map(|d| d.as_secs_f64() * 1000.0)
        })
        .collect();
    println!(
        "BENCH latency: {} events, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
    drop(e);

    // 10,000 Events in the cluster.
    let total = env_n("NODEPROBE_BENCH_EVENTS", 10_000);
    let t0 = Instant::now();
    k.block(async {
        stream::iter(0..total)
            .for_each_concurrent(16, |i| {
                let k = &k;
                let n = &n;
                async move {
                    let name = format!("bulk-{i}");
                    let v = Kube::event_json(&Ev {
                        ns: n,
                        name: &name,
                        kind: "Pod",
                        obj: &format!("pod-{}", i % 500),
                        obj_ns: Some(n),
                        type_: if i % 3 == 0 { "Normal" } else { "Warning" },
                        reason: "BulkReason",
                        message: "bulk event for the throughput benchmark",
                    });
                    let ev: k8s_openapi::api::core::v1::Event = serde_json::from_value(v).unwrap();
                    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
                        kube::Api::namespaced(k.client.clone(), n);
                    api.create(&Default::default(), &ev).await.expect("create");
                }
            })
            .await
    });
    println!(
        "BENCH created {total} events in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Throughput: a fresh eventer delivers all of them (first list, --since) through filters.
    let hook = Receiver::start(Vendor::Webhook { status: 200 });
    let sink = format!(
        "webhook:{}?custom_body_file={}&namespaces={n},other&reason=^Bulk,Nothing&kinds=Pod&level=Normal",
        hook.url("/tp"),
        tpl.path().display()
    );
    let start = Instant::now();
    let e = Eventer::start(
        &kc,
        &["--sink", &sink, "--since", "1h", "--sink-queue", "20000"],
        &[],
    );
    let got = hook.wait_for("every bulk body", Duration::from_secs(300), |g| {
        g.len() >= total
    });
    let first = got.first().unwrap().at;
    let last = got.iter().map(|r| r.at).max().unwrap();
    let secs = last.duration_since(first).as_secs_f64().max(1e-3);
    println!(
        "BENCH throughput: {} events in {:.2} s = {:.0} events/s (start to first body {:.2} s)",
        got.len(),
        secs,
        got.len() as f64 / secs,
        first.duration_since(start).as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "BENCH footprint with {total} events in the cluster: VmRSS {} KiB, child processes {}",
        rss_kib(e.pid()),
        children(e.pid())
    );
    let dup = got.len() - total;
    println!("BENCH duplicates: {dup}");
}
