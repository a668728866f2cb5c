#!/usr/bin/env python3
# oci-archive.py OUT "NAME..." CONFIG_JSON LAYER.tar...: an OCI image archive for `ctr images import`.
# Layers are uncompressed (diff id = digest); one manifest; one index entry per name, which
# containerd's importer reads from io.containerd.image.name.
import hashlib, io, json, os, sys, tarfile

out, names, cfg, layers = sys.argv[1], sys.argv[2].split(), json.loads(sys.argv[3]), sys.argv[4:]

def digest_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(path)

blobs = []  # (digest, size, path or bytes)
layer_descs, diff_ids = [], []
for l in layers:
    d, n = digest_file(l)
    blobs.append((d, l))
    layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
    diff_ids.append(d)
config = json.dumps({"architecture": "amd64", "os": "linux", "config": cfg,
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
cd = "sha256:" + hashlib.sha256(config).hexdigest()
blobs.append((cd, config))
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
                       "layers": layer_descs}, sort_keys=True).encode()
md = "sha256:" + hashlib.sha256(manifest).hexdigest()
blobs.append((md, manifest))
index = {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(manifest),
     "annotations": {"io.containerd.image.name": n, "org.opencontainers.image.ref.name": n}} for n in names]}
with tarfile.open(out + ".tmp", "w", format=tarfile.PAX_FORMAT) as t:
    def add_bytes(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))
    add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add_bytes("index.json", json.dumps(index).encode())
    seen = set()
    for d, src in blobs:
        if d in seen: continue
        seen.add(d)
        name = "blobs/sha256/" + d.split(":")[1]
        if isinstance(src, bytes): add_bytes(name, src)
        else: t.add(src, arcname=name)
os.replace(out + ".tmp", out)
