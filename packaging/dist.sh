#!/usr/bin/env bash
# `make dist`: the release artifacts for the host platform under dist/:
#   kubectl-zkscale_v<version>_<os>_<arch>.tar.gz  the archive krew and Helm both take (one
#                                                  directory of that name: binary, LICENSE,
#                                                  README.md, plugin.yaml)
#   … .sha256                                      its checksum
#   zkscale.yaml                                   the krew manifest, generated from the archive
#   zkscale-<version>.tgz (+ .prov)                the Helm 4 plugin package (`helm plugin package`;
#                                                  signed when DIST_SIGN_KEY names a key in
#                                                  DIST_KEYRING, else unsigned: install it with
#                                                  `helm plugin install … --verify=false`)
# Other platforms: .github/workflows/release.yml (not run here).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version="v$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
helm="${HELM:-helm}"
base_url="${DIST_BASE_URL:-https://github.com/zkscale/zkscale/releases/download/$version}"

# DIST_BINARY: package a binary already built (the tests use theirs); DIST_DIR: elsewhere.
binary="${DIST_BINARY:-}"
if [[ -z $binary ]]; then
  cargo build --release --locked --bin kubectl-zkscale
  binary="$target_dir/release/kubectl-zkscale"
fi
dist="${DIST_DIR:-$root/dist}"
# The archive's one directory is named like the archive: `helm plugin install <archive>`
# looks for plugin.yaml there; krew takes the files from it (the manifest says so).
name="kubectl-zkscale_${version}_${os}_${arch}"
rm -rf "$dist" && mkdir -p "$dist/stage/$name" "$dist/plugin/zkscale"
cp "$binary" "$dist/stage/$name/kubectl-zkscale"
cp LICENSE README.md "$dist/stage/$name/"
sed "s/^version: .*/version: ${version#v}/" packaging/plugin.yaml > "$dist/stage/$name/plugin.yaml"
cp -r "$dist/stage/$name/." "$dist/plugin/zkscale/"
archive="$dist/$name.tar.gz"
# Reproducible: fixed order, owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='1970-01-01 00:00Z' \
  -C "$dist/stage" -czf "$archive" "$name"
(cd "$dist" && sha256sum "$(basename "$archive")" > "$(basename "$archive").sha256")
packaging/krew-manifest.sh "$version" "$base_url" "$archive" > "$dist/zkscale.yaml"
sign=(--sign=false)
if [[ -n ${DIST_SIGN_KEY:-} ]]; then
  sign=(--sign --key "$DIST_SIGN_KEY" --keyring "${DIST_KEYRING:?DIST_KEYRING: the secret keyring}")
fi
"$helm" plugin package "$dist/plugin/zkscale" -d "$dist" "${sign[@]}" >&2
rm -rf "$dist/stage" "$dist/plugin"
ls -l "$dist" >&2
