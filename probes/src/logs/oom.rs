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

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// The kubelet keeps each pod's logs in `/var/log/pods/<namespace>_<name>_<uid>` (a fixed
/// path, whatever `--root-dir`): the one place on the node that names a pod by its UID
/// without the API server. Namespaces and pod names are DNS names (no `_`); a name that is
/// not of this shape is `None`.
pub fn parse_pod_log_dir(dir_name: &str) -> Option<(String, PodRef)> {
    let mut parts = dir_name.split('_');
    let (namespace, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (parts.next().is_none() && dns(namespace) && dns(name) && is_uuid(uid)).then(|| {
        (
            uid.to_ascii_lowercase(),
            PodRef {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
        )
    })
}

/// Directories read at most from the pod log directory (a node runs at most a few hundred
/// pods; the kubelet removes a pod's directory with the pod).
const MAX_POD_DIRS: usize = 10_000;

/// The pods among `uids` that `<host-root>/var/log/pods` names. An unreadable directory
/// names none (the UIDs are still reported).
pub fn pods_named<'a>(
    host: &crate::HostPaths,
    uids: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, PodRef> {
    let wanted: std::collections::BTreeSet<&str> = uids.into_iter().collect();
    let mut found = std::collections::BTreeMap::new();
    if wanted.is_empty() {
        return found;
    }
    let dir = host.path("/var/log/pods");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "no pod names for OOM kills");
            return found;
        }
    };
    for entry in entries.take(MAX_POD_DIRS).flatten() {
        let name = entry.file_name();
        if let Some((uid, pod)) = name.to_str().and_then(parse_pod_log_dir) {
            if wanted.contains(uid.as_str()) {
                found.insert(uid, pod);
            }
        }
    }
    found
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
    fn pod_log_dirs_name_pods() {
        let (uid, pod) =
            parse_pod_log_dir(&format!("kube-system_coredns-7d8c9f-x2x_{UID}")).unwrap();
        assert_eq!(uid, UID);
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str()),
            ("kube-system", "coredns-7d8c9f-x2x")
        );
        // upper-case UID hex is read in the canonical form
        let upper = format!("default_web.1_{}", UID.to_ascii_uppercase());
        assert_eq!(parse_pod_log_dir(&upper).unwrap().0, UID);
        for bad in [
            String::new(),
            format!("ns_name_{UID}_extra"),
            format!("ns_{UID}"),
            format!("_name_{UID}"),
            format!("ns__{UID}"),
            "ns_name_not-a-uid".to_string(),
            format!("Ns_name_{UID}"),
            format!("ns_na me_{UID}"),
        ] {
            assert_eq!(parse_pod_log_dir(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pods_named_reads_the_kubelets_pod_log_dirs() {
        let root = tempfile::tempdir().unwrap();
        let pods = root.path().join("var/log/pods");
        let other = "0a9c2a1e-7b4d-4e8a-9c1f-0123456789ab";
        std::fs::create_dir_all(pods.join(format!("team-a_api-5f6d_{UID}/app"))).unwrap();
        std::fs::create_dir_all(pods.join(format!("team-b_db-0_{other}"))).unwrap();
        std::fs::create_dir_all(pods.join("not a pod")).unwrap();
        let host = crate::HostPaths::new(root.path());
        let found = pods_named(&host, [UID, "11111111-2222-3333-4444-555555555555"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[UID],
            PodRef {
                namespace: "team-a".into(),
                name: "api-5f6d".into()
            }
        );
        // no directory (not a kubelet node): nothing named, no error
        let bare = tempfile::tempdir().unwrap();
        assert!(pods_named(&crate::HostPaths::new(bare.path()), [UID]).is_empty());
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
