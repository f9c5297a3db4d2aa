//! Docker Engine API replies (`probes::clients::docker`): any bytes a socket at the docker
//! path answers to `GET /_ping` and `GET /version`, through the real client (hyper HTTP/1
//! over a unix socket), and any `/version` body.
//!
//! * the client answers (value or error) before its deadline, never panics; errors quoting
//!   the daemon's bytes stay bounded;
//! * a ping is OK only for a 2xx `OK`; a version only from a JSON body;
//! * round trip: a `/version` body serialised from fuzzed strings parses back to them.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{string, Unstructured};
use probes::clients::docker::{parse_version, snippet, DockerClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::time::Instant;

/// Longest error text a reply may produce (a 200-character body snippet plus the step and
/// hyper's own words).
const MAX_ERROR: usize = 1200;

struct Fixture {
    rt: tokio::runtime::Runtime,
    listener: UnixListener,
    path: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Paused clock: when client and "daemon" both wait (a reply shorter than its
        // Content-Length), time jumps to the client's deadline instead of sleeping.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let dir =
            std::env::temp_dir().join(format!("nodeprobe-fuzz-docker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("docker.sock");
        let _ = std::fs::remove_file(&path);
        let listener = rt
            .block_on(async { UnixListener::bind(&path) })
            .expect("bind");
        Fixture { rt, listener, path }
    })
}

/// Serve one connection: answer each request (read up to its blank line) with the next
/// reply, then close.
async fn serve(listener: &UnixListener, replies: [&[u8]; 2]) {
    let Ok((mut s, _)) = listener.accept().await else {
        return;
    };
    for reply in replies {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        if s.write_all(reply).await.is_err() {
            return;
        }
    }
    let _ = s.shutdown().await;
}

fuzz_target!(|data: &[u8]| {
    // the body parser and the error snippet alone
    if let Ok(v) = parse_version(data) {
        // JSON up to the bytes of strings it ignores: serde_json skips unknown fields'
        // strings without checking their UTF-8 (the fields read are checked)
        let lossy = String::from_utf8_lossy(data);
        assert!(serde_json::from_str::<serde_json::Value>(&lossy).is_ok());
        assert!(v.version.len() + v.api_version.len() <= data.len());
    }
    let s = snippet(data);
    assert!(s.chars().count() <= 203, "{s:?}");

    // the round trip
    let mut u = Unstructured::new(data);
    let (version, api) = (string(&mut u, 40), string(&mut u, 10));
    let body = serde_json::json!({"Version": version, "ApiVersion": api, "Os": "linux"});
    let parsed = parse_version(body.to_string().as_bytes()).expect("a /version body");
    assert_eq!((parsed.version, parsed.api_version), (version, api));

    // the same bytes as the daemon's raw answers: ping reply, then version reply
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |i| {
            data[i + 4..]
                .windows(5)
                .position(|w| w == b"HTTP/")
                .map_or(data.len(), |j| i + 4 + j)
        });
    let (ping_reply, version_reply) = data.split_at(split);
    let f = fixture();
    f.rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(2);
        let server = serve(&f.listener, [ping_reply, version_reply]);
        let client = async {
            let mut c = DockerClient::connect(&f.path, deadline).await?;
            let ping = c.ping(deadline).await;
            let version = c.version(deadline).await;
            Ok::<_, probes::clients::docker::Error>((ping, version))
        };
        let (_, r) = tokio::join!(server, client);
        let results = match r {
            Ok((ping, version)) => {
                if ping.is_ok() {
                    // (empty lines before the status line are allowed, RFC 9112 2.2)
                    let start = ping_reply.iter().position(|b| !b"\r\n".contains(b));
                    let status_line = &ping_reply[start.unwrap_or(0)..];
                    assert!(status_line.starts_with(b"HTTP/1."), "{ping_reply:?}");
                }
                [
                    ping.err().map(|e| e.to_string()),
                    version.err().map(|e| e.to_string()),
                ]
            }
            Err(e) => [Some(e.to_string()), None],
        };
        for e in results.into_iter().flatten() {
            assert!(e.len() <= MAX_ERROR, "{} bytes: {e:?}", e.len());
        }
    });
});
