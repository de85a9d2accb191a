#!/usr/bin/env bash
# What watching a run costs it: the main job (examples/pipelines/wordcount.toml
# on a generated corpus) run plainly, or with the live view and the report
# (`--ui --report`) while a client reads the view as the open page does
# (GET /api/state every 0.5 s, /metrics every 5 s).
#
#   bench/ui_cost.sh plain|ui CORPUS
#
# Time the two in turn, e.g. with hyperfine, or any tool that alternates:
#   python3 examples/pipelines/gen_corpus.py 100 > /tmp/corpus.txt
#   hyperfine -N 'bench/ui_cost.sh plain /tmp/corpus.txt' 'bench/ui_cost.sh ui /tmp/corpus.txt'
# The browser's own rendering is not counted: it runs wherever the page is
# opened, usually another machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1
corpus=$2
papy=./target/release/papy
file=examples/pipelines/wordcount.toml
if [ "$mode" = plain ]; then
  exec "$papy" run -q "$file" --set "inputs.corpus.path=$corpus" > /dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$papy" run -q "$file" --set "inputs.corpus.path=$corpus" --ui --report "$work/run.html" \
  > /dev/null 2> "$work/err" &
pid=$!
url=""
while [ -z "$url" ] && kill -0 "$pid" 2>/dev/null; do
  url=$(sed -n 's/^papy: live view at \(http:[^?]*\).*/\1/p' "$work/err" 2>/dev/null || true)
  [ -n "$url" ] || sleep 0.01
done
i=0
while kill -0 "$pid" 2>/dev/null; do
  curl -s "${url}api/state" > /dev/null || true
  [ $((i % 10)) -eq 0 ] && { curl -s "${url}metrics" > /dev/null || true; }
  i=$((i + 1))
  # 0.5 s between reads, without outliving the run by more than 50 ms.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
done
wait "$pid"
