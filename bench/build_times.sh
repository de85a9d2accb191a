#!/usr/bin/env bash
# Build and test wall times as a newcomer meets them, for one or more
# revisions of this repository: each revision in a fresh clone with its own
# (empty) target directory, on a machine whose cargo registry cache is warm
# (downloads are not timed). Runs, in order:
#
#   main     the README's first command: cargo build --release --workspace && papy run examples/pipelines/wordcount.toml
#   tests    the README's second command, in the same clone: cargo test --workspace
#   ci       .ci/run, in a second fresh clone
#   plugin   `papy new plugin probe` (with that revision's papy), then a cold
#            `cargo build --release` of it and its dependency count
#            (`cargo tree -e normal --prefix none | sort -u | wc -l`)
#
#   bench/build_times.sh [REV...]        (default: HEAD)
#
# Takes about 20 minutes per revision on the 2-core machine. Prints one line
# per figure: `REV what seconds`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
revs=("$@")
[ ${#revs[@]} -gt 0 ] || revs=(HEAD)
export CARGO_TERM_COLOR=never
unset CARGO_TARGET_DIR

timed() { # label, command...
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$work/$label.log" 2>&1 || { echo "$rev $label FAILED (log: $work/$label.log)"; return 1; }
  t1=$(date +%s.%N)
  awk -v r="$rev" -v l="$label" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s %s %.0f\n", r, l, b - a }'
}

for rev in "${revs[@]}"; do
  work=$(mktemp -d /tmp/papy-build-times.XXXXXX)
  git clone -q "$repo" "$work/a" && git -C "$work/a" checkout -q "$rev"
  git clone -q "$repo" "$work/b" && git -C "$work/b" checkout -q "$rev"
  (cd "$work/a" && timed main bash -c 'cargo build --release --workspace && ./target/release/papy run examples/pipelines/wordcount.toml')
  (cd "$work/a" && timed tests cargo test --workspace)
  (cd "$work/b" && CI=true timed ci bash .ci/run)
  mkdir -p "$work/p" && (cd "$work/p" && "$work/a/target/release/papy" new plugin probe > /dev/null)
  (cd "$work/p/probe" && timed plugin cargo build --release)
  printf '%s plugin-deps %s\n' "$rev" "$(cd "$work/p/probe" && cargo tree -e normal --prefix none | sort -u | wc -l)"
  rm -rf "$work"
done
