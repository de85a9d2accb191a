"""The Celery side of bench/scale/run.py: the same two jobs (10 ms of sleep,
x + 1) as Celery tasks, and a client that times one cell.

Run by run.py with the virtualenv's python:
    python celery_side.py --job sleep|trivial --seconds 1 --rounds 3
with BROKER (the client's Redis URL) in the environment; the worker
(`celery -A celery_side worker ...`) is started by run.py with the same
module and its own URL (through the delay proxy when there is one).
Prints one JSON line: items/s and the time to the first result, medians.
"""

import argparse
import json
import os
import statistics
import time

from celery import Celery
from celery.result import ResultSet

app = Celery("celery_side", broker=os.environ["BROKER"], backend=os.environ["BROKER"])
app.conf.update(
    broker_connection_retry_on_startup=True,
    result_expires=600,
    worker_hijack_root_logger=False,
)


@app.task
def sleep10(x):
    """The same 10 ms of sleep as the papy side's s_sleep10."""
    time.sleep(0.01)
    return x


@app.task
def inc(x):
    """The trivial function."""
    return x + 1


def once(task, n):
    """Sends n calls, looking every 10 sends whether the first result is in
    (the result backend's client is not safe to share with a sender
    thread), then waits for all: (items/s, seconds to the first result)."""
    results = []
    first = None
    start = time.perf_counter()
    for i in range(n):
        results.append(task.delay(i))
        if first is None and i % 10 == 0 and results[0].ready():
            first = time.perf_counter() - start
    sent = time.perf_counter() - start
    if first is None:
        results[0].get(timeout=600)
        first = time.perf_counter() - start
    ResultSet(results).join_native(timeout=600, interval=0.005)
    return n / (time.perf_counter() - start), first, n / sent


def wait_for_worker():
    """Until a worker answers a ping (its pool processes are up)."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise SystemExit("no Celery worker answered in 120 s")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--job", choices=["sleep", "trivial"], required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    task = sleep10 if a.job == "sleep" else inc
    wait_for_worker()
    # Warm-up rounds, growing until one lasts half of --seconds; the timed
    # ones are sized from the last (largest) one, never smaller.
    least = 4 * a.workers if a.job == "sleep" else 20
    n = least
    while True:
        rate, _, _ = once(task, n)
        if n / rate >= a.seconds / 2 or n >= 20000:
            break
        n = min(20000, int(n * min(16, max(2, a.seconds * rate / n))))
    n = max(n, min(20000, int(rate * a.seconds)))
    runs = [once(task, n) for _ in range(a.rounds)]
    print(json.dumps({
        "items": n,
        "rounds": a.rounds,
        "items_per_s": statistics.median(r for r, _, _ in runs),
        "first_ms": 1000 * statistics.median(f for _, f, _ in runs),
        "sends_per_s": statistics.median(s for _, _, s in runs),
    }))


if __name__ == "__main__":
    main()
