//! MySQL sink benchmarks (ignored; run by `integration/bench/eventer-mysql.sh`, figures in
//! the README) against the real kube-apiserver and the test environment's MariaDB:
//! - footprint: the eventer's VmRSS and CPU time per minute, idle for a minute and then
//!   at 1,000 Events/min for a minute (mysql sink);
//! - throughput: `NODEPROBE_BENCH_EVENTS` (default 20,000) Events in the cluster, an eventer
//!   started with `--since 1h` holds them in its buffer while a private MariaDB is stopped
//!   and upserts them when it is back: first row → last row; once with the
//!   default batches (500 rows per statement) and once with `batch=1` (one statement per
//!   Event, kube-eventer's way, though on one kept connection).
//!
//! No assertions on time: the figures are printed.

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use nodeprobe_integration::eventer::{real_kubeconfig, Ev, Eventer, Kube, TestNamespace};
use nodeprobe_integration::mysql::{Db, PrivateDb};
use nodeprobe_integration::procstat::{cpu_seconds, env_n, rss_kib};

fn ev<'a>(n: &'a str, name: &'a str, obj: &'a str) -> Ev<'a> {
    Ev {
        ns: n,
        name,
        kind: "Pod",
        obj,
        obj_ns: Some(n),
        type_: "Warning",
        reason: "BulkReason",
        message: "Back-off restarting failed container web in pod web-5d8f7c9b6-x2x9q",
    }
}

fn count(db: &Db) -> usize {
    // before the table exists: 0
    db.try_sql("SELECT COUNT(*) FROM kube_event")
        .ok()
        .and_then(|r| {
            r.first()
                .and_then(|r| r.first())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "benchmark: integration/bench/eventer-mysql.sh"]
fn eventer_mysql_throughput_and_footprint() {
    let kc = real_kubeconfig().expect("NODEPROBE_IT_KUBECONFIG");
    let server = Db::from_env().expect("NODEPROBE_IT_MYSQL_*");
    let k = Kube::new(&kc);
    let ns = TestNamespace::new(&k, "evsqlbench");
    let n = ns.name.clone();

    // Footprint: idle, then 1,000 Events/min (NODEPROBE_BENCH_FOOTPRINT=0 skips it).
    if env_n("NODEPROBE_BENCH_FOOTPRINT", 1) == 1 {
        let db = server.fresh("evsqlfp");
        let sink = db.sink("MYSQL_PW", &format!("table=kube_event&namespaces={n}"));
        let e = Eventer::start(
            &kc,
            &["--sink", &sink],
            &[("MYSQL_PW", db.password.as_str())],
        );
        std::thread::sleep(Duration::from_secs(5));
        let (c0, t0) = (cpu_seconds(e.pid()), Instant::now());
        std::thread::sleep(Duration::from_secs(60));
        let idle_cpu = (cpu_seconds(e.pid()) - c0) / t0.elapsed().as_secs_f64() * 60.0;
        println!(
            "BENCH idle: VmRSS {} KiB, CPU {:.3} s/min",
            rss_kib(e.pid()),
            idle_cpu
        );
        let (c0, t0) = (cpu_seconds(e.pid()), Instant::now());
        let mut max_rss = 0;
        for i in 0..1000 {
            let name = format!("fp-{i}");
            k.create_event(&ev(&n, &name, &format!("web-{}", i % 50)));
            let due = Duration::from_millis(60 * (i as u64 + 1));
            if let Some(w) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(w);
            }
            if i % 100 == 0 {
                max_rss = max_rss.max(rss_kib(e.pid()));
            }
        }
        let load_cpu = (cpu_seconds(e.pid()) - c0) / t0.elapsed().as_secs_f64() * 60.0;
        max_rss = max_rss.max(rss_kib(e.pid()));
        println!(
            "BENCH 1000 events/min for {:.0} s: VmRSS max {} KiB, CPU {:.3} s/min, rows {}",
            t0.elapsed().as_secs_f64(),
            max_rss,
            load_cpu,
            count(&db)
        );
        drop(e);
    }

    // Events in the cluster for the throughput runs (a namespace of their own).
    let bulk = TestNamespace::new(&k, "evsqlbulk");
    let n = bulk.name.clone();
    let total = env_n("NODEPROBE_BENCH_EVENTS", 20_000);
    let t0 = Instant::now();
    k.block(async {
        stream::iter(0..total)
            .for_each_concurrent(16, |i| {
                let k = &k;
                let n = &n;
                async move {
                    let name = format!("bulk-{i}");
                    let obj = format!("pod-{}", i % 500);
                    let v = Kube::event_json(&ev(n, &name, &obj));
                    let e: k8s_openapi::api::core::v1::Event = serde_json::from_value(v).unwrap();
                    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
                        kube::Api::namespaced(k.client.clone(), n);
                    api.create(&Default::default(), &e).await.expect("create");
                }
            })
            .await
    });
    println!(
        "BENCH created {total} events in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Throughput of the sink alone: the Events wait in the buffer while a private server is
    // down, then the server starts: first row → last row.
    for (label, extra) in [
        ("batched (500 rows)", ""),
        ("one row per statement", "&batch=1"),
    ] {
        let private = PrivateDb::start().expect("a private MariaDB");
        let db = &private.db;
        private.stop();
        let sink = db.sink(
            "MYSQL_PW",
            &format!("table=kube_event&namespaces={n}&buffer=100000{extra}"),
        );
        let e = Eventer::start(
            &kc,
            &["--sink", &sink, "--since", "1h", "--sink-queue", "100000"],
            &[("MYSQL_PW", db.password.as_str())],
        );
        // the server is away from the start: the list fills the buffer; wait until the
        // source has handed over every Event (the queue stops growing)
        let mut last_q = -1.0;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let q = e.metric(r#"nodeprobe_eventer_sink_queue_length{sink="mysql"}"#);
            if q >= total as f64 || (q > 0.0 && q == last_q) {
                last_q = q;
                break;
            }
            last_q = q;
        }
        private.restart();
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut first = None;
        let mut rss = 0;
        let last = loop {
            let c = count(db);
            let now = Instant::now();
            if c > 0 && first.is_none() {
                first = Some((now, c));
            }
            rss = rss.max(rss_kib(e.pid()));
            if c >= total || now > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let (t1, c1) = first.expect("rows");
        let secs = last.duration_since(t1).as_secs_f64().max(1e-3);
        let done = count(db);
        println!(
            "BENCH {label}: {} upserts in {:.2} s = {:.0} updates/s ({last_q} buffered; first poll saw {c1}; VmRSS max {} KiB, dropped {})",
            done - c1,
            secs,
            (done - c1) as f64 / secs,
            rss,
            e.metric(r#"nodeprobe_eventer_sink_dropped_total{sink="mysql",cause="buffer_full"}"#)
        );
    }
}
