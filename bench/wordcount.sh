#!/usr/bin/env bash
# The main job against its limit and against awk, in turns, on one corpus:
#   papy  the shipped examples/pipelines/wordcount.toml, unchanged;
#   hand  bench/wordcount_by_hand.rs: the same count written by hand (2 threads
#         over line-aligned halves, an FxHash map), same output;
#   awk   awk '{for(i=1;i<=NF;i++)c[$i]++}': whitespace split only, no
#         lower-casing, no top 10 (it does less than the other two).
# Each round runs the three in turn; a round's ratios (hand/papy, awk/papy:
# papy's speed as a fraction of the other's) keep their meaning when the
# machine's speed drifts. Prints each round and the medians.
#
#   bench/wordcount.sh [MEGABYTES] [ROUNDS]     (defaults: 100 MB, 7 rounds)
#
# Needs `cargo build --release -p papy-cli -p papy-plugin-text` and
# `cargo build --release --example wordcount_by_hand` (CARGO_TARGET_DIR is
# honoured), python3 and awk.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-100}
rounds=${2:-7}
bin=${CARGO_TARGET_DIR:-target}/release
papy=$bin/papy hand=$bin/examples/wordcount_by_hand
for b in "$papy" "$hand" "$bin/libtext.so"; do
  [ -e "$b" ] || { echo "build first ($b is missing): see the header of $0" >&2; exit 1; }
done
export PAPY_PLUGIN_PATH=$bin${PAPY_PLUGIN_PATH:+:$PAPY_PLUGIN_PATH}
corpus=$(mktemp -d)/corpus-${mb}mb.txt
trap 'rm -rf "$(dirname "$corpus")"' EXIT
python3 examples/pipelines/gen_corpus.py "$mb" > "$corpus"

run_papy() { "$papy" run -q examples/pipelines/wordcount.toml --set "inputs.corpus.path=$corpus"; }
run_hand() { "$hand" "$corpus"; }
run_awk() { awk '{for(i=1;i<=NF;i++)c[$i]++}' "$corpus"; }

# The warm-up (page cache, plugin load) checks the two counts agree.
cmp <(run_papy) <(run_hand) || { echo "papy and the hand-written count differ" >&2; exit 1; }
run_awk
now() { date +%s.%N; }
p=() h=() a=() rh=() ra=()
for i in $(seq 1 "$rounds"); do
  t0=$(now); run_papy > /dev/null; t1=$(now); run_hand > /dev/null; t2=$(now); run_awk; t3=$(now)
  p+=("$(awk "BEGIN {print $t1 - $t0}")") h+=("$(awk "BEGIN {print $t2 - $t1}")")
  a+=("$(awk "BEGIN {print $t3 - $t2}")")
  rh+=("$(awk "BEGIN {print ${h[-1]} / ${p[-1]}}")") ra+=("$(awk "BEGIN {print ${a[-1]} / ${p[-1]}}")")
  printf 'round %d: papy %.3f s  hand %.3f s  awk %.3f s  hand/papy %.2fx  awk/papy %.2fx\n' \
    "$i" "${p[-1]}" "${h[-1]}" "${a[-1]}" "${rh[-1]}" "${ra[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf 'median of %d rounds, %s MB: papy %.3f s, hand %.3f s, awk %.3f s\n' \
  "$rounds" "$mb" "$(median "${p[@]}")" "$(median "${h[@]}")" "$(median "${a[@]}")"
printf 'papy runs at %.2fx the hand-written program'"'"'s speed and %.2fx awk'"'"'s\n' \
  "$(median "${rh[@]}")" "$(median "${ra[@]}")"
