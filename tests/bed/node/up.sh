#!/usr/bin/env bash
# The node bed (BED=node make testbed-up): the control plane of ../up.sh plus one real node,
# zkscale-node-0, in its own network namespace: containerd + runc + the CNI bridge (a new pod IP
# per pod), a kubelet, kube-proxy (iptables mode) and CoreDNS (cluster DNS on a ClusterIP), and
# the pod runner as storage provisioner only. Pods run the bed's ZooKeeper image (image.sh).
#
#   host netns                                  node netns (zkscale-node-0)
#   kube-apiserver 127.0.0.1:16443 <- relay --- 127.0.0.1:16443 <- kubelet, kube-proxy, CoreDNS
#   198.19.0.1/16 zkbed0 <----- veth pair -----> eth0 198.19.0.2/16 (proxy_arp) kubelet :10250
#                                                cni0 198.19.128.1/24 -> pods 198.19.128.x
#
# The apiserver reaches the kubelet at 198.19.0.2 and the host reaches pod IPs over the veth
# link route, the only route the host gets (see node.env). No host iptables rule or sysctl is
# changed: kube-proxy's and the CNI plugins' rules live in the node's netns, the kubelet's
# machine-wide sysctl writes are kept away by node-ns.sh.
# The last line on stdout is KUBECONFIG=<absolute path>. Progress and timings go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
beddir="$(cd "$here/.." && pwd)"
root="$(cd "$beddir/../.." && pwd)"
source "$beddir/versions.env"
source "$beddir/lib.sh"
source "$beddir/control-plane.sh"
source "$here/node.env"
t0=$SECONDS
N="$BED/node"

