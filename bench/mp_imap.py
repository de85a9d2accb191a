"""Python's multiprocessing.Pool.imap over the same trivial and CPU-bound
functions as `cargo bench --bench process`, for comparison in the same run.

Usage: python3 bench/mp_imap.py [items]
Prints one line per case: name, median seconds over 5 runs, items/s.
"""
import multiprocessing as mp
import statistics
import sys
import time


def inc(x):
    return x + 1


def burn(x, rounds=20000):
    acc = x
    for _ in range(rounds):
        acc = (acc * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return acc & 1


def median_time(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with mp.Pool(2) as pool:
        for chunk in (1, 1000):
            items = n if chunk > 1 else min(n, 20_000)
            t = median_time(lambda: sum(1 for _ in pool.imap(inc, range(items), chunksize=chunk)))
            print(f"python_imap_trivial_chunk{chunk} {t:.4f}s {items / t:.0f} items/s")
        items = 200
        t = median_time(lambda: sum(1 for _ in pool.imap(burn, range(items), chunksize=10)))
        print(f"python_imap_burn20000_chunk10 {t:.4f}s {items / t:.0f} items/s")


if __name__ == "__main__":
    main()
