#!/usr/bin/env bash
# `make demo`: on the local test bed (already up: `make demo` depends on testbed-up), install the
# bitnami 1-replica fixture chart with Helm 4, write 200 znodes, scale to 3 with kubectl-zkscale,
# show status, then `helm upgrade` to replicaCount=5 through the Helm 4 plugin `zkscale`, and
# count the znodes again after each.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$root/tests/bed/install.sh" env)"
export KUBECONFIG="${ZKSCALE_BED:-$ZKSCALE_CACHE/bed}/kubeconfig"
charts="${ZKSCALE_CHARTS:-$root/../shared/fixtures/charts}"
ns="${DEMO_NAMESPACE:-zk-demo}"
kubectl="$HELM4_BIN/kubectl"; helm="$HELM4_BIN/helm"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

cd "$root"
say "building kubectl-zkscale"
cargo build -q --release --bin kubectl-zkscale --example zk_data
target="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$target/release:$PATH"   # kubectl finds the plugin as `kubectl zkscale`
zk_data="$target/release/examples/zk_data"

say "helm install zk (bitnami/zookeeper 13.7.4, replicaCount=1) in namespace $ns"
"$helm" uninstall zk -n "$ns" --wait >/dev/null 2>&1 || true
"$kubectl" delete namespace "$ns" --wait=true >/dev/null 2>&1 || true
"$kubectl" create namespace "$ns" >/dev/null
chart="$(mktemp -d)/chart"
cp -r "$charts/bitnami-zookeeper-13.7.4-replicas-1" "$chart"
sed -i "s/zk-test/$ns/g" "$chart"/templates/*.yaml   # the fixture was rendered for zk-test
"$helm" install zk "$chart" -n "$ns" >/dev/null
"$kubectl" rollout status statefulset/zk-zookeeper -n "$ns" --timeout=180s >&2

forward() { # runs "$@" with ADDR set to a port-forward to pod 0
  local log; log="$(mktemp)"
  "$kubectl" port-forward -n "$ns" pod/zk-zookeeper-0 :2181 >"$log" 2>&1 &
  local pf=$!
  for _ in $(seq 1 50); do grep -q 'Forwarding from 127.0.0.1' "$log" && break; sleep 0.2; done
  ADDR="127.0.0.1:$(sed -n 's/Forwarding from 127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)" "$@"
  kill "$pf" 2>/dev/null || true
}
say "writing 200 znodes through kubectl port-forward"
forward bash -c "\"$zk_data\" write \"\$ADDR\" 200"

say "kubectl zkscale plan --to 3"
"$kubectl" zkscale -n "$ns" plan --to 3 | grep -E '^(step|[0-9])' || true
say "kubectl zkscale --to 3"
"$kubectl" zkscale -n "$ns" --to 3
say "kubectl zkscale status"
"$kubectl" zkscale -n "$ns" status
say "znodes under /data after scaling"
left="$(forward bash -c "\"$zk_data\" count \"\$ADDR\"")"
echo "$left of 200 znodes survived"
[[ $left == 200 ]]

# The same steps from Helm: the plugin installed as `make install` does it, into a scratch
# PREFIX and Helm home (the release itself lives in the cluster).
scratch="$(mktemp -d)"
export HELM_DATA_HOME="$scratch/helm-data" HELM_CONFIG_HOME="$scratch/helm-config" HELM_CACHE_HOME="$scratch/helm-cache"
export ZKSCALE_LOG_FILE="$scratch/post-render.log"
say "make install (kubectl-zkscale + the Helm 4 plugin zkscale) into $scratch"
make -s --no-print-directory install PREFIX="$scratch" HELM="$helm" >&2
chart5="$(dirname "$chart")/chart5"
cp -r "$charts/bitnami-zookeeper-13.7.4-replicas-5" "$chart5"
sed -i "s/zk-test/$ns/g" "$chart5"/templates/*.yaml
say "helm upgrade zk (replicaCount=5) --post-renderer zkscale"
"$helm" upgrade zk "$chart5" -n "$ns" --post-renderer zkscale
say "what the post-renderer did (Helm 4 hides its stderr; it also writes the terminal, $ZKSCALE_LOG_FILE and Events)"
sed 's/^[^[]*\[/[/' "$ZKSCALE_LOG_FILE" >&2
"$kubectl" zkscale -n "$ns" status
left="$(forward bash -c "\"$zk_data\" count \"\$ADDR\"")"
echo "$left of 200 znodes survived 1 → 3 → 5"
[[ $left == 200 ]]
