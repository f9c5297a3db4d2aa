#!/usr/bin/env python3
"""Write a one-layer OCI image archive (oci-layout tar, what `ctr images import` and
`skopeo copy oci-archive:` read) without a registry, a daemon or a builder: the equivalent of a
Dockerfile stage `FROM scratch` + `COPY` of the given files + `ENTRYPOINT` + `USER`.

Usage: oci-image.py OUT.tar REF ENTRYPOINT USER SRC=DST [SRC=DST ...]
  REF         full reference stored as org.opencontainers.image.ref.name (e.g. k8s.gcr.io/pause:3.2)
  ENTRYPOINT  the image's entrypoint (one path, no arguments)
  USER        e.g. 0:0
  SRC=DST     a regular file on this machine and its absolute path in the image
The layer is reproducible: files are owned by 0:0, keep their mode, and carry mtime 0.
Prints the manifest digest.
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def main(argv):
    if len(argv) < 6:
        sys.exit(__doc__)
    out, ref, entrypoint, user = argv[1:5]
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = set()
        for spec in argv[5:]:
            src, _, dst = spec.partition("=")
            if not dst.startswith("/"):
                sys.exit(f"oci-image: {spec}: the destination must be an absolute path")
            st = os.stat(src)
            rel = dst.lstrip("/")
            parts = rel.split("/")[:-1]
            for i in range(len(parts)):
                d = "/".join(parts[: i + 1])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
                    t.addfile(ti)
            ti = tarfile.TarInfo(rel)
            ti.size, ti.mode, ti.mtime = st.st_size, st.st_mode & 0o7777, 0
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            with open(src, "rb") as f:
                t.addfile(ti, f)
    layer = layer_buf.getvalue()

    blobs = {}

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return "sha256:" + d, len(data)

    layer_digest, layer_size = blob(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [entrypoint], "User": user},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest, config_size = blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer_size,
                }
            ],
        },
        sort_keys=True,
    ).encode()
    manifest_digest, manifest_size = blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {"org.opencontainers.image.ref.name": ref},
                }
            ],
        },
        sort_keys=True,
    ).encode()

    def add(t, name, data):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
        t.addfile(ti, io.BytesIO(data))

    tmp = out + ".tmp"
    with tarfile.open(tmp, "w") as t:
        add(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add(t, "index.json", index)
        for d in ("blobs", "blobs/sha256"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
            t.addfile(ti)
        for d, data in sorted(blobs.items()):
            add(t, "blobs/sha256/" + d, data)
    os.replace(tmp, out)
    print(manifest_digest)


if __name__ == "__main__":
    main(sys.argv)
