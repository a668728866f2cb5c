#!/usr/bin/env bash
# Stops the test bed: no process, no port, no state left behind (caches of built binaries stay).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
# A node bed (BED=node) is up: its own down also removes the node's namespaces and cgroups.
if [[ -f $BED/node/mode || -e /run/netns/zkscale-node-0 ]]; then exec "$here/node/down.sh"; fi
bed_stop_all
rm -rf "$BED"
log "test bed down"
