//! The eventer across restarts and with two replicas, on the real kube-apiserver
//! (`NODEPROBE_IT_KUBECONFIG`, required in CI): the progress record in the Lease, leader
//! election with failover, a stolen Lease.

use std::time::{Duration, Instant};

use nodeprobe_integration::eventer::{real_kube, Ev, Eventer, TestNamespace};
use nodeprobe_integration::unique;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn ev<'a>(ns: &'a str, name: &'a str) -> Ev<'a> {
    Ev {
        ns,
        name,
        kind: "Pod",
        obj: name,
        obj_ns: Some(ns),
        type_: "Warning",
        reason: "BackOff",
        message: "Back-off restarting failed container",
    }
}

/// (Event name, count) of every line the `log` sink wrote.
fn delivered(e: &Eventer) -> Vec<(String, i64)> {
    e.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["metadata"]["name"].as_str().unwrap_or("").to_string(),
                v["count"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn wait_for(e: &Eventer, what: (&str, i64), limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if delivered(e)
            .iter()
            .any(|(n, c)| n == what.0 && *c == what.1)
        {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{what:?} not delivered in {limit:?}: {:?}\n{}",
            delivered(e),
            e.logs()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn sink(ns: &str) -> String {
    format!("log:?level=Normal&namespaces={ns}")
}

#[test]
fn a_restart_delivers_what_happened_meanwhile_once() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evrestart");
    let lease = unique("restart");
    let args = [
        "--sink",
        &sink(&ns.name),
        "--lease-name",
        &lease,
        "--lease-namespace",
        &ns.name,
    ];
    let mut a = Eventer::start(&k.kubeconfig, &args, &[]);
    k.create_event(&ev(&ns.name, "one"));
    wait_for(&a, ("one", 1), WAIT);
    assert_eq!(a.stop(), Some(0));
    assert!(a.logs().contains("progress stored"), "{}", a.logs());
    // while no eventer runs
    k.create_event(&ev(&ns.name, "two"));
    k.create_event(&ev(&ns.name, "three"));
    k.bump_event(&ns.name, "one", 2);
    let b = Eventer::start(&k.kubeconfig, &args, &[]);
    for want in [("two", 1), ("three", 1), ("one", 2)] {
        wait_for(&b, want, WAIT);
    }
    k.create_event(&ev(&ns.name, "four"));
    wait_for(&b, ("four", 1), WAIT);
    std::thread::sleep(Duration::from_secs(1));
    let mut got = delivered(&b);
    got.sort();
    assert_eq!(
        got,
        [
            ("four".into(), 1),
            ("one".into(), 2),
            ("three".into(), 1),
            ("two".into(), 1)
        ],
        "{}",
        b.logs()
    );
    assert!(
        b.logs().contains("resuming after resourceVersion"),
        "{}",
        b.logs()
    );
}

#[test]
fn the_first_start_delivers_only_new_events() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evfirst");
    k.create_event(&ev(&ns.name, "old"));
    // Event times have whole seconds: "new" is what happens after the start's second.
    std::thread::sleep(Duration::from_millis(1100));
    let lease = unique("first");
    let e = Eventer::start(
        &k.kubeconfig,
        &[
            "--sink",
            &sink(&ns.name),
            "--lease-name",
            &lease,
            "--lease-namespace",
            &ns.name,
        ],
        &[],
    );
    k.create_event(&ev(&ns.name, "new"));
    wait_for(&e, ("new", 1), WAIT);
    assert!(
        !delivered(&e).iter().any(|(n, _)| n == "old"),
        "{:?}",
        delivered(&e)
    );
}

fn elect_args<'a>(ns: &'a str, lease: &'a str, sink: &'a str) -> Vec<&'a str> {
    vec![
        "--sink",
        sink,
        "--leader-elect",
        "--lease-name",
        lease,
        "--lease-namespace",
        ns,
        "--lease-duration",
        "6s",
        "--lease-renew-deadline",
        "4s",
        "--lease-retry",
        "1s",
    ]
}

#[test]
fn two_replicas_one_delivers_and_the_other_takes_over_within_the_lease() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evha");
    let lease = unique("ha");
    let s = sink(&ns.name);
    let args = elect_args(&ns.name, &lease, &s);
    let mut a = Eventer::start(&k.kubeconfig, &args, &[]);
    // a leads (it was alone); b is a ready standby
    let t0 = Instant::now();
    while a.metric("nodeprobe_eventer_leader") != 1.0 {
        assert!(t0.elapsed() < WAIT, "{}", a.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = Eventer::start(&k.kubeconfig, &args, &[]);
    assert_eq!(b.metric("nodeprobe_eventer_leader"), 0.0, "{}", b.logs());
    k.create_event(&ev(&ns.name, "first"));
    wait_for(&a, ("first", 1), WAIT);
    // The record is stored at every renewal (1 s): let one pass, then kill the leader.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        delivered(&b).is_empty(),
        "the standby delivered: {:?}",
        delivered(&b)
    );
    a.kill();
    let killed = Instant::now();
    k.create_event(&ev(&ns.name, "gap"));
    k.bump_event(&ns.name, "first", 2);
    wait_for(&b, ("gap", 1), WAIT);
    let took = killed.elapsed();
    wait_for(&b, ("first", 2), WAIT);
    eprintln!("failover: the standby delivered {took:?} after SIGKILL of the leader (lease 6 s)");
    assert!(
        took <= Duration::from_secs(8),
        "failover took {took:?}: {}",
        b.logs()
    );
    // nothing the old leader had delivered is sent again
    assert!(
        !delivered(&b).contains(&("first".into(), 1)),
        "{:?}",
        delivered(&b)
    );
    assert_eq!(b.metric("nodeprobe_eventer_leader"), 1.0);
}

#[test]
fn a_stolen_lease_stops_the_leader() {
    let Some(k) = real_kube() else { return };
    let ns = TestNamespace::new(&k, "evsteal");
    let lease = unique("steal");
    let s = sink(&ns.name);
    let mut a = Eventer::start(&k.kubeconfig, &elect_args(&ns.name, &lease, &s), &[]);
    let t0 = Instant::now();
    while a.metric("nodeprobe_eventer_leader") != 1.0 {
        assert!(t0.elapsed() < WAIT, "{}", a.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Another holder writes the Lease (a resourceVersion-guarded update, as a rival would).
    use k8s_openapi::api::coordination::v1::Lease;
    let api: kube::Api<Lease> = kube::Api::namespaced(k.client.clone(), &ns.name);
    let mut l = k.block(api.get(&lease)).expect("lease");
    l.spec.as_mut().expect("spec").holder_identity = Some("thief".into());
    k.block(api.replace(&lease, &Default::default(), &l))
        .expect("steal");
    let code = a.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(1), "{}", a.logs());
    assert!(a.logs().contains("held by \"thief\""), "{}", a.logs());
}
