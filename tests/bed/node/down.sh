#!/usr/bin/env bash
# Stops the node bed (and the control plane): no process, network namespace, mount, cgroup,
# veth or iptables rule left behind (node/leftovers.sh lists them; node/check-clean.sh compares).
# Safe on a machine with no bed, a simulated bed, or the remains of a crashed node bed: what it
# removes is found by the fixed names in node.env, not only by the bed's records.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
beddir="$(cd "$here/.." && pwd)"
source "$beddir/lib.sh"
source "$here/node.env"
N="$BED/node"

# Pids of the processes in one of the node's cgroups (containers, sandboxes).
cgroup_pids() {
  local d
  for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [[ -d $d ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}
# Pids in the node's network namespace or its mount namespace (recorded at up).
ns_pids() {
  [[ -e /run/netns/$NODE_NETNS ]] && ip netns pids "$NODE_NETNS" 2>/dev/null
  if [[ -f $N/mntns ]]; then
    local want p; want="$(cat "$N/mntns")"
    for p in /proc/[0-9]*; do
      [[ $(readlink "$p/ns/mnt" 2>/dev/null) == "$want" ]] && echo "${p#/proc/}"
    done
  fi
  true
}
kill_all() { # what pids...
  local what="$1"; shift
  [[ $# -gt 0 ]] || return 0
  log "SIGKILL to $# $what process(es)"
  kill -KILL "$@" 2>/dev/null || true
}

# The kubelet first, so that nothing restarts a container; then the containers and sandboxes
# (their cgroups), containerd's shims and containerd; then everything else in the node's
# namespaces; then the control plane (lib.sh).
for c in provisioner coredns kube-proxy kubelet; do stop "$c"; done
for _ in 1 2 3 4 5; do
  mapfile -t pids < <(cgroup_pids)
  [[ ${#pids[@]} -eq 0 ]] && break
  kill_all "container" "${pids[@]}"
  sleep 0.5
done
shims=()
for p in /proc/[0-9]*; do
  if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "-address $N/containerd.sock"; then shims+=("${p#/proc/}"); fi
done
kill_all "containerd shim" "${shims[@]}"
for c in containerd apiserver-relay-node apiserver-relay-host node-ns; do stop "$c"; done
for _ in 1 2 3 4 5; do
  mapfile -t pids < <(ns_pids | sort -u)
  [[ ${#pids[@]} -eq 0 ]] && break
  kill_all "node namespace" "${pids[@]}"
  sleep 0.5
done
bed_stop_all

# cgroups, deepest first (empty now).
for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
  [[ -d $d ]] || continue
  find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  [[ -d $d ]] && log "cgroup $d could not be removed: $(find "$d" -name cgroup.procs -exec cat {} + | tr '\n' ' ')"
done
# The veth pair goes with either end; the netns with its last process and its mount.
ip link del "$NODE_HOST_IF" 2>/dev/null || true
[[ -e /run/netns/$NODE_NETNS ]] && ip netns del "$NODE_NETNS"
if [[ -f $N/netns-dir-created ]] && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
  umount /run/netns 2>/dev/null || true
  rmdir /run/netns 2>/dev/null || true
fi
# Mount points node-ns.sh created on the host (its tmpfs mounts went with its namespace).
if [[ -f $N/created ]]; then
  while read -r d; do rmdir "$d" 2>/dev/null || log "left $d (not empty)"; done <"$N/created"
fi
rm -rf "$BED"
log "node bed down"
