#!/usr/bin/env bash
# The main job against awk, in turns, on the same corpus: the shipped
# examples/pipelines/wordcount.toml, unchanged, vs
# awk '{for(i=1;i<=NF;i++)c[$i]++}'. Prints each run and the medians, and
# the median of the per-pair ratios (pairs keep the ratio meaningful when
# the machine's speed drifts).
#
#   bench/wordcount.sh [MEGABYTES] [PAIRS]     (defaults: 100 MB, 7 pairs)
#
# Needs `cargo build --release --workspace` python3 (corpus generator) and awk.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-100}
pairs=${2:-7}
papy=./target/release/papy
[ -x "$papy" ] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
corpus=$(mktemp -d)/corpus-${mb}mb.txt
trap 'rm -rf "$(dirname "$corpus")"' EXIT
python3 examples/pipelines/gen_corpus.py "$mb" > "$corpus"

now() { date +%s.%N; }
run_papy() {
  "$papy" run -q examples/pipelines/wordcount.toml --set "inputs.corpus.path=$corpus" > /dev/null
}
run_awk() { awk '{for(i=1;i<=NF;i++)c[$i]++}' "$corpus"; }

# One warm-up each (page cache, plugin load).
run_papy; run_awk
p=(); a=(); r=()
for i in $(seq 1 "$pairs"); do
  t0=$(now); run_papy; t1=$(now); run_awk; t2=$(now)
  tp=$(awk "BEGIN {print $t1 - $t0}"); ta=$(awk "BEGIN {print $t2 - $t1}")
  p+=("$tp"); a+=("$ta"); r+=("$(awk "BEGIN {print $ta / $tp}")")
  printf 'pair %d: papy %.3f s  awk %.3f s  awk/papy %.2fx\n' "$i" "$tp" "$ta" "${r[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf 'median of %d pairs, %s MB: papy %.3f s, awk %.3f s, papy is %.2fx awk'"'"'s speed\n' \
  "$pairs" "$mb" "$(median "${p[@]}")" "$(median "${a[@]}")" "$(median "${r[@]}")"
