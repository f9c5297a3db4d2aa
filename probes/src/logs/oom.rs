//! OOM kill attribution: from the kernel's `oom-kill:` record take the task, its PID and
//! its memcg, and derive the pod UID and container ID for the four kubelet cgroup layouts:
//!
//! | driver   | memcg path (v1 and v2 print the same hierarchy path)                                   |
//! |----------|-----------------------------------------------------------------------------------------|
//! | cgroupfs | `/kubepods/burstable/pod<uid-with-dashes>/<64-hex>` (Guaranteed: `/kubepods/pod<uid>/…`) |
//! | systemd  | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<64-hex>.scope` |
//!
//! The container segment may also be `docker-<id>.scope`, `crio-<id>.scope` or a bare ID.

use crate::findings::OomKill;

/// Parse an `oom-kill:constraint=…,oom_memcg=…,task_memcg=…,task=…,pid=…,uid=…` line (the
/// line may be embedded in a longer multi-line message). Returns `None` when there is no
/// such record or it lacks a task or PID.
pub fn parse_oom_kill(text: &str) -> Option<OomKill> {
    let start = text.find("oom-kill:")?;
    let line = text[start..].lines().next()?;
    // task names may contain commas; the fields around them do not
    let task_start = line.find(",task=")? + ",task=".len();
    let pid_rel = line[task_start..].rfind(",pid=")?;
    let task = &line[task_start..task_start + pid_rel];
    let pid_str = &line[task_start + pid_rel + ",pid=".len()..];
    let pid: u32 = pid_str.split(',').next()?.trim().parse().ok()?;
    let field = |key: &str| -> Option<&str> {
        let head = &line[..task_start];
        let i = head.find(key)? + key.len();
        let rest = &head[i..];
        Some(rest.split(',').next().unwrap_or(rest))
    };
    let memcg = field(",task_memcg=")
        .or_else(|| field(",oom_memcg="))
        .unwrap_or("")
        .to_string();
    let (pod_uid, container_id) = attribute_memcg(&memcg);
    Some(OomKill {
        pod_uid,
        container_id,
        task: task.to_string(),
        pid,
        memcg,
    })
}

/// Pod UID (dashed, lower case) and container ID named by a kubelet memcg path.
pub fn attribute_memcg(path: &str) -> (Option<String>, Option<String>) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(pod_at) = segments.iter().position(|s| pod_uid_of(s).is_some()) else {
        return (None, None);
    };
    let pod = pod_uid_of(segments[pod_at]);
    let container = segments.get(pod_at + 1).and_then(|s| container_id_of(s));
    (pod, container)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `pod<uid>` (cgroupfs) or `kubepods[-qos]-pod<uid_>.slice` (systemd).
fn pod_uid_of(segment: &str) -> Option<String> {
    let candidate = if let Some(rest) = segment.strip_suffix(".slice") {
        let i = rest.rfind("-pod")?;
        if !rest.starts_with("kubepods") {
            return None;
        }
        rest[i + 4..].replace('_', "-")
    } else {
        segment.strip_prefix("pod")?.to_string()
    };
    is_uuid(&candidate).then(|| candidate.to_ascii_lowercase())
}

/// `<id>`, `cri-containerd-<id>.scope`, `docker-<id>.scope`, `crio-<id>.scope`,
/// `cri-containerd:<id>` (containerd's systemd cgroup naming).
fn container_id_of(segment: &str) -> Option<String> {
    let s = segment.strip_suffix(".scope").unwrap_or(segment);
    let s = s.rsplit([':', '-']).next().unwrap_or(s);
    (s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab";
    const CID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    #[test]
    fn real_v1_cgroupfs_record_from_this_kernel() {
        // oom-kmsg-raw.txt: the test environment's pod name is not a UUID
        let line = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/podnodeprobe-it-29635/cnodeprobe-it29635,task_memcg=/kubepods/burstable/podnodeprobe-it-29635/cnodeprobe-it29635,task=python3,pid=29643,uid=0";
        let o = parse_oom_kill(line).unwrap();
        assert_eq!(o.task, "python3");
        assert_eq!(o.pid, 29643);
        assert_eq!(
            o.memcg,
            "/kubepods/burstable/podnodeprobe-it-29635/cnodeprobe-it29635"
        );
        assert_eq!((o.pod_uid, o.container_id), (None, None));
    }

    #[test]
    fn four_layouts() {
        let us = UID.replace('-', "_");
        for path in [
            format!("/kubepods/burstable/pod{UID}/{CID}"),
            format!("/kubepods/pod{UID}/{CID}"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice/cri-containerd-{CID}.scope"),
            format!("/kubepods.slice/kubepods-pod{us}.slice/docker-{CID}.scope"),
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{us}.slice/crio-{CID}.scope"),
        ] {
            assert_eq!(
                attribute_memcg(&path),
                (Some(UID.to_string()), Some(CID.to_string())),
                "{path}"
            );
            let line = format!(
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={CID},mems_allowed=0,oom_memcg={path},task_memcg={path},task=my,app,pid=42,uid=1000"
            );
            let o = parse_oom_kill(&line).unwrap();
            assert_eq!(o.task, "my,app");
            assert_eq!(o.pid, 42);
            assert_eq!(o.memcg, path);
            assert_eq!(o.pod_uid.as_deref(), Some(UID));
            assert_eq!(o.container_id.as_deref(), Some(CID));
        }
        // pod-level memcg (limit on the pod): pod, no container
        assert_eq!(
            attribute_memcg(&format!("/kubepods/burstable/pod{UID}")),
            (Some(UID.to_string()), None)
        );
        // not a pod
        assert_eq!(
            attribute_memcg("/system.slice/docker.service"),
            (None, None)
        );
        assert_eq!(attribute_memcg(""), (None, None));
    }

    #[test]
    fn global_oom_uses_task_memcg_and_garbage_is_none() {
        let line = format!("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/kubepods/pod{UID}/{CID},task=java,pid=7,uid=0");
        let o = parse_oom_kill(&line).unwrap();
        assert_eq!(o.pod_uid.as_deref(), Some(UID));
        assert!(parse_oom_kill("oom-kill:constraint=x").is_none());
        assert!(parse_oom_kill("oom-kill:task=x,pid=notanumber").is_none());
        assert!(parse_oom_kill("nothing").is_none());
    }
}
