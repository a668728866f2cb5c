#!/usr/bin/env bash
# `make fuzz`: libFuzzer (cargo fuzz, nightly) on the parsers of untrusted text, each target
# for FUZZ_SECONDS (default 60), seeded from the shared fixtures. A crasher is copied to
# tests/fuzz_regressions/<target>/ (replayed by `cargo test --test fuzz_regressions`) and the
# run fails. Prints executions per target. FUZZ_TARGETS picks some (default: all).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ZKSCALE_CACHE:-$HOME/.cache/zkscale}"
seconds="${FUZZ_SECONDS:-60}"
fixtures="${ZKSCALE_FIXTURES:-$root/../shared/fixtures}"
export PATH="$cache/cargo/bin:$PATH"
export CARGO_TARGET_DIR="$cache/fuzz-target"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz --root "$cache/cargo"

corpus="$cache/fuzz/corpus"
targets="${FUZZ_TARGETS:-manifest_stream server_list four_letter helm_argv from_entries zoo_cfg annotations}"
for t in $targets; do mkdir -p "$corpus/$t"; done
# Seeds: the chart's real output, its server lists, and the kept regressions.
if [[ -d $fixtures/bitnami-zookeeper ]]; then
  cp -n "$fixtures"/bitnami-zookeeper/*.yaml "$corpus/manifest_stream/" 2>/dev/null || true
  grep -h -A1 'name: ZOO_SERVERS' "$fixtures"/bitnami-zookeeper/*.yaml | sed -n 's/^ *value: //p' |
    sort -u | while read -r line; do printf '%s' "$line" > "$corpus/server_list/$(printf '%s' "$line" | sha1sum | cut -c1-12)"; done
else
  echo "no shared fixtures at $fixtures: seeding from the kept regressions only" >&2
fi
for t in $targets; do
  cp -n "$root"/tests/fuzz_regressions/$t/* "$corpus/$t/" 2>/dev/null || true
done

status=0
cd "$root/fuzz"
for t in $targets; do
  log="$cache/fuzz/$t.log"
  if cargo +nightly fuzz run "$t" "$corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz $t: ${execs:-?} executions in ${seconds}s, no failure; corpus $(ls "$corpus/$t" | wc -l) inputs"
  else
    status=1
    echo "fuzz $t: FAILED, see $log" >&2
    for a in "$root"/fuzz/artifacts/"$t"/*; do
      [[ -f $a ]] || continue
      cp "$a" "$root/tests/fuzz_regressions/$t/"
      echo "  kept $(basename "$a") in tests/fuzz_regressions/$t/" >&2
    done
  fi
done
exit $status
