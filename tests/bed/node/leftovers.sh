#!/usr/bin/env bash
# Lists, sorted and stable, what the node bed could leave on the host: processes of its binaries,
# network namespaces, links, routes, iptables rules, mounts, cgroups, the sysctls the kubelet
# and kube-proxy care about, and the runtime directories containerd and the kubelet use by
# default. check-clean.sh diffs this before up and after down. With `--node`, also the node's own
# iptables rules (they live in its netns and go with it).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/node.env"
section() { echo "== $1"; }
section processes
ps -eo comm= | grep -E '^(containerd|containerd-shim|runc|kubelet|kube-proxy|coredns|socat|pause|zkscale-pod-run|etcd|kube-apiserver|kube-controller|kube-scheduler)' | sort | uniq -c
section "network namespaces"
ip netns list 2>/dev/null | sort
ls -A /run/netns 2>/dev/null | sort
section links
ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
section "routes"
ip route show table all | grep -v '^local\|^broadcast' | sort
section "iptables (host)"
if command -v iptables-save >/dev/null; then
  iptables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | sort
  ip6tables-save 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | sort
fi
command -v nft >/dev/null && nft list ruleset 2>/dev/null
section mounts
awk '{print $2, $3}' /proc/self/mounts | sort
section cgroups
find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d 2>/dev/null | sort
find /sys/fs/cgroup -path "*$CGROUP_ROOT*" -type d 2>/dev/null | sort
section sysctls
for k in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys \
  kernel/keys/root_maxbytes net/ipv4/ip_forward net/ipv4/conf/all/route_localnet net/bridge/bridge-nf-call-iptables \
  net/netfilter/nf_conntrack_max; do
  echo "$k=$(cat "/proc/sys/$k" 2>/dev/null)"
done
section "runtime dirs"
for d in /run/containerd /run/zkscale-node-0 /var/run/netns /var/log/pods /var/log/containers /var/lib/kubelet \
  /var/lib/containerd /var/lib/cni /etc/cni /opt/containerd /opt/cni /run/kubernetes /etc/kubernetes; do
  [[ -e $d ]] && echo "$d: $(find "$d" 2>/dev/null | wc -l) entries"
done
if [[ ${1:-} == --node ]]; then
  section "iptables (node $NODE_NETNS)"
  nsenter --net="/run/netns/$NODE_NETNS" iptables-save 2>/dev/null | grep -c '^-A' | sed 's/^/rules: /'
fi
true
