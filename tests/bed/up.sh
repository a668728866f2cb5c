#!/usr/bin/env bash
# Brings the test bed up (idempotent): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok (fake node + kubelet port-forward server) and the pod runner, all on 127.0.0.1.
# The last line on stdout is KUBECONFIG=<absolute path>. Progress and timings go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/versions.env"
source "$here/lib.sh"
source "$here/control-plane.sh"
t0=$SECONDS

if bed_running; then
  log "test bed already up ($BED)"
  echo "KUBECONFIG=$BED/kubeconfig"
  exit 0
fi
bed_stop_all   # leftovers of a crashed bed: processes only; state is rebuilt below
# A node bed (BED=node) in the way: its down also removes the node's namespaces and cgroups.
if [[ -f $BED/node/mode || -e /run/netns/zkscale-node-0 ]]; then "$here/node/down.sh"; fi

"$here/install.sh" k8s kwok helm zookeeper zookeeper-debian
eval "$("$here/install.sh" env)"
log "building the pod runner"
(cd "$root" && cargo build -q -p zkscale-testbed-runner)
runner_bin="${CARGO_TARGET_DIR:-$root/target}/debug/zkscale-pod-runner"

rm -rf "$BED" && mkdir -p "$BED"/{logs,pids,etcd,kwok}
"$here/pki.sh" "$BED/pki"
P="$BED/pki"
kubeconfig "$BED/kubeconfig" admin

control_plane_up

K="$HELM4_BIN/kubectl --kubeconfig $BED/kubeconfig"
kwok_src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION"
[[ -d $kwok_src ]] || (cd "$here/gobuild" && GOFLAGS=-mod=mod go mod download "sigs.k8s.io/kwok@v$KWOK_VERSION")
$K apply -f "$kwok_src/kustomize/crd/bases/kwok.x-k8s.io_portforwards.yaml" >&2
$K apply -f - >&2 <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  labels: {kubernetes.io/hostname: $NODE_NAME, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
  annotations: {kwok.x-k8s.io/node: fake}
NODE
storage_class
# kwok keeps the node alive (status, Lease heartbeats) and serves the kubelet port-forward API;
# a pod stage that never matches keeps it away from pods, which the runner owns.
{
  cat "$kwok_src/kustomize/stage/node/fast/node-initialize.yaml"; echo "---"
  cat "$kwok_src/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"; echo "---"
  cat <<'STAGE'
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: pod-left-to-zkscale-runner}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchAnnotations: {kwok.x-k8s.io/never-match: "never"}
  next: {}
STAGE
} > "$BED/kwok/stages.yaml"
KWOK_WORKDIR="$BED/kwok" start kwok "$KWOK_BIN/kwok" --kubeconfig "$BED/kubeconfig" --config "$BED/kwok/stages.yaml" \
  --manage-single-node "$NODE_NAME" --node-ip 127.0.0.1 --node-port "$KUBELET_PORT" \
  --server-address "127.0.0.1:$KUBELET_PORT" --tls-cert-file "$P/kubelet.crt" --tls-private-key-file "$P/kubelet.key" \
  --node-lease-duration-seconds 40 --enable-crds PortForward
wait_for "node $NODE_NAME Ready" 60 bash -c "$K get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
 # kwok's node stage sets cpu/memory/pods but no ephemeral-storage, which the chart requests.
$K patch node "$NODE_NAME" --subresource=status --type=merge >&2 -p \
  '{"status":{"capacity":{"ephemeral-storage":"1Ti"},"allocatable":{"ephemeral-storage":"1Ti"}}}'
wait_for "default ServiceAccount" 60 $K get serviceaccount default -n default

ZKSCALE_BED="$BED" ZK_LIB="$ZK_LIB" ZK38_CLASSPATH="$ZK38_CLASSPATH" \
  start pod-runner "$runner_bin" --kubeconfig "$BED/kubeconfig" --node "$NODE_NAME" --state "$BED/runner"
wait_for "pod runner" 30 test -f "$BED/runner/ready"

log "test bed up in $((SECONDS - t0))s: $($K version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
echo "KUBECONFIG=$BED/kubeconfig"
