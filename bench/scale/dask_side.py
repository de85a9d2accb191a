"""The Dask side of bench/scale/run.py: the same two jobs (10 ms of sleep,
x + 1) on a Dask distributed local cluster of N single-threaded worker
processes, and a client that times one cell.

Run by run.py with the virtualenv's python:
    python dask_side.py --job sleep|trivial --workers N --seconds 1 --rounds 3
Prints one JSON line: items/s and the time to the first result (in input
order), medians. Dask has no Redis: its workers talk to its scheduler on
this machine (no delay proxy), so it stands beside the 0 ms rows only.
"""

import argparse
import json
import statistics
import time

from dask.distributed import Client, LocalCluster, wait


def sleep10(x):
    """The same 10 ms of sleep as the papy side's s_sleep10."""
    time.sleep(0.01)
    return x


def inc(x):
    """The trivial function."""
    return x + 1


def once(client, f, n):
    """Maps f over range(n): (items/s, seconds to the first result)."""
    start = time.perf_counter()
    futures = client.map(f, range(n), pure=False)
    futures[0].result()
    first = time.perf_counter() - start
    wait(futures)
    rate = n / (time.perf_counter() - start)
    client.cancel(futures)
    return rate, first


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--job", choices=["sleep", "trivial"], required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    f = sleep10 if a.job == "sleep" else inc
    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    with cluster, Client(cluster) as client:
        # Warm-up rounds, growing until one lasts half of --seconds; the
        # timed ones are sized from the last (largest) one, never smaller.
        n = 4 * a.workers if a.job == "sleep" else 20
        while True:
            rate, _ = once(client, f, n)
            if n / rate >= a.seconds / 2 or n >= 200000:
                break
            n = min(200000, int(n * min(16, max(2, a.seconds * rate / n))))
        n = max(n, min(200000, int(rate * a.seconds)))
        runs = [once(client, f, n) for _ in range(a.rounds)]
    print(json.dumps({
        "items": n,
        "rounds": a.rounds,
        "items_per_s": statistics.median(r for r, _ in runs),
        "first_ms": 1000 * statistics.median(t for _, t in runs),
    }))


if __name__ == "__main__":
    main()
