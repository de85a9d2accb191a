#!/usr/bin/env bash
# Throughput of a worker written in Python (examples/python/shout_worker.py,
# the papy_worker SDK) beside papy's own worker (`papy worker --stdio`), on
# the same trivial function (return the input), 2 workers each, at stride 1
# and 1000, in one run. Prints items/s per case (median of PAIRS runs) and
# the ratio Rust/Python.
#
#   bench/python_worker.sh [ITEMS_STRIDE_1] [ITEMS_STRIDE_1000] [PAIRS]
#       (defaults: 20000 200000 3)
#
# Needs `cargo build --release --workspace` (CARGO_TARGET_DIR is honoured;
# PAPY=path/to/papy names another build, e.g. to compare two) and python3
# with msgpack (`python3 -m pip install ./python`).
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-20000}
n1000=${2:-200000}
pairs=${3:-3}
papy=$(realpath -m "${PAPY:-${CARGO_TARGET_DIR:-target}/release/papy}")
[ -x "$papy" ] || { echo "build first: cargo build --release --workspace ($papy is missing)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

pipeline() { # name, command, function
  cat > "$dir/$1.toml" <<TOML
[resources.w]
kind = "remote"
remote = [{ command = "$2", workers = 2 }]
functions = ["$3"]

[inputs.n]
kind = "range"
start = 0
end = 1

[[pipers]]
name = "f"
resource = "w"
inputs = ["n"]
worker = ["$3"]

[outputs.out]
piper = "f"
path = "/dev/null"
TOML
}
pipeline python "exec python3 $PWD/examples/python/shout_worker.py" py.echo
pipeline rust "exec $papy worker --stdio" papy.ipasser

now() { date +%s.%N; }
run() { # name, items, stride
  local t0 t1
  t0=$(now)
  "$papy" run -q "$dir/$1.toml" --set "inputs.n.end=$2" --set "resources.w.stride=$3" >/dev/null
  t1=$(now)
  awk -v a="$t0" -v b="$t1" -v n="$2" 'BEGIN { printf "%.0f\n", n / (b - a) }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for stride in 1 1000; do
  items=$n1; [ "$stride" = 1000 ] && items=$n1000
  py=(); rs=()
  for _ in $(seq 1 "$pairs"); do
    py+=("$(run python "$items" "$stride")")
    rs+=("$(run rust "$items" "$stride")")
  done
  p=$(printf '%s\n' "${py[@]}" | median)
  r=$(printf '%s\n' "${rs[@]}" | median)
  awk -v s="$stride" -v n="$items" -v p="$p" -v r="$r" 'BEGIN {
    printf "stride %-5s %7d items: Python worker %9d items/s, papy worker %9d items/s (%.1fx)\n", s, n, p, r, r / p }'
done
