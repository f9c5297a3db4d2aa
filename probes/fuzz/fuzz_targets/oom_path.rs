//! OOM kill attribution (`probes::logs::oom`): the kernel's `oom-kill:` record and its
//! memcg path → pod UID and container ID.
//!
//! * any text: a pod UID, when found, is a lower-case UUID and a container ID 64 lower-case
//!   hex digits (never without a pod); the task is part of the record.
//! * round trip: a record written the way the kernel writes it, for a memcg in any of the
//!   kubelet layouts (cgroupfs and systemd drivers; containerd, docker, CRI-O scopes; v1
//!   and v2), a task name with commas and any PID, gives the parts back.
//! * pod log directory names (`<namespace>_<name>_<uid>`): a name read is the directory's
//!   name again (the UID in lower case), with DNS-shaped parts and a UUID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{string, word, Unstructured};
use probes::logs::oom::{attribute_memcg, parse_oom_kill, parse_pod_log_dir};

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

fn check(pod: &Option<String>, container: &Option<String>) {
    if let Some(p) = pod {
        assert!(is_uuid(p), "{p:?}");
    }
    if let Some(c) = container {
        assert!(pod.is_some());
        assert!(
            c.len() == 64
                && c.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}

fn hex(u: &mut Unstructured<'_>, n: usize, upper: bool) -> Option<String> {
    let digits: &[u8] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    (0..n)
        .map(|_| u.choose(digits).ok().map(|&b| char::from(b)))
        .collect()
}

fn round_trip(u: &mut Unstructured<'_>) -> Option<()> {
    let upper = u.int_in_range(0..=7u8).ok()? == 0;
    let uid = [8, 4, 4, 4, 12]
        .iter()
        .map(|&n| hex(u, n, upper))
        .collect::<Option<Vec<_>>>()?
        .join("-");
    let cid = hex(u, 64, upper)?;
    let qos = *u.choose(&["", "burstable", "besteffort"]).ok()?;
    let us = uid.replace('-', "_");
    let with_container = u.arbitrary::<bool>().ok()?;
    let memcg = if u.arbitrary::<bool>().ok()? {
        // cgroupfs
        let mut p = String::from("/kubepods");
        if !qos.is_empty() {
            p.push('/');
            p.push_str(qos);
        }
        p.push_str(&format!("/pod{uid}"));
        if with_container {
            p.push_str(&format!("/{cid}"));
        }
        p
    } else {
        // systemd
        let (slice, pod) = if qos.is_empty() {
            (String::new(), format!("kubepods-pod{us}.slice"))
        } else {
            (
                format!("/kubepods-{qos}.slice"),
                format!("kubepods-{qos}-pod{us}.slice"),
            )
        };
        let mut p = format!("/kubepods.slice{slice}/{pod}");
        if with_container {
            let scope = *u.choose(&["cri-containerd-", "docker-", "crio-"]).ok()?;
            p.push_str(&format!("/{scope}{cid}.scope"));
        }
        p
    };
    let task = string(u, 40).replace(['\n', '\0'], "_");
    let task = if task.is_empty() {
        "x".to_string()
    } else {
        task
    };
    let pid: u32 = u.arbitrary().ok()?;
    let uid_n: u32 = u.arbitrary().ok()?;
    let global = u.arbitrary::<bool>().ok()?;
    let cpuset = word(u, b"abcdef0123456789/-_.", 70);
    let memcgs = if global {
        format!("global_oom,task_memcg={memcg}")
    } else {
        format!("oom_memcg={memcg},task_memcg={memcg}")
    };
    let line = format!(
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={cpuset},mems_allowed=0,{memcgs},task={task},pid={pid},uid={uid_n}"
    );
    let o = parse_oom_kill(&format!("Memory cgroup out of memory\n{line}\nmore"))
        .unwrap_or_else(|| panic!("not parsed: {line:?}"));
    assert_eq!(o.memcg, memcg);
    assert_eq!(o.task, task, "{line:?}");
    assert_eq!(o.pid, pid);
    assert_eq!(o.pod_uid, Some(uid.to_ascii_lowercase()), "{line:?}");
    assert_eq!(
        o.container_id,
        with_container.then(|| cid.to_ascii_lowercase()),
        "{line:?}"
    );
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pod, container) = attribute_memcg(&text);
    check(&pod, &container);
    if let Some(o) = parse_oom_kill(&text) {
        check(&o.pod_uid, &o.container_id);
        assert!(text.contains(&o.task) && text.contains(&o.memcg));
    }
    if let Some((uid, pod)) = parse_pod_log_dir(&text) {
        assert!(is_uuid(&uid), "{uid:?}");
        let again = format!("{}_{}_{uid}", pod.namespace, pod.name);
        assert!(again.eq_ignore_ascii_case(&text), "{again:?} from {text:?}");
        for part in [&pod.namespace, &pod.name] {
            assert!(!part.is_empty() && !part.contains('_') && !part.contains('/'));
        }
    }
    round_trip(&mut Unstructured::new(data));
});
