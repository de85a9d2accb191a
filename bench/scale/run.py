#!/usr/bin/env python3
"""Scale and distance on papy's Redis broker, beside Celery on the same
redis-server, in one run; prints ONE table (Markdown).

    python3 bench/scale/run.py [--seconds 1] [--rounds 3] [--workers 1,2,4,8,16,32]
                               [--rtts 0,1,10,50] [--rtt-workers 4] [--no-celery] [--no-dask]

Rows:
- workers: throughput against the number of broker workers, for items of
  10 ms of sleep (work that holds a worker, not a core) and trivial items
  (x + 1), papy at its default settings (adaptive batching); Celery with
  `celery worker -c N` (prefork) on the same jobs;
- rtt: throughput against the round-trip time between the workers and
  Redis (a delay proxy, the bench binary's `proxy` command, holds each chunk
  RTT/2 each way; the host/client reaches Redis directly), trivial items,
  `--rtt-workers` workers, papy at stride 1, 100, 1000 and the default
  (fixed strides with buffer max(4 x stride, 4096), as
  papy-broker/benches/broker.rs); Celery at its defaults on the default row.

Each cell: workers started and warmed up (every worker has taken work),
then `--rounds` timed rounds of about `--seconds` each (fewer items where
items are slow); items/s and the time from the first send to the first
result (in input order), medians; for Celery also how fast its client
sent (`.delay()` calls per second: was the client or were the workers the
limit?). Dask distributed (a local cluster of as many single-threaded
worker processes, `dask_side.py`) runs the same jobs beside the 0 ms rows
(it has no Redis, so no delay proxy). Needs redis-server and cargo; Celery
and Dask are installed in a virtualenv (PAPY_BENCH_VENV, default
~/.cache/papy-bench/celery-venv); without them their columns stay empty
and the header says why.
Everything it starts (redis-server on a free port of 127.0.0.1, proxies,
workers) is stopped at the end.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine_facts():
    model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    return [
        f"command: {' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}",
        f"commit: {sh(f'git -C {ROOT} rev-parse --short HEAD')}",
        f"machine: {os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"1-min load {os.getloadavg()[0]:.1f} at start",
        f"redis: {sh('redis-server --version')}",
    ]


def build_bench():
    """Builds the bench binary (release), returns its path."""
    out = subprocess.run(
        ["cargo", "bench", "-p", "papy-broker", "--bench", "scale", "--no-run",
         "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"cargo bench --no-run failed:\n{out.stderr[-3000:]}")
    for line in out.stdout.splitlines():
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "scale" \
                and m.get("executable"):
            return m["executable"]
    sys.exit("cargo did not name the scale bench's executable")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    sys.exit("redis-server did not start")


def celery_python():
    """The virtualenv's python with Celery, or (None, why)."""
    venv = os.environ.get("PAPY_BENCH_VENV",
                          os.path.expanduser("~/.cache/papy-bench/celery-venv"))
    py = os.path.join(venv, "bin", "python")
    check = [py, "-c", "import celery, redis; print(celery.__version__)"]
    if os.path.exists(py) and subprocess.run(check, capture_output=True).returncode == 0:
        return py, None
    log(f"installing Celery into {venv} ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "celery[redis]"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"Celery could not be installed ({e})"
    return py, None


def dask_ready(py):
    """Whether the virtualenv's python has Dask distributed (installing it,
    within 5 minutes), or (False, why)."""
    check = [py, "-c", "import dask.distributed"]
    if subprocess.run(check, capture_output=True).returncode == 0:
        return True, None
    log("installing dask[distributed] into the virtualenv ...")
    try:
        subprocess.run([py, "-m", "pip", "install", "-q", "dask[distributed]"], check=True,
                       capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as e:
        return False, f"Dask could not be installed in 5 minutes ({e})"
    return True, None


def dask_cell(py, a, workers, job):
    out = subprocess.run(
        [py, os.path.join(HERE, "dask_side.py"), "--job", job, "--workers", str(workers),
         "--seconds", str(a.seconds), "--rounds", str(a.rounds)],
        cwd=HERE, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-200:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


class Proxy:
    """The bench binary's delay proxy to Redis (for the Celery workers)."""

    def __init__(self, exe, port, rtt):
        self.proc = subprocess.Popen(
            [exe, "proxy", "--to", f"127.0.0.1:{port}", "--rtt-ms", str(rtt)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def papy_cell(exe, port, a, **cell):
    args = [exe, "cell", "--redis", f"redis://127.0.0.1:{port}",
            "--seconds", str(a.seconds), "--rounds", str(a.rounds)]
    for k, v in cell.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-200:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def celery_cell(py, exe, port, a, workers, job, rtt):
    """Starts `celery worker -c workers` (through a delay proxy when rtt > 0),
    times the job from a client on Redis directly, stops the worker."""
    proxy = Proxy(exe, port, rtt) if rtt else None
    wport = proxy.port if proxy else port
    env = dict(os.environ, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
    worker = subprocess.Popen(
        [py, "-m", "celery", "-A", "celery_side", "worker", "-c", str(workers),
         "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-l", "WARNING"],
        cwd=HERE, env=dict(env, BROKER=f"redis://127.0.0.1:{wport}/1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out = subprocess.run(
            [py, os.path.join(HERE, "celery_side.py"), "--job", job, "--workers", str(workers),
             "--seconds", str(a.seconds), "--rounds", str(a.rounds)],
            env=dict(env, BROKER=f"redis://127.0.0.1:{port}/1"),
            capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            return {"error": out.stderr.strip()[-200:]}
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        stop_group(worker)
        if proxy:
            proxy.close()


def stop_group(proc):
    """Stops a process we started in its own session, and its children."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def fmt(cell, key, digits=0):
    if not cell:
        return ""
    if "error" in cell:
        return "error"
    return f"{cell[key]:,.{digits}f}"


def ratio(p, c):
    if p and c and "error" not in p and "error" not in c and c["items_per_s"]:
        return f"{p['items_per_s'] / c['items_per_s']:,.0f}x"
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", default="1,2,4,8,16,32")
    ap.add_argument("--rtts", default="0,1,10,50")
    ap.add_argument("--rtt-workers", type=int, default=4)
    ap.add_argument("--no-celery", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    a = ap.parse_args()
    # SIGTERM runs the clean-up below too (workers, proxies, redis-server).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    if not shutil.which("redis-server"):
        sys.exit("redis-server is needed (apt-get install redis-server)")
    facts = machine_facts()
    exe = build_bench()
    py, why = (None, "skipped (--no-celery)") if a.no_celery else celery_python()
    if py:
        facts.append("celery: " + sh(f"{py} -c 'import celery; print(celery.__version__)'"))
    else:
        log(f"Celery columns left empty: {why}")
        facts.append(f"celery: {why}")
    dask, why = (False, "skipped (--no-dask)") if a.no_dask or not py else dask_ready(py)
    if dask:
        facts.append("dask: " + sh(f"{py} -c 'import distributed; print(distributed.__version__)'"))
    else:
        why = why or "no virtualenv"
        log(f"Dask columns left empty: {why}")
        facts.append(f"dask: {why}")
    tmp = tempfile.mkdtemp(prefix="papy-scale-")
    redis, port = start_redis(tmp)
    rows = []
    try:
        plan = [("workers", job, int(w), 0, "default")
                for job in ("sleep", "trivial") for w in a.workers.split(",")]
        plan += [("rtt", "trivial", a.rtt_workers, float(r), s)
                 for r in a.rtts.split(",") for s in ("1", "100", "1000", "default")]
        for sweep, job, w, rtt, stride in plan:
            p = papy_cell(exe, port, a, workers=w, job=job, stride=stride, rtt_ms=rtt)
            c = None
            if py and stride == "default":
                c = celery_cell(py, exe, port, a, w, job, rtt)
            d = dask_cell(py, a, w, job) if dask and stride == "default" and rtt == 0 else None
            rows.append((sweep, job, w, rtt, stride, p, c, d))
            log(f"{time.strftime('%H:%M:%S')} {sweep} {job} workers={w} rtt={rtt:g}ms "
                f"stride={stride}: papy {p} celery {c} dask {d}")
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(facts, rows)


def print_table(facts, rows):
    print()
    for f in facts:
        print(f"- {f}")
    print()
    print("| sweep | job | workers | RTT ms | papy stride | papy items/s | papy first ms "
          "| Celery items/s | Celery first ms | Celery sends/s | papy / Celery "
          "| Dask items/s | Dask first ms |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sweep, job, w, rtt, stride, p, c, d in rows:
        job_name = "10 ms sleep" if job == "sleep" else "x + 1"
        print(f"| {sweep} | {job_name} | {w} | {rtt:g} | {stride} | {fmt(p, 'items_per_s')} "
              f"| {fmt(p, 'first_ms', 1)} | {fmt(c, 'items_per_s')} | {fmt(c, 'first_ms', 1)} "
              f"| {fmt(c, 'sends_per_s')} "
              f"| {ratio(p, c)} | {fmt(d, 'items_per_s')} | {fmt(d, 'first_ms', 1)} |")


if __name__ == "__main__":
    main()
