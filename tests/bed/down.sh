#!/usr/bin/env bash
# Stops the test bed: no process, no port, no state left behind (caches of built binaries stay).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
bed_stop_all
rm -rf "$BED"
log "test bed down"
