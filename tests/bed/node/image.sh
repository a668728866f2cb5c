#!/usr/bin/env bash
# Builds the node bed's images as OCI archives (no registry, no docker):
#   zookeeper.oci.tar  Debian 12 (debootstrap) + Debian's JRE 17 + ZooKeeper $ZK_VERSION jars from
#                      Maven Central + the pod runner binary as entrypoint, run script and health
#                      check (the bitnami contract, implemented once in tests/bed/runner/src/zoo.rs),
#                      named as every bitnami tag the fixture charts use ($ZK_IMAGE_NAMES).
#   pause.oci.tar      the sandbox image (tests/bed/node/pause, a static Go binary).
#   image.sh <out dir> <runner binary> <pause binary> <ZooKeeper lib dir>
# The Debian layer is cached in <out dir> (keyed on its package list); the others are rebuilt.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/node.env"
out=${1:?out dir} runner=${2:?runner binary} pause=${3:?pause binary} zk_lib=${4:?ZooKeeper lib dir}
log() { echo "[image $(date +%H:%M:%S)] $*" >&2; }
mkdir -p "$out"

# Layer 1: Debian's root filesystem with the JRE (what bitnami's image is built on).
key="$(echo "$DEBIAN_SUITE $DEBIAN_MIRROR $IMAGE_PACKAGES" | sha1sum | cut -c1-12)"
base="$out/base-$key.tar"
if [[ ! -f $base ]]; then
  log "debootstrap $DEBIAN_SUITE with $IMAGE_PACKAGES (cold: about a minute)"
  rm -rf "$out/rootfs.tmp"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" "$DEBIAN_SUITE" "$out/rootfs.tmp" "$DEBIAN_MIRROR" \
    >"$out/debootstrap.log" 2>&1 || { tail -20 "$out/debootstrap.log" >&2; exit 1; }
  rm -rf "$out/rootfs.tmp"/var/cache/apt/archives/*.deb "$out/rootfs.tmp"/var/lib/apt/lists/* \
    "$out/rootfs.tmp"/usr/share/doc "$out/rootfs.tmp"/usr/share/man
  tar --numeric-owner --sort=name --mtime=@0 -C "$out/rootfs.tmp" -cf "$base.tmp" .
  mv "$base.tmp" "$base"
  rm -rf "$out/rootfs.tmp"
fi

# Layer 2: ZooKeeper and the entrypoint, at the bitnami image's paths.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
z="$stage/zk"
mkdir -p "$z/opt/bitnami/zookeeper/lib" "$z/opt/bitnami/zookeeper/conf" "$z/opt/bitnami/zookeeper/logs" \
  "$z/opt/bitnami/scripts/zookeeper" "$z/opt/zkscale" "$z/bitnami/zookeeper" "$z/scripts" "$z/tmp"
cp "$zk_lib"/*.jar "$z/opt/bitnami/zookeeper/lib/"
strip -o "$z/opt/zkscale/zkscale-pod-runner" "$runner"
for script in entrypoint:image-entrypoint run:image-run healthcheck:image-healthcheck; do
  name=${script%%:*} sub=${script#*:}
  printf '#!/bin/sh\nexec /opt/zkscale/zkscale-pod-runner %s "$@"\n' "$sub" >"$z/opt/bitnami/scripts/zookeeper/$name.sh"
  chmod 0755 "$z/opt/bitnami/scripts/zookeeper/$name.sh"
done
# The chart's setup.sh execs /entrypoint.sh /run.sh.
ln -s opt/bitnami/scripts/zookeeper/entrypoint.sh "$z/entrypoint.sh"
ln -s opt/bitnami/scripts/zookeeper/run.sh "$z/run.sh"
chmod 1777 "$z/tmp"
chmod 0775 "$z/opt/bitnami/zookeeper/conf" "$z/opt/bitnami/zookeeper/logs" "$z/bitnami/zookeeper"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$z" -cf "$stage/zk.tar" .

p="$stage/pause"
mkdir -p "$p"
cp "$pause" "$p/pause"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$p" -cf "$stage/pause.tar" .

python3 "$here/oci-archive.py" "$out/zookeeper.oci.tar" "$ZK_IMAGE_NAMES" \
  '{"User":"1001","Entrypoint":["/opt/bitnami/scripts/zookeeper/entrypoint.sh"],"Cmd":["/opt/bitnami/scripts/zookeeper/run.sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64","HOME=/"],"WorkingDir":"/"}' \
  "$base" "$stage/zk.tar"
python3 "$here/oci-archive.py" "$out/pause.oci.tar" "$PAUSE_IMAGE" '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$stage/pause.tar"
log "images built in $out: $(du -h "$out/zookeeper.oci.tar" | cut -f1) zookeeper, $(du -h "$out/pause.oci.tar" | cut -f1) pause"
