#!/usr/bin/env bash
# What watching a run costs it: the main job (examples/pipelines/wordcount.toml
# on a generated corpus), run plainly or with the live view and the report
# (`--ui --report`) while a client reads the view as the open page does
# (GET /api/state every 0.5 s, /metrics every 5 s). Both run the same way
# (papy in the background, the script waiting for it), so the script's own
# cost is the same on both sides.
#
#   bench/ui_cost.sh plain|ui|unread CORPUS     (unread: --ui --report, no client)
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$((20000 + $$ % 20000))
extra=()
if [ "$mode" != plain ]; then
  extra=(--ui="127.0.0.1:$port" --report "$work/run.html")
fi
"$papy" run -q "$file" --set "inputs.corpus.path=$corpus" "${extra[@]}" > /dev/null &
pid=$!
poller=""
if [ "$mode" = ui ]; then
  # The client is bash itself (/dev/tcp, read): no process per request,
  # as a browser's page costs the run no process either.
  get() {
    exec 3<> "/dev/tcp/127.0.0.1/$port" || return 0
    printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
    while IFS= read -r -u 3 _; do :; done
    exec 3<&-
  }
  (
    i=0
    while :; do
      get /api/state 2>/dev/null || true
      [ $((i % 10)) -eq 0 ] && { get /metrics 2>/dev/null || true; }
      i=$((i + 1))
      sleep 0.5
    done
  ) &
  poller=$!
fi
rc=0
wait "$pid" || rc=$?
[ -z "$poller" ] || kill "$poller" 2>/dev/null || true
exit "$rc"
