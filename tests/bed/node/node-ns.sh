#!/usr/bin/env bash
# The node's mount namespace (run by up.sh under `unshare --mount --propagation slave`, in the
# node's network namespace), held open by this process; containerd, the kubelet and kube-proxy
# join it with nsenter. What is mounted here never reaches the host, and goes when the last
# process in the namespace exits:
# - tmpfs on the node's runtime dirs (containerd's state and its shims' sockets, which
#   containerd 1.6 puts under /run/containerd/s whatever its state dir; pod logs under
#   /var/log/pods and /var/log/containers, paths the kubelet does not let one change; the
#   kubelet's device-plugin socket, always under /var/lib/kubelet whatever its root dir; the
#   CNI results cache in /var/lib/cni);
# - the six machine-wide sysctls the kubelet sets (vm.overcommit_memory, vm.panic_on_oom,
#   kernel.panic, kernel.panic_on_oops, kernel.keys.root_maxkeys, kernel.keys.root_maxbytes):
#   files holding the values it wants are bind-mounted over them, so it finds them set and the
#   host's stay as they are (protectKernelDefaults in its config makes a miss an error, never a
#   write).
# Directories it had to create on the host for mount points are listed in <bed>/node/created
# for down.sh.
#   node-ns.sh <bed dir> <node runtime dir>
set -euo pipefail
bed=${1:?bed dir} run=${2:?node runtime dir}
created="$bed/node/created"
for d in "$run" /run/containerd /var/log/pods /var/log/containers /var/lib/kubelet /var/lib/cni; do
  if [[ ! -d $d ]]; then
    mkdir -p "$d"
    echo "$d" >>"$created"
  fi
  mount -t tmpfs -o mode=0755 "zkscale-node-${d//\//-}" "$d"
done
mkdir -p "$run/sysctl"
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
  kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  key=${kv%%=*} value=${kv#*=}
  file="$run/sysctl/${key//\//.}"
  echo "$value" >"$file"
  mount --bind "$file" "/proc/sys/$key"
done
touch "$bed/node/ns-ready"
exec sleep infinity
