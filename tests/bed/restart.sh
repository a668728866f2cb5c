#!/usr/bin/env bash
# restart.sh COMPONENT: stops one component of the running bed and starts it again exactly as
# up.sh did (the fault tests restart kube-apiserver mid-step). Waits until it serves again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
name="$1"
[[ -f "$BED/cmds/$name" ]] || { echo "no recorded command for $name (is the bed up?)" >&2; exit 2; }
cmd="$(cat "$BED/cmds/$name")"
stop "$name"
eval "start $name $cmd"
if [[ $name == kube-apiserver ]]; then
  wait_for "kube-apiserver" 120 curl -sf --cacert "$BED/pki/ca.crt" --cert "$BED/pki/admin.crt" \
    --key "$BED/pki/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz"
fi
log "$name restarted"
