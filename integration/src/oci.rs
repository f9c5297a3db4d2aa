//! The image of `deploy/Dockerfile` without a registry or an image builder: its final stage
//! is `FROM scratch` + `COPY /nodeprobe` + `USER 0:0` + `ENTRYPOINT ["/nodeprobe"]`, which
//! `env/oci-image.py` writes as a one-layer OCI archive from the static binary
//! (`$NODEPROBE_STATIC_BIN`, built by `run-tests.sh`); `ctr images import` loads it.

use std::path::{Path, PathBuf};

use crate::runtimes::env_script;
use crate::{require, sh};

/// The static release binary the image ships, if built (skips, or fails in CI, otherwise).
pub fn static_binary() -> Option<PathBuf> {
    let p = std::env::var_os("NODEPROBE_STATIC_BIN")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    require(p.is_some(), "NODEPROBE_STATIC_BIN (static release build)");
    p
}

/// Write the image as an OCI archive `out` named `reference`; returns the manifest digest.
pub fn write_image(binary: &Path, reference: &str, out: &Path) -> String {
    let file = format!("{}=/nodeprobe", binary.display());
    sh(
        "python3",
        &[
            env_script("oci-image.py").to_str().expect("utf-8"),
            out.to_str().expect("utf-8"),
            reference,
            "/nodeprobe",
            "0:0",
            &file,
        ],
    )
    .trim()
    .to_string()
}

/// Import an OCI archive into the containerd at `socket`, namespace `namespace`.
pub fn import(socket: &Path, namespace: &str, archive: &Path) {
    sh(
        "timeout",
        &[
            "120",
            "ctr",
            "--address",
            socket.to_str().expect("utf-8"),
            "-n",
            namespace,
            "images",
            "import",
            archive.to_str().expect("utf-8"),
        ],
    );
}
