#!/usr/bin/env python3
"""Writes a tiny runnable test image as an OCI image layout, deterministically.

    make-image.py DIR TAG ID [--multi]

DIR/ becomes (or gains) an OCI image layout with the reference TAG. The image
for linux/amd64 has two gzip-compressed tar layers:
  1. bin/busybox (the host's static busybox, from Debian's busybox-static) and
     symlinks bin/sh, bin/true, bin/cat -> busybox;
  2. etc/regcache-test-id containing ID, so every image has its own content.
Its command prints that file: `docker run IMAGE` shows which image ran.
With --multi, TAG names an image index of that amd64 image and a linux/arm64
image (the id layer alone, never run) — a multi-platform image like Docker
Hub's.

Layers are gzip-compressed (skopeo would recompress anything else on push and
the digests would change), and the config's rootfs.diff_ids are the sha256 of
the uncompressed tars (dockerd and containerd verify them).

Prints one line: the digest TAG resolves to (the manifest's, or the index's).
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
BUSYBOX = "/bin/busybox"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    def __init__(self, root: str):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def put(self, data: bytes, media_type: str, **extra) -> dict:
        digest = sha256(data)
        with open(os.path.join(self.root, "blobs", "sha256", digest.split(":", 1)[1]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def tag(self, descriptor: dict, tag: str) -> None:
        path = os.path.join(self.root, "index.json")
        index = {"schemaVersion": 2, "manifests": []}
        if os.path.exists(path):
            with open(path) as f:
                index = json.load(f)
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        index["manifests"].append({**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}})
        with open(path, "w") as f:
            json.dump(index, f)


def tar_bytes(members) -> bytes:
    """members: (name, kind, payload) with kind 'dir', 'file' (bytes, mode 0755 when
    executable), 'exec' or 'symlink' (target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, payload
                tar.addfile(info)
            else:
                info.mode = 0o755 if kind == "exec" else 0o644
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def image(layout: Layout, arch: str, layers_tars, cmd) -> dict:
    """Stores the layers, config and manifest; returns the manifest's descriptor."""
    layer_descs, diff_ids = [], []
    for raw in layers_tars:
        diff_ids.append(sha256(raw))
        layer_descs.append(layout.put(gzip_bytes(raw), OCI_LAYER_GZIP))
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "make-image.py"} for _ in diff_ids],
    }
    config_desc = layout.put(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layer_descs}
    return layout.put(json.dumps(manifest, sort_keys=True).encode(), OCI_MANIFEST)


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    multi = "--multi" in sys.argv[1:]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, tag, image_id = args
    layout = Layout(root)
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    base = tar_bytes([("bin", "dir", None), ("bin/busybox", "exec", busybox),
                      ("bin/sh", "symlink", "busybox"), ("bin/true", "symlink", "busybox"),
                      ("bin/cat", "symlink", "busybox")])

    def id_layer(text: str) -> bytes:
        return tar_bytes([("etc", "dir", None), ("etc/regcache-test-id", "file", (text + "\n").encode())])

    cmd = ["/bin/busybox", "cat", "/etc/regcache-test-id"]
    amd64 = image(layout, "amd64", [base, id_layer(image_id)], cmd)
    if not multi:
        layout.tag(amd64, tag)
        print(amd64["digest"])
        return 0
    arm64 = image(layout, "arm64", [id_layer(image_id + " arm64")], cmd)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**amd64, "platform": {"architecture": "amd64", "os": "linux"}},
        {**arm64, "platform": {"architecture": "arm64", "os": "linux"}},
    ]}
    index_desc = layout.put(json.dumps(index, sort_keys=True).encode(), OCI_INDEX)
    layout.tag(index_desc, tag)
    print(index_desc["digest"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
