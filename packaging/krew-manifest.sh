#!/usr/bin/env bash
# krew-manifest.sh VERSION BASE_URL ARCHIVE... : the krew manifest (on stdout) for the release
# archives given, each named kubectl-zkscale_<version>_<os>_<arch>.<tar.gz|zip>, with the
# sha256 of each taken from the archive itself (so it cannot drift). Used by `make dist` for the
# host platform and by the release workflow for all of them.
set -euo pipefail
version="$1"; base="$2"; shift 2
cat <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: zkscale
spec:
  version: ${version}
  homepage: https://github.com/zkscale/zkscale
  shortDescription: Scale and upgrade bitnami ZooKeeper ensembles one safe step at a time
  description: |
    Scales a ZooKeeper ensemble deployed by the bitnami/zookeeper chart one member per step,
    restarts members followers first and the leader last, and checks between steps that
    exactly one leader serves, every voter is synced and no znode is lost. A plain
    \`helm upgrade --set replicaCount=3\` on a 1-member release loses every znode
    (bitnami/charts#32542); \`kubectl zkscale --to 3\` does not. Also a Helm post-renderer
    (helm upgrade --post-renderer zkscale) and an admission guard (kubectl zkscale guard).
  caveats: |
    The Helm post-renderer is a Helm plugin of its own: \`helm plugin install\` the same
    release archive (see the README). For \`kubectl zkscale <TAB>\`, link the binary as
    kubectl_complete-zkscale on your PATH (kubectl 1.26+):
      ln -s "\$(command -v kubectl-zkscale)" "\$(dirname "\$(command -v kubectl-zkscale)")/kubectl_complete-zkscale"
  platforms:
YAML
for a in "$@"; do
  name="$(basename "$a")"
  rest="${name#kubectl-zkscale_${version}_}"; rest="${rest%.tar.gz}"; rest="${rest%.zip}"
  os="${rest%%_*}"; arch="${rest#*_}"
  bin="kubectl-zkscale"; [[ $os == windows ]] && bin="kubectl-zkscale.exe"
  sha="$(sha256sum "$a" | cut -d' ' -f1)"
  dir="${name%.tar.gz}"; dir="${dir%.zip}"
  cat <<YAML
    - selector:
        matchLabels:
          os: ${os}
          arch: ${arch}
      uri: ${base}/${name}
      sha256: ${sha}
      files:
        - from: "${dir}/*"
          to: "."
      bin: ${bin}
YAML
done
