#!/usr/bin/env bash
# What a broker run leaves in Redis: starts a throw-away redis-server, runs
# ITEMS items of papy.ipasser through a `redis` resource (2 local workers,
# stride 1000), and prints Redis's used memory and each key's size after
# the run (before the keys expire).
#
#   bench/redis_memory.sh [ITEMS] [PORT]     (defaults: 3000000 6399)
#
# Needs `cargo build --release -p papy-cli` (CARGO_TARGET_DIR is honoured;
# PAPY=path/to/papy names another build, e.g. to compare two) and
# redis-server / redis-cli on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-3000000}
port=${2:-6399}
papy=$(realpath -m "${PAPY:-${CARGO_TARGET_DIR:-target}/release/papy}")
[ -x "$papy" ] || { echo "build first: cargo build --release -p papy-cli ($papy is missing)" >&2; exit 1; }
dir=$(mktemp -d)
redis-server --port "$port" --save '' --appendonly no --dir "$dir" --daemonize yes >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
cat > "$dir/run.toml" <<TOML
[resources.farm]
kind = "redis"
url = "redis://127.0.0.1:$port"
run_id = "mem"
workers = 2
stride = 1000

[inputs.n]
kind = "range"
start = 0
end = $items

[[pipers]]
name = "f"
resource = "farm"
inputs = ["n"]
worker = ["papy.ipasser"]

[outputs.out]
piper = "f"
path = "/dev/null"
TOML
"$papy" run -q "$dir/run.toml"
echo "$items items: $(redis-cli -p "$port" info memory | tr -d '\r' | grep '^used_memory_human')"
for key in $(redis-cli -p "$port" --scan | sort); do
  echo "  $key $(redis-cli -p "$port" memory usage "$key") bytes"
done
