//! containerd replies (`probes::clients::containerd`): any bytes as the protobuf of the
//! CRI `RuntimeService/Status` and containerd `Version` answers, judged the runtime probe's
//! way (`probes::runtime::judge_containerd`).
//!
//! * a reply decodes or is refused, never a panic; a decoded reply re-encodes to bytes
//!   that decode to the same message (round trip);
//! * the verdict's text is bounded by what the runtime said (its conditions' reasons and
//!   messages and the version) plus a fixed overhead.
#![no_main]

use std::path::PathBuf;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use probes::clients::containerd::{CriStatus, StatusResponse, VersionResponse};
use probes::runtime::{judge_containerd, Call, Liveness};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let version = VersionResponse::decode(data);
    if let Ok(v) = &version {
        let again = VersionResponse::decode(v.encode_to_vec().as_slice()).expect("re-decode");
        assert_eq!(&again, v);
    }
    let Ok(status) = StatusResponse::decode(data) else {
        return;
    };
    let again = StatusResponse::decode(status.encode_to_vec().as_slice()).expect("re-decode");
    assert_eq!(again, status);

    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    let said: usize = conditions
        .iter()
        .map(|c| c.r#type.len() + c.reason.len() + c.message.len())
        .sum();
    let version_text = version.map(|v| v.version).unwrap_or_default();
    let budget = 1024 + said + 2 * version_text.len();
    for api in ["runtime.v1", "runtime.v1alpha2"] {
        let l = judge_containerd(
            PathBuf::from("/run/containerd/containerd.sock"),
            Duration::from_secs(5),
            Call::Answer(version_text.clone()),
            Call::Answer(CriStatus {
                api,
                conditions: conditions.clone(),
            }),
        );
        let text = match &l {
            Liveness::Up { summary, .. } => summary.clone(),
            Liveness::Down { why, .. } | Liveness::Indeterminate { why, .. } => why.clone(),
            Liveness::NotFound { .. } => panic!("an answer is not 'not found'"),
        };
        assert!(text.len() <= budget, "{} bytes for {said} said", text.len());
        let ready = conditions
            .iter()
            .find(|c| c.r#type == "RuntimeReady")
            .is_none_or(|c| c.status);
        assert_eq!(matches!(l, Liveness::Up { .. }), ready, "{l:?}");
    }
});
