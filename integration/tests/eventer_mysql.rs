//! The eventer's `mysql` sink against a real MariaDB (`NODEPROBE_IT_MYSQL_*`, required in
//! CI) and the real kube-apiserver: table creation and adoption, upserts, text stored
//! unchanged, a 20 s outage, wrong credentials.

use std::time::{Duration, Instant};

use nodeprobe_integration::eventer::{real_kube, Ev, Eventer, Kube, TestNamespace};
use nodeprobe_integration::mysql::{unhex, Db, PrivateDb};

const WAIT: Duration = Duration::from_secs(40);

fn ev<'a>(ns: &'a str, name: &'a str, obj: &'a str, message: &'a str) -> Ev<'a> {
    Ev {
        ns,
        name,
        kind: "Pod",
        obj,
        obj_ns: Some(ns),
        type_: "Warning",
        reason: "BackOff",
        message,
    }
}

/// Wait until `sql` answers `want`.
fn wait_value(db: &Db, sql: &str, want: &str, e: &Eventer) {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = db
            .try_sql(sql)
            .ok()
            .and_then(|r| r.into_iter().next())
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default();
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {v:?}, want {want:?}\n{}",
            e.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(k: &Kube, db: &Db, ns: &str, extra: &str) -> Eventer {
    let sink = db.sink(
        "MYSQL_PW",
        &format!("charset=utf8&table=kube_event&namespaces={ns}{extra}"),
    );
    Eventer::start(
        &k.kubeconfig,
        &["--sink", &sink],
        &[("MYSQL_PW", db.password.as_str())],
    )
}

#[test]
fn mysql_creates_the_table_and_upserts_one_row_per_event() {
    let Some(k) = real_kube() else { return };
    let Some(server) = Db::from_env() else { return };
    let db = server.fresh("evsql");
    let ns = TestNamespace::new(&k, "evsql");
    let e = start(&k, &db, &ns.name, "");
    // one Event updated 50 times (count 1 … 50) is one row with count 50
    let created = k.create_event(&ev(
        &ns.name,
        "bump",
        "web-1",
        "Back-off restarting failed container",
    ));
    for c in 2..=50 {
        k.bump_event(&ns.name, "bump", c);
    }
    let uid = created.metadata.uid.clone().expect("uid");
    wait_value(
        &db,
        &format!("SELECT `count` FROM kube_event WHERE event_id = '{uid}'"),
        "50",
        &e,
    );
    assert_eq!(
        db.value(&format!(
            "SELECT COUNT(*) FROM kube_event WHERE event_id = '{uid}'"
        )),
        "1"
    );
    // texts stored unchanged: 10 KiB, quotes, backslashes, newlines, Chinese
    let big: String = "0123456789abcdef".repeat(640);
    let tricky = "it's \"quoted\" \\ back\\slash; DROP TABLE kube_event; --\nline 2\r\n\t容器重启失败：镜像拉取超时 🚀";
    let a = k.create_event(&ev(&ns.name, "big", "web-2", &big));
    let b = k.create_event(&ev(&ns.name, "tricky", "web-3", tricky));
    for (created, want) in [(a, big.as_str()), (b, tricky)] {
        let uid = created.metadata.uid.expect("uid");
        wait_value(
            &db,
            &format!("SELECT COUNT(*) FROM kube_event WHERE event_id = '{uid}'"),
            "1",
            &e,
        );
        let got = unhex(&db.value(&format!(
            "SELECT HEX(message) FROM kube_event WHERE event_id = '{uid}'"
        )));
        assert_eq!(got, want);
    }
    // kube-eventer's columns with their values, and the new ones
    let row = db.sql(&format!(
        "SELECT namespace, kind, name, type, reason, first_occurrence_time, last_occurrence_time, \
         DATE_FORMAT(last_occurrence, '%Y'), update_time > NOW() - INTERVAL 1 HOUR FROM kube_event WHERE event_id = '{uid}'"
    ));
    let row = &row[0];
    assert_eq!(
        &row[..5],
        [ns.name.as_str(), "Pod", "web-1", "Warning", "BackOff"]
    );
    assert!(
        row[5].contains(' ') && row[6].len() >= 19,
        "Go time text: {row:?}"
    );
    assert!(row[7].starts_with("20"), "{row:?}");
    assert_eq!(row[8], "1");
    let create = db.sql("SHOW CREATE TABLE kube_event")[0][1].clone();
    for want in [
        "UNIQUE KEY `event_id` (`event_id`)",
        "`message` text",
        "datetime(3)",
        "KEY `last_occurrence`",
        "`count` int",
    ] {
        assert!(create.contains(want), "{want} in {create}");
    }
    assert!(e.metric(r#"nodeprobe_eventer_sink_delivered_total{sink="mysql"}"#) >= 3.0);
    server.sql(&format!("DROP DATABASE `{}`", db.database));
}

#[test]
fn mysql_adopts_a_kube_eventer_table() {
    let Some(k) = real_kube() else { return };
    let Some(server) = Db::from_env() else { return };
    let db = server.fresh("evsqladopt");
    // kube-eventer's schema (common/mysql/shema.sql) with the rows it writes: one per update
    db.sql("CREATE TABLE `kube_event` (
      `id` bigint(20) NOT NULL AUTO_INCREMENT,
      `namespace` varchar(255) DEFAULT '', `kind` varchar(255) DEFAULT '', `name` varchar(255) DEFAULT '',
      `type` varchar(255) DEFAULT '', `reason` varchar(255) DEFAULT '',
      `message` varchar(255) DEFAULT '', `event_id` varchar(255) DEFAULT '',
      `first_occurrence_time` varchar(255) DEFAULT '', `last_occurrence_time` varchar(255) DEFAULT '',
      `update_time` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
      PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
    for _ in 0..3 {
        db.sql("INSERT INTO kube_event (namespace,kind,name,type,reason,message,event_id,first_occurrence_time,last_occurrence_time) \
                VALUES ('default','Node','n1','Warning','OOMKilling','old','old-uid','2026-05-01 12:00:00 +0800 CST','2026-05-01 12:00:00 +0800 CST')");
    }
    let ns = TestNamespace::new(&k, "evsqladopt");
    let e = start(&k, &db, &ns.name, "");
    let long = "x".repeat(3000);
    let c = k.create_event(&ev(&ns.name, "adopt", "web-1", &long));
    k.bump_event(&ns.name, "adopt", 2);
    let uid = c.metadata.uid.expect("uid");
    wait_value(
        &db,
        &format!("SELECT `count` FROM kube_event WHERE event_id = '{uid}'"),
        "2",
        &e,
    );
    assert_eq!(
        db.value(&format!(
            "SELECT COUNT(*) FROM kube_event WHERE event_id = '{uid}'"
        )),
        "1"
    );
    assert_eq!(
        db.value(&format!(
            "SELECT LENGTH(message) FROM kube_event WHERE event_id = '{uid}'"
        )),
        "3000"
    );
    // nothing dropped: kube-eventer's rows are all there, unchanged
    assert_eq!(
        db.value("SELECT COUNT(*) FROM kube_event WHERE event_id = 'old-uid' AND message = 'old'"),
        "3"
    );
    let create = db.sql("SHOW CREATE TABLE kube_event")[0][1].clone();
    for want in [
        "`message` text",
        "`count` int",
        "`last_occurrence` datetime(3)",
        "UNIQUE KEY `event_id` (`event_id`,`kube_eventer_id`)",
    ] {
        assert!(create.contains(want), "{want} in {create}");
    }
    server.sql(&format!("DROP DATABASE `{}`", db.database));
}

#[test]
fn mysql_outage_of_20s_loses_nothing_and_keeps_order() {
    let Some(k) = real_kube() else { return };
    if Db::from_env().is_none() {
        return;
    }
    let Some(private) = PrivateDb::start() else {
        return;
    };
    let db = &private.db;
    let ns = TestNamespace::new(&k, "evsqlout");
    let e = start(&k, db, &ns.name, "");
    let first = k.create_event(&ev(&ns.name, "before", "web-0", "before the outage"));
    wait_value(db, "SELECT COUNT(*) FROM kube_event", "1", &e);
    private.stop();
    let down = Instant::now();
    // While the server is away: 30 new Events, and one Event updated 20 times.
    let mut uids = vec![first.metadata.uid.clone().expect("uid")];
    let msgs: Vec<String> = (0..30).map(|i| format!("during the outage {i}")).collect();
    for (i, m) in msgs.iter().enumerate() {
        let name = format!("out-{i}");
        let c = k.create_event(&ev(&ns.name, &name, &format!("web-{i}"), m));
        uids.push(c.metadata.uid.expect("uid"));
    }
    for c in 2..=20 {
        k.bump_event(&ns.name, "out-0", c);
        std::thread::sleep(Duration::from_millis(200));
    }
    e.wait_metric(
        r#"nodeprobe_eventer_sink_failed_total{sink="mysql",cause="connect"}"#,
        1.0,
        WAIT,
    );
    let left = Duration::from_secs(20).saturating_sub(down.elapsed());
    std::thread::sleep(left);
    private.restart();
    wait_value(db, "SELECT COUNT(*) FROM kube_event", "31", &e);
    wait_value(
        db,
        &format!(
            "SELECT `count` FROM kube_event WHERE event_id = '{}'",
            uids[1]
        ),
        "20",
        &e,
    );
    for u in &uids {
        assert_eq!(
            db.value(&format!(
                "SELECT COUNT(*) FROM kube_event WHERE event_id = '{u}'"
            )),
            "1"
        );
    }
    assert_eq!(
        e.metric(r#"nodeprobe_eventer_sink_dropped_total{sink="mysql",cause="buffer_full"}"#),
        0.0
    );
}

#[test]
fn mysql_bounded_buffer_drops_the_oldest_and_counts() {
    let Some(k) = real_kube() else { return };
    if Db::from_env().is_none() {
        return;
    }
    let Some(private) = PrivateDb::start() else {
        return;
    };
    let db = &private.db;
    let ns = TestNamespace::new(&k, "evsqlbuf");
    let e = start(&k, db, &ns.name, "&buffer=5");
    k.create_event(&ev(&ns.name, "b-first", "web-0", "first"));
    wait_value(db, "SELECT COUNT(*) FROM kube_event", "1", &e);
    private.stop();
    for i in 0..8 {
        k.create_event(&ev(
            &ns.name,
            &format!("b-{i}"),
            &format!("web-{i}"),
            &format!("m{i}"),
        ));
    }
    e.wait_metric(
        r#"nodeprobe_eventer_sink_dropped_total{sink="mysql",cause="buffer_full"}"#,
        3.0,
        WAIT,
    );
    private.restart();
    wait_value(db, "SELECT COUNT(*) FROM kube_event", "6", &e);
    // the newest five are kept
    let kept = db.sql("SELECT message FROM kube_event WHERE message LIKE 'm%' ORDER BY message");
    let kept: Vec<&str> = kept.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(kept, ["m3", "m4", "m5", "m6", "m7"]);
    assert!(e.logs().contains("buffer of 5 full"), "{}", e.logs());
}

#[test]
fn mysql_wrong_credentials_and_missing_database_are_clear_errors() {
    let Some(k) = real_kube() else { return };
    let Some(server) = Db::from_env() else { return };
    let ns = TestNamespace::new(&k, "evsqlcred");
    let wrong = Db {
        password: "not-the-password-7781".into(),
        ..server.clone()
    };
    let e = start(&k, &wrong, &ns.name, "");
    k.create_event(&ev(&ns.name, "cred", "web-1", "x"));
    e.wait_metric(
        r#"nodeprobe_eventer_sink_failed_total{sink="mysql",cause="auth"}"#,
        1.0,
        WAIT,
    );
    let logs = e.logs();
    let target = format!("mysql {}:{}/{}", server.host, server.port, server.database);
    assert!(
        logs.contains(&target) && logs.contains("access denied"),
        "{logs}"
    );
    assert!(!logs.contains("not-the-password-7781"), "{logs}");
    drop(e);
    let missing = Db {
        database: "no_such_db_nodeprobe".into(),
        ..server.clone()
    };
    let e = start(&k, &missing, &ns.name, "");
    k.create_event(&ev(&ns.name, "nodb", "web-2", "x"));
    e.wait_metric(
        r#"nodeprobe_eventer_sink_failed_total{sink="mysql",cause="database"}"#,
        1.0,
        WAIT,
    );
    let logs = e.logs();
    assert!(
        logs.contains("database \"no_such_db_nodeprobe\" does not exist"),
        "{logs}"
    );
    assert!(!logs.contains(&server.password), "{logs}");
}

#[test]
fn mysql_events_not_written_at_shutdown_are_written_by_the_next_run() {
    let Some(k) = real_kube() else { return };
    if Db::from_env().is_none() {
        return;
    }
    let Some(private) = PrivateDb::start() else {
        return;
    };
    let db = &private.db;
    let ns = TestNamespace::new(&k, "evsqlstop");
    let lease = nodeprobe_integration::unique("sqlstop");
    let sink = db.sink(
        "MYSQL_PW",
        &format!("table=kube_event&namespaces={}", ns.name),
    );
    let args = [
        "--sink",
        &sink,
        "--lease-name",
        &lease,
        "--lease-namespace",
        &ns.name,
        "--shutdown-grace",
        "1s",
    ];
    let env = [("MYSQL_PW", db.password.as_str())];
    let mut a = Eventer::start(&k.kubeconfig, &args, &env);
    let first = k.create_event(&ev(&ns.name, "s-0", "web-0", "written"));
    wait_value(db, "SELECT COUNT(*) FROM kube_event", "1", &a);
    // The server goes away; two Events wait in the sink's buffer when the eventer stops.
    private.stop();
    let mut uids = vec![first.metadata.uid.clone().expect("uid")];
    for i in 1..=2 {
        let c = k.create_event(&ev(
            &ns.name,
            &format!("s-{i}"),
            &format!("web-{i}"),
            "kept",
        ));
        uids.push(c.metadata.uid.expect("uid"));
    }
    a.wait_metric(
        r#"nodeprobe_eventer_sink_queue_length{sink="mysql"}"#,
        2.0,
        WAIT,
    );
    assert_eq!(a.stop(), Some(0));
    private.restart();
    let b = Eventer::start(&k.kubeconfig, &args, &env);
    wait_value(db, "SELECT COUNT(*) FROM kube_event", "3", &b);
    for u in &uids {
        assert_eq!(
            db.value(&format!(
                "SELECT COUNT(*) FROM kube_event WHERE event_id = '{u}'"
            )),
            "1"
        );
    }
    // the one written before is not sent again (its count stays, one statement fewer)
    assert_eq!(
        b.metric(r#"nodeprobe_eventer_sink_delivered_total{sink="mysql"}"#),
        2.0,
        "{}",
        b.logs()
    );
}
