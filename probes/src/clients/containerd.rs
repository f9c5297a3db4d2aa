//! A minimal containerd client: gRPC over the daemon's unix socket, two unary calls.
//!
//! * `containerd.services.version.v1.Version/Version`: is the daemon itself answering?
//! * `runtime.v1.RuntimeService/Status` (CRI): is the runtime ready for kubelet
//!   (`RuntimeReady`), and is pod networking configured (`NetworkReady`)? containerd 1.x
//!   also serves the same messages as `runtime.v1alpha2`, the only CRI version of
//!   containerd 1.5 and older, so [`ContainerdClient::cri_status`] falls back to it when
//!   `v1` is unimplemented.
//!
//! No protoc and no build.rs: the few messages are hand-written `prost` structs whose
//! field numbers are the upstream `.proto` ones (cited on each struct). Unknown fields
//! in answers are skipped by prost, so newer daemons decode fine.
//!
//! Every call takes a deadline; nothing here waits longer than it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::time::{timeout_at, Instant};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Code;
use tonic_prost::ProstCodec;

/// `google.protobuf.Empty` (google/protobuf/empty.proto): the Version request.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Empty {}

/// `containerd.services.version.v1.VersionResponse`
/// (containerd `api/services/version/v1/version.proto`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct VersionResponse {
    /// `string version = 1;`
    #[prost(string, tag = "1")]
    pub version: String,
    /// `string revision = 2;`
    #[prost(string, tag = "2")]
    pub revision: String,
}

/// `runtime.v1.StatusRequest` (kubernetes `cri-api/pkg/apis/runtime/v1/api.proto`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StatusRequest {
    /// `bool verbose = 1;` (we never ask for the verbose `info` map)
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

/// `runtime.v1.RuntimeCondition` (cri-api `api.proto`).
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct RuntimeCondition {
    /// `string type = 1;` (`RuntimeReady`, `NetworkReady`)
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// `bool status = 2;`
    #[prost(bool, tag = "2")]
    pub status: bool,
    /// `string reason = 3;`
    #[prost(string, tag = "3")]
    pub reason: String,
    /// `string message = 4;`
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `runtime.v1.RuntimeStatus` (cri-api `api.proto`).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct RuntimeStatus {
    /// `repeated RuntimeCondition conditions = 1;`
    #[prost(message, repeated, tag = "1")]
    pub conditions: Vec<RuntimeCondition>,
}

/// `runtime.v1.StatusResponse` (cri-api `api.proto`). Only `status = 1` is decoded;
/// `info = 2`, `runtime_handlers = 3` and `features = 4` are skipped.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StatusResponse {
    /// `RuntimeStatus status = 1;`
    #[prost(message, optional, tag = "1")]
    pub status: Option<RuntimeStatus>,
}

const VERSION_PATH: &str = "/containerd.services.version.v1.Version/Version";
const CRI_STATUS_V1: &str = "/runtime.v1.RuntimeService/Status";
const CRI_STATUS_V1ALPHA2: &str = "/runtime.v1alpha2.RuntimeService/Status";

/// What went wrong talking to containerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected to (missing, refused, permission...).
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Connected, but the gRPC channel could not be set up.
    #[error("cannot open a gRPC channel on {}: {message}", path.display())]
    Channel { path: PathBuf, message: String },
    /// The deadline passed during `step`.
    #[error("no answer to {step} before the deadline")]
    Timeout { step: &'static str },
    /// The daemon answered `call` with a gRPC error.
    #[error("{call} failed: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        code: Code,
        message: String,
    },
}

impl Error {
    /// The gRPC status code, for errors the daemon (or the transport) returned.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The CRI runtime status, as containerd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriStatus {
    /// `runtime.v1` or `runtime.v1alpha2`: which API answered.
    pub api: &'static str,
    pub conditions: Vec<RuntimeCondition>,
}

impl CriStatus {
    /// The condition of that type, if the runtime reported it.
    pub fn condition(&self, kind: &str) -> Option<&RuntimeCondition> {
        self.conditions.iter().find(|c| c.r#type == kind)
    }
}

/// A connected containerd client (one HTTP/2 connection).
pub struct ContainerdClient {
    channel: Channel,
}

impl ContainerdClient {
    /// Connect to the daemon's gRPC socket before `deadline`.
    ///
    /// The unix connection is made here (so connect errors keep their `io::Error`: refused
    /// means a stale socket, permission denied means we cannot tell) and then handed to
    /// tonic. Should tonic ever need to reconnect, it dials the same path again.
    pub async fn connect(path: &Path, deadline: Instant) -> Result<Self, Error> {
        let stream = match timeout_at(deadline, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(_) => return Err(Error::Timeout { step: "connect" }),
        };
        let first = Arc::new(Mutex::new(Some(stream)));
        let dial_path = path.to_path_buf();
        let connector = tower::service_fn(move |_: Uri| {
            let first = first.lock().ok().and_then(|mut slot| slot.take());
            let dial_path = dial_path.clone();
            async move {
                let stream = match first {
                    Some(s) => s,
                    None => UnixStream::connect(&dial_path).await?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        // The URI only fills the HTTP/2 `:authority`; the connector decides where to go.
        let endpoint = Endpoint::from_static("http://containerd");
        let channel = match timeout_at(deadline, endpoint.connect_with_connector(connector)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(Error::Channel {
                    path: path.to_path_buf(),
                    message: error_chain(&e),
                })
            }
            Err(_) => return Err(Error::Timeout { step: "connect" }),
        };
        Ok(ContainerdClient { channel })
    }

    async fn unary<Req, Resp>(
        &self,
        path: &'static str,
        call: &'static str,
        req: Req,
        deadline: Instant,
    ) -> Result<Resp, Error>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let fut = async {
            grpc.ready().await.map_err(|e| Error::Rpc {
                call,
                code: Code::Unavailable,
                message: error_chain(&e),
            })?;
            let codec: ProstCodec<Req, Resp> = ProstCodec::default();
            grpc.unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| Error::Rpc {
                call,
                code: s.code(),
                message: s.message().to_string(),
            })
        };
        match timeout_at(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { step: call }),
        }
    }

