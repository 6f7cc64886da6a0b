#!/usr/bin/env python3
"""Write the bench's test image as an OCI layout: a ~1 KiB config and one layer
per size given (random bytes in a one-member tar, gzip'd with deflate level 0
so the layer is a real tar+gzip whose size is close to the size asked for).

usage: mkimage.py DIR TAG SIZE_BYTES...     prints JSON: manifest digest, blobs
"""
import hashlib
import json
import os
import sys
import tarfile
import zlib

CHUNK = 1 << 20


def write_blob(root, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d


def write_layer(root, size, index):
    """Random payload in a tar, gzip'd (stored blocks). Returns (digest, size, diff_id)."""
    # tar header and end blocks, 5 bytes per stored deflate block, gzip framing
    payload = max(size - 512 - 1024 - 512 - 5 * (size // 65535 + 1) - 18, 1)
    info = tarfile.TarInfo(name="layer%d.bin" % index)
    info.size = payload
    info.mode = 0o644
    info.mtime = 0
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    pad = (512 - payload % 512) % 512
    comp = zlib.compressobj(0, zlib.DEFLATED, 31)  # level 0, gzip wrapper
    diff = hashlib.sha256()
    dig = hashlib.sha256()
    tmp = os.path.join(root, "blobs", "sha256", ".tmp-layer")
    total = 0
    with open(tmp, "wb") as out:
        def emit(raw):
            nonlocal total
            diff.update(raw)
            z = comp.compress(raw)
            if z:
                dig.update(z)
                out.write(z)
                total += len(z)
        emit(header)
        left = payload
        while left:
            n = min(CHUNK, left)
            emit(os.urandom(n))
            left -= n
        emit(b"\0" * pad + b"\0" * 1024)
        z = comp.flush()
        dig.update(z)
        out.write(z)
        total += len(z)
    d = dig.hexdigest()
    os.rename(tmp, os.path.join(root, "blobs", "sha256", d))
    return "sha256:" + d, total, "sha256:" + diff.hexdigest()


def main():
    root, tag, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    layers = [write_layer(root, s, i) for i, s in enumerate(sizes)]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [l[2] for l in layers]},
        "history": [{"created_by": "regcache bench layer %d" % i} for i in range(len(layers))],
    }
    # pad the config to exactly 1 KiB with a comment
    config["comment"] = ""
    base = len(json.dumps(config, separators=(",", ":")))
    config["comment"] = "x" * max(0, 1024 - base)
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = write_blob(root, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": d, "size": n} for d, n, _ in layers],
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    manifest_digest = write_blob(root, manifest_bytes)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": len(manifest_bytes),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    blobs = [{"name": "config", "digest": config_digest, "size": len(config_bytes)}]
    for (d, n, _), s in zip(layers, sizes):
        blobs.append({"name": "layer_%s" % human(s), "digest": d, "size": n})
    json.dump({"manifest_digest": manifest_digest, "manifest_size": len(manifest_bytes),
               "media_type": manifest["mediaType"], "blobs": blobs}, sys.stdout)
    print()


def human(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return "%dMiB" % (n >> 20)
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return "%dKiB" % (n >> 10)
    return "%dB" % n


if __name__ == "__main__":
    main()
