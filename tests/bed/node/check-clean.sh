#!/usr/bin/env bash
# Acceptance for `BED=node make testbed-down`: lists the host's state (leftovers.sh) with the bed
# down, brings the node bed up and runs one ZooKeeper pod of the fixture chart, lists the node's
# own iptables rules, brings it down, lists again and fails on any difference.
# Hold the bed lock: flock ~/.cache/zkscale/bed.lock tests/bed/node/check-clean.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
fixtures="${ZKSCALE_FIXTURES:-$root/../shared/fixtures}"
out="$(mktemp -d)"
"$here/down.sh"
"$here/leftovers.sh" >"$out/before"
# A failure after this point still brings the bed down (the lock holder must not leave it up).
trap 'echo "check-clean failed; bringing the node bed down" >&2; "$here/down.sh"' ERR
kc="$("$here/up.sh" | tail -1)"; export "${kc?}"
K=("${ZKSCALE_CACHE:-$HOME/.cache/zkscale}/helm4/kubectl")
"${K[@]}" create namespace clean-check >/dev/null
sed 's/namespace: zk-test/namespace: clean-check/' "$fixtures/bitnami-zookeeper/13.7.4-replicas-1.yaml" \
  | "${K[@]}" apply -f - >/dev/null
"${K[@]}" -n clean-check wait --for=condition=Ready pod/zk-zookeeper-0 --timeout=300s
"$here/leftovers.sh" --node >"$out/up"
echo "while up: $(grep -A1 'iptables (node' "$out/up" | tail -1) in the node's netns; $(grep -c . "$out/up") lines of host state" >&2
trap - ERR
"$here/down.sh"
"$here/leftovers.sh" >"$out/after"
if diff -u "$out/before" "$out/after"; then
  echo "clean: the host's processes, namespaces, links, routes, iptables, mounts, cgroups, sysctls and runtime dirs are as before" >&2
  rm -rf "$out"
else
  echo "LEFT BEHIND (see $out)" >&2
  exit 1
fi