    /// `containerd.services.version.v1.Version/Version`.
    pub async fn version(&self, deadline: Instant) -> Result<VersionResponse, Error> {
        self.unary(VERSION_PATH, "Version", Empty {}, deadline)
            .await
    }

    /// CRI `RuntimeService/Status`, `runtime.v1` first, `runtime.v1alpha2` when `v1` is
    /// unimplemented. `Rpc { code: Unimplemented }` means the CRI plugin is not served.
    pub async fn cri_status(&self, deadline: Instant) -> Result<CriStatus, Error> {
        let req = StatusRequest { verbose: false };
        let (api, resp) = match self
            .unary::<_, StatusResponse>(CRI_STATUS_V1, "CRI Status", req.clone(), deadline)
            .await
        {
            Ok(r) => ("runtime.v1", r),
            Err(e) if e.code() == Some(Code::Unimplemented) => (
                "runtime.v1alpha2",
                self.unary(CRI_STATUS_V1ALPHA2, "CRI Status", req, deadline)
                    .await?,
            ),
            Err(e) => return Err(e),
        };
        Ok(CriStatus {
            api,
            conditions: resp.status.map(|s| s.conditions).unwrap_or_default(),
        })
    }
}

/// Display an error with its sources, `a: b: c` (tonic's transport errors hide the
/// useful part in the chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn status_response_decodes_the_wire_bytes_containerd_sends() {
        // Built field by field as containerd 1.6 answers without a CNI config.
        let resp = StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![
                    RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    },
                    RuntimeCondition {
                        r#type: "NetworkReady".into(),
                        status: false,
                        reason: "NetworkPluginNotReady".into(),
                        message: "cni plugin not initialized".into(),
                    },
                ],
            }),
        };
        let bytes = resp.encode_to_vec();
        // Field 1 (status), length-delimited; inside, field 1 (conditions) twice.
        assert_eq!(bytes[0], 0x0a);
        let back = StatusResponse::decode(bytes.as_slice()).unwrap();
        let st = CriStatus {
            api: "runtime.v1",
            conditions: back.status.unwrap().conditions,
        };
        assert!(st.condition("RuntimeReady").unwrap().status);
        let net = st.condition("NetworkReady").unwrap();
        assert!(!net.status);
        assert_eq!(net.reason, "NetworkPluginNotReady");
        assert!(st.condition("Other").is_none());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // status { conditions { type: "RuntimeReady" status: true } } + info map (field 2)
        // + a future field 9 varint: decoding must ignore what it does not know.
        let mut bytes = StatusResponse {
            status: Some(RuntimeStatus {
                conditions: vec![RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    ..Default::default()
                }],
            }),
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x12, 0x04, 0x0a, 0x00, 0x12, 0x00]); // info {"" : ""}
        bytes.extend_from_slice(&[0x48, 0x01]); // field 9, varint 1
        let back = StatusResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.status.unwrap().conditions.len(), 1);
    }

    #[test]
    fn version_response_field_numbers() {
        // version = 1 "1.6.20", revision = 2 "abc"
        let bytes = [
            0x0a, 0x06, b'1', b'.', b'6', b'.', b'2', b'0', 0x12, 0x03, b'a', b'b', b'c',
        ];
        let v = VersionResponse::decode(&bytes[..]).unwrap();
        assert_eq!(v.version, "1.6.20");
        assert_eq!(v.revision, "abc");
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error_with_the_io_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.sock");
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        match ContainerdClient::connect(&path, deadline).await {
            Err(Error::Connect { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound)
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("connected to a missing socket"),
        }
    }

    #[tokio::test]
    async fn a_silent_server_hits_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        // Accepts (the kernel queues the connection) and never answers.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(300);
        let result = async {
            let c = ContainerdClient::connect(&path, deadline).await?;
            c.version(deadline).await
        }
        .await;
        assert!(
            matches!(result, Err(Error::Timeout { .. })),
            "{:?}",
            result.err()
        );
    }
}
