#!/usr/bin/env bash
# The scaling table: a chain of N pipers (each adds 1) on one shared NuMap
# and on one NuMap each (2 threads, adaptive batching), over ITEMS items;
# time per item-node (wall / (ITEMS x N)) and peak RSS (/usr/bin/time -v).
# Each cell is the median of RUNS runs; the cells are run in turns (all
# cells once, then again) so that a drift of the machine's speed spreads
# over all of them.
#
#   bench/scaling.sh [RUNS] [PIPERS...] [-- ITEMS...]
#   defaults: 3 runs; pipers 1 4 16 64 at 10^6 items; then the input sweep
#   10^5 10^6 10^7 items at 4 pipers.
#
# Needs `cargo bench --bench scaling --no-run` (CARGO_TARGET_DIR is honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
pipers=() sweep=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do pipers+=("$1"); shift; done
[ $# -gt 0 ] && shift
sweep=("$@")
[ ${#pipers[@]} -gt 0 ] || pipers=(1 4 16 64)
[ ${#sweep[@]} -gt 0 ] || sweep=(100000 1000000 10000000)
dir=${CARGO_TARGET_DIR:-target}/release/deps
bin=$(ls -t "$dir"/scaling-* 2>/dev/null | grep -v '\.d$' | head -1)
[ -x "$bin" ] || { echo "build first: cargo bench --bench scaling --no-run" >&2; exit 1; }

cells=()
for n in "${pipers[@]}"; do cells+=("$n 1000000 shared" "$n 1000000 own"); done
for i in "${sweep[@]}"; do cells+=("4 $i shared" "4 $i own"); done
declare -A ns rss
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$runs"); do
  for c in "${cells[@]}"; do
    # shellcheck disable=SC2086
    /usr/bin/time -v "$bin" $c > "$out" 2> "$out.time"
    ns[$c]+="$(awk '{for(i=1;i<NF;i++) if($i=="ns_per_item_node") print $(i+1)}' "$out") "
    rss[$c]+="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out.time") "
  done
  rm -f "$out.time"
done
median() { printf '%s\n' $1 | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf '%-7s %-10s %-7s %16s %14s\n' pipers items numaps ns/item-node 'peak RSS MiB'
for c in "${cells[@]}"; do
  read -r n i m <<< "$c"
  printf '%-7s %-10s %-7s %16.1f %14.1f\n' "$n" "$i" "$m" "$(median "${ns[$c]}")" \
    "$(awk "BEGIN {print $(median "${rss[$c]}") / 1024}")"
done
