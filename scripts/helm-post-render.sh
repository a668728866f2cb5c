#!/bin/sh
# Helm 4 plugin entry point: runs `kubectl-zkscale post-render` with Helm's
# --post-renderer-args. The binary is looked up where `make install` puts it (bin/ of the
# plugin), where `cargo build --release` puts it in a checkout, then on PATH.
dir=${HELM_PLUGIN_DIR:-$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)}
for bin in "$dir/bin/kubectl-zkscale" \
           "$dir/target/release/kubectl-zkscale" \
           "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/kubectl-zkscale}"; do
  [ -n "$bin" ] && [ -x "$bin" ] && exec "$bin" post-render "$@"
done
if command -v kubectl-zkscale >/dev/null 2>&1; then
  exec kubectl-zkscale post-render "$@"
fi
msg="zkscale Helm plugin: kubectl-zkscale not found (looked in $dir/bin, $dir/target/release and PATH); run \`make install\` or \`cargo build --release\`"
echo "$msg" >&2
# Helm 4 drops a plugin's stderr: say it where a person can see it.
{ echo "$msg" > /dev/tty; } 2>/dev/null
exit 127