node_bed_running() {
  [[ -f $N/mode ]] || return 1
  local c; for c in "${NODE_COMPONENTS[@]}"; do alive "$c" || return 1; done
  bed_running_control_plane
}
bed_running_control_plane() {
  local c; for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do alive "$c" || return 1; done
  curl -sf --cacert "$BED/pki/ca.crt" --cert "$BED/pki/admin.crt" --key "$BED/pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}
if node_bed_running; then
  log "node bed already up ($BED)"
  echo "KUBECONFIG=$BED/kubeconfig"
  exit 0
fi
"$here/down.sh"   # leftovers of either bed

"$beddir/install.sh" k8s helm zookeeper node
eval "$("$beddir/install.sh" env)"
log "building the pod runner and the pause binary"
(cd "$root" && cargo build -q -p zkscale-testbed-runner)
runner_bin="${CARGO_TARGET_DIR:-$root/target}/debug/zkscale-pod-runner"
pause_bin="$ZKSCALE_CACHE/node-image/pause"
(cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$pause_bin" .)
t_images=$SECONDS
"$here/image.sh" "$ZKSCALE_CACHE/node-image" "$runner_bin" "$pause_bin" "$ZK_LIB"
log "images ready in $((SECONDS - t_images))s"

rm -rf "$BED" && mkdir -p "$BED"/{logs,pids,etcd} "$N"/{cni,kubelet,containerd,opt}
"$beddir/pki.sh" "$BED/pki" node "$NODE_NAME" "$NODE_IP"
P="$BED/pki"
kubeconfig "$BED/kubeconfig" admin
echo node >"$N/mode"
control_plane_up
K="$HELM4_BIN/kubectl --kubeconfig $BED/kubeconfig"
storage_class

# --- the node's network namespace and its link to the host
# `ip netns add` leaves /run/netns mounted; down.sh undoes that when it was not there before.
[[ -d /run/netns ]] || echo /run/netns >>"$N/netns-dir-created"
ip netns add "$NODE_NETNS"
NS=(nsenter "--net=/run/netns/$NODE_NETNS")
ip link add "$NODE_HOST_IF" type veth peer name eth0 netns "$NODE_NETNS"
ip addr add "$NODE_HOST_IP/$NODE_LINK_PREFIX" dev "$NODE_HOST_IF"
ip link set "$NODE_HOST_IF" up
ip -n "$NODE_NETNS" link set lo up
ip -n "$NODE_NETNS" addr add "$NODE_IP/$NODE_LINK_PREFIX" dev eth0
ip -n "$NODE_NETNS" link set eth0 up
ip -n "$NODE_NETNS" route add default via "$NODE_HOST_IP"
# Per-netns sysctls (the node's own; /proc/sys/net follows the writer's netns): forwarding for
# its pods, ARP answers for them on eth0, and bridged pod traffic through kube-proxy's rules.
"${NS[@]}" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward; echo 1 >/proc/sys/net/ipv4/conf/eth0/proxy_arp;
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables'

# --- the node's mount namespace (node-ns.sh) and its cgroup root
for ctl in /sys/fs/cgroup/*/; do
  [[ -f $ctl/cgroup.procs ]] || continue
  mkdir -p "$ctl$CGROUP_ROOT"
done
cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus"
cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems"
start node-ns unshare --mount --propagation slave -- "${NS[@]}" -- "$here/node-ns.sh" "$BED" "$NODE_STATE_RUN"
wait_for "node mount namespace" 10 test -f "$N/ns-ready"
IN_NODE=(nsenter "--mount=/proc/$(cat "$BED/pids/node-ns.pid")/ns/mnt" "--net=/run/netns/$NODE_NETNS" --)
readlink "/proc/$(cat "$BED/pids/node-ns.pid")/ns/mnt" >"$N/mntns"

# --- the API server inside the node's netns: a relay through a unix socket (the node reaches
# 127.0.0.1:$APISERVER_PORT in its own netns, so its kubeconfigs are the host's with other users).
start apiserver-relay-host socat "UNIX-LISTEN:$N/apiserver.sock,fork,mode=600" "TCP:127.0.0.1:$APISERVER_PORT"
wait_for "relay socket" 10 test -S "$N/apiserver.sock"
start apiserver-relay-node "${NS[@]}" -- socat "TCP-LISTEN:$APISERVER_PORT,bind=127.0.0.1,fork,reuseaddr" \
  "UNIX-CONNECT:$N/apiserver.sock"
kubeconfig "$N/kubelet.kubeconfig" node-kubelet
kubeconfig "$N/kube-proxy.kubeconfig" kube-proxy
kubeconfig "$N/coredns.kubeconfig" admin

# --- containerd
cat >"$N/cni/10-bed.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "bed",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_STATE_RUN/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
cat >"$N/containerd.toml" <<TOML
version = 2
root = "$N/containerd"
state = "$NODE_STATE_RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$N/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$N/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox lacks CAP_SYS_RESOURCE: without this every pod start fails in runc's nsexec.
  restrict_oom_score_adj = true
  # Pod netns bind mounts under the state dir (a tmpfs in the node's mount ns), not /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N/cni"
TOML
start containerd "${IN_NODE[@]}" containerd --config "$N/containerd.toml"
CTR=(ctr --address "$N/containerd.sock" -n k8s.io)
wait_for "containerd" 30 "${CTR[@]}" version
t_import=$SECONDS
"${CTR[@]}" images import --all-platforms "$ZKSCALE_CACHE/node-image/pause.oci.tar" >&2
"${CTR[@]}" images import --all-platforms "$ZKSCALE_CACHE/node-image/zookeeper.oci.tar" >&2
log "images imported in $((SECONDS - t_import))s"

# --- kubelet
cat >"$N/resolv.conf" <<'RESOLV'
# node bed: no DNS outside the cluster
RESOLV
cat >"$N/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $P/node-kubelet.crt
tlsPrivateKeyFile: $P/node-kubelet.key
containerRuntimeEndpoint: unix://$N/containerd.sock
# containerd 1.6 reports no cgroup driver; this kernel has cgroup v1 only.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: /$CGROUP_ROOT
# node-ns.sh bind-mounts the wanted values over the machine-wide sysctls: a miss is an error here.
protectKernelDefaults: true
failSwapOn: false
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: cluster.local
resolvConf: $N/resolv.conf
# Images are imported, never pulled: keep them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The node's disk is the shared host's: its fill level is other work's, not the pods'. Evict only
# when it is really out of room, and lift a pressure taint 10 s after it is gone (default 5 min).
evictionHard: {memory.available: "100Mi", nodefs.available: "256Mi", imagefs.available: "256Mi", nodefs.inodesFree: "1%"}
evictionPressureTransitionPeriod: 10s
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
syncFrequency: 10s
KUBELET
start kubelet "${IN_NODE[@]}" "$K8S_NODE_BIN/kubelet" --config "$N/kubelet.yaml" \
  --kubeconfig "$N/kubelet.kubeconfig" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" \
  --root-dir "$N/kubelet" --v=1
wait_for "node $NODE_NAME Ready" 120 bash -c "$K get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"

# --- kube-proxy (iptables mode, in the node's netns)
cat >"$N/kube-proxy.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE_NAME
clientConnection: {kubeconfig: $N/kube-proxy.kubeconfig}
clusterCIDR: $POD_SUBNET
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {localhostNodePorts: false}
# Zeros: leave the conntrack table size and timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
PROXY
start kube-proxy "${IN_NODE[@]}" "$K8S_NODE_BIN/kube-proxy" --config "$N/kube-proxy.yaml" --v=1

# --- cluster DNS: CoreDNS on the node's IP, behind the kube-dns ClusterIP (kube-proxy).
cat >"$N/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $N/coredns.kubeconfig zkscale-bed
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30 {
        disable success cluster.local
        disable denial cluster.local
    }
    loadbalance
}
COREFILE
start coredns "${IN_NODE[@]}" "$COREDNS_BIN/coredns" -conf "$N/Corefile"
$K apply -f - >&2 <<DNS
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $CLUSTER_DNS_IP
  ports:
    - {name: dns, port: 53, protocol: UDP, targetPort: 53}
    - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: zkscale.bed}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
DNS
wait_for "CoreDNS ready" 60 "${NS[@]}" curl -sf http://127.0.0.1:18181/ready

# --- storage: the pod runner as a local-path provisioner only (hostPath PVs under $BED/runner/pv)
ZKSCALE_BED="$BED" start provisioner "$runner_bin" --kubeconfig "$BED/kubeconfig" --node "$NODE_NAME" \
  --state "$BED/runner" --only provision
wait_for "provisioner" 30 test -f "$BED/runner/ready"
wait_for "default ServiceAccount" 60 $K get serviceaccount default -n default

log "node bed up in $((SECONDS - t0))s: $($K get node "$NODE_NAME" -o jsonpath='{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}')"
echo "KUBECONFIG=$BED/kubeconfig"
