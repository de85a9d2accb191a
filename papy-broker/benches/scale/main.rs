//! Scale and distance on the broker: one *cell* of `bench/scale/run.py`'s
//! table per call. The host (this process) appends to Redis directly; N
//! broker workers (this binary again, `PAPY_WORKER=redis`) reach Redis
//! through a delay proxy (`proxy.rs`) that adds the chosen round-trip time,
//! as workers on another site would. Prints one JSON line: items/s and the
//! time to the first result, medians of several rounds.
//!
//! ```text
//! scale cell --redis redis://127.0.0.1:PORT --workers 8 --job sleep \
//!            [--stride 100|default] [--rtt-ms 10] [--seconds 1] [--rounds 3]
//! scale proxy --to 127.0.0.1:PORT --rtt-ms 10   # prints its port; ends when stdin closes
//! ```
//!
//! Run without a command (`cargo bench -p papy-broker --bench scale`, or
//! `cargo test --benches`) it measures one small cell on a Redis of its own:
//! 2 workers, 10 ms items.

#[path = "../../tests/support/mod.rs"]
mod support;

mod proxy;

use std::collections::HashMap;
use std::error::Error;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use papy::{worker, NuMap, Pool, Worker};
use papy_broker::{BrokerPool, RunKeys, GROUP, HOST_PID_ENV, RUN_ENV, UNTIL_DONE_ENV, URL_ENV};
use papy_core::pool::WORKER_ENV;
use proxy::DelayProxy;

type Res<T> = Result<T, Box<dyn Error>>;

/// Ten milliseconds of sleep: work that holds a worker, not a core.
#[worker]
fn s_sleep10(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(10));
    x
}

/// The trivial function.
#[worker]
fn s_inc(x: i64) -> i64 {
    x + 1
}

/// Most items in one timed round.
const MAX_ITEMS: u64 = 20_000_000;

/// The key every cell's host and workers share (the bench's own).
const KEY: &str = "papy-scale-bench-key-not-secret";

/// What one cell measures.
struct Cell {
    redis: String,
    workers: usize,
    job: String,
    /// `None`: the NuMap's default (adaptive batching).
    stride: Option<usize>,
    rtt: Duration,
    /// Target length of one timed round.
    seconds: f64,
    rounds: usize,
}

/// One timed run.
struct Round {
    items: u64,
    rate: f64,
    first: Duration,
}

fn main() {
    papy_broker::worker_main();
    if let Err(e) = dispatch() {
        eprintln!("scale bench: {e}");
        std::process::exit(1);
    }
}

fn dispatch() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = flags(&args);
    match args.first().map(String::as_str) {
        Some("cell") => {
            let cell = Cell::from_flags(&flags)?;
            println!("{}", cell.measure()?);
            Ok(())
        }
        Some("proxy") => serve_proxy(&flags),
        _ => smoke(),
    }
}

/// `--name value` pairs.
fn flags(args: &[String]) -> HashMap<String, String> {
    args.windows(2)
        .filter_map(|w| Some((w[0].strip_prefix("--")?.to_string(), w[1].clone())))
        .collect()
}

fn flag<T: std::str::FromStr>(flags: &HashMap<String, String>, name: &str, default: T) -> Res<T> {
    match flags.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name}: cannot read `{v}`").into()),
    }
}

impl Cell {
    fn from_flags(f: &HashMap<String, String>) -> Res<Cell> {
        let stride = match f.get("stride").map(String::as_str) {
            None | Some("default") => None,
            Some(s) => Some(s.parse().map_err(|_| format!("--stride: `{s}`"))?),
        };
        Ok(Cell {
            redis: f.get("redis").cloned().ok_or("--redis URL is required")?,
            workers: flag(f, "workers", 2usize)?.max(1),
            job: flag(f, "job", "sleep".to_string())?,
            stride,
            rtt: Duration::from_secs_f64(flag(f, "rtt-ms", 0.0f64)? / 1000.0),
            seconds: flag(f, "seconds", 1.0)?,
            rounds: flag(f, "rounds", 3usize)?.max(1),
        })
    }

    /// Starts the proxy (if any), the pool and its workers; a first round
    /// warms up and sizes the timed ones; the result as a JSON line.
    fn measure(&self) -> Res<String> {
        let function = match self.job.as_str() {
            "sleep" => "s_sleep10",
            "trivial" => "s_inc",
            other => return Err(format!("--job: `{other}` (sleep or trivial)").into()),
        };
        let job = Worker::new(function)?;
        let proxy = match self.rtt.is_zero() {
            true => None,
            false => Some(DelayProxy::start(upstream(&self.redis)?, self.rtt)?),
        };
        let worker_url = match &proxy {
            Some(p) => format!("redis://{}", p.addr()),
            None => self.redis.clone(),
        };
        let run = format!("scale-{}", std::process::id());
        let pool = BrokerPool::builder("scale", &self.redis)
            .run_id(run.clone())
            .size(self.workers)
            .key(KEY)
            .keep_for(Duration::from_secs(30))
            .build()?;
        let pool: Arc<dyn Pool> = Arc::new(pool);
        let mut children = spawn_workers(self.workers, &worker_url, &run)?;
        let rounds = self.rounds_on(&pool, &job, &run);
        pool.shutdown();
        reap(&mut children);
        Ok(self.json(&rounds?))
    }

    /// Warm-up rounds (until every worker has taken an entry, one lasts
    /// half of `seconds`, and a larger one no longer raises the rate by a
    /// quarter: a round that a long round trip bounds measures latency,
    /// not throughput) size the timed ones.
    fn rounds_on(&self, pool: &Arc<dyn Pool>, job: &Worker, run: &str) -> Res<Vec<Round>> {
        let per_worker = if self.job == "sleep" { 4 } else { 20 };
        // A fixed stride is measured over several strides, not inside one.
        let strides = self.stride.map_or(0, |s| 8 * s);
        let least = (per_worker * self.workers).max(strides) as u64;
        let mut n = least;
        let deadline = Instant::now() + Duration::from_secs(60);
        let limit = Duration::from_secs_f64((4.0 * self.seconds).max(3.0));
        let mut last_rate = 0.0;
        let rate = loop {
            let warm = once(pool, job, self.stride, n, limit)?;
            let secs = warm.items as f64 / warm.rate;
            let all_in = consumers(&self.redis, run)? >= self.workers;
            let rising = warm.rate > 1.25 * last_rate;
            last_rate = warm.rate;
            let long = secs >= self.seconds / 2.0;
            if all_in && ((long && !rising) || n >= MAX_ITEMS || Instant::now() > deadline) {
                break warm.rate;
            }
            if Instant::now() > deadline {
                return Err(
                    format!("not all {} workers took an entry in 60 s", self.workers).into(),
                );
            }
            if all_in {
                let grow = if long {
                    4.0
                } else {
                    (self.seconds / secs).clamp(2.0, 16.0)
                };
                n = ((n as f64 * grow) as u64).min(MAX_ITEMS);
            }
        };
        // Sized from the last (largest) warm-up round, never smaller.
        let n = ((rate * self.seconds) as u64).clamp(n, MAX_ITEMS);
        (0..self.rounds)
            .map(|_| once(pool, job, self.stride, n, limit))
            .collect()
    }

    fn json(&self, rounds: &[Round]) -> String {
        let rate = median(rounds.iter().map(|r| r.rate).collect());
        let first = median(rounds.iter().map(|r| r.first.as_secs_f64()).collect());
        let stride = self.stride.map_or("\"default\"".into(), |s| s.to_string());
        format!(
            "{{\"workers\":{},\"job\":\"{}\",\"stride\":{stride},\"rtt_ms\":{},\"items\":{},\"rounds\":{},\"items_per_s\":{rate:.1},\"first_ms\":{:.2}}}",
            self.workers,
            self.job,
            self.rtt.as_secs_f64() * 1000.0,
            // Fewer than asked when a round was stopped at its limit.
            rounds.iter().map(|r| r.items).min().unwrap_or(0),
            rounds.len(),
            first * 1000.0
        )
    }
}

/// Where a `redis://host:port` URL points.
fn upstream(url: &str) -> Res<SocketAddr> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("the delay proxy needs a redis://host:port URL")?;
    let host = rest.rsplit('@').next().unwrap_or(rest);
    let host = host.split('/').next().unwrap_or(host);
    host.to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("`{host}` has no address").into())
}

/// One run of `n` items: items/s and the time to the first result. A run
/// still going after `limit` is stopped (the items in flight still come
/// out) and measured on what it delivered: a slow cell stays short.
fn once(
    pool: &Arc<dyn Pool>,
    job: &Worker,
    stride: Option<usize>,
    n: u64,
    limit: Duration,
) -> Res<Round> {
    let mut b = NuMap::builder().pool(pool.clone());
    if let Some(s) = stride {
        // As benches/broker.rs: room for several strides in flight.
        b = b.stride(s).buffer((s * 4).max(4096));
    }
    let m = b.build()?;
    let start = Instant::now();
    let t = m.add_task(job.clone(), 0..n as i64)?;
    m.start()?;
    let mut first = None;
    let (mut ok, mut seen) = (0u64, 0u64);
    for r in m.results(t)? {
        first.get_or_insert_with(|| start.elapsed());
        ok += u64::from(r.is_ok());
        seen += 1;
        if seen % 64 == 0 && start.elapsed() > limit {
            m.stop();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if ok != seen || seen == 0 {
        return Err(format!("{} of {seen} items failed", seen - ok).into());
    }
    Ok(Round {
        items: seen,
        rate: seen as f64 / secs,
        first: first.unwrap_or_default(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `n` broker workers: this binary, serving run `run` at `url` until the
/// host marks it done (or dies).
fn spawn_workers(n: usize, url: &str, run: &str) -> Res<Vec<Child>> {
    let exe = std::env::current_exe()?;
    (0..n)
        .map(|_| {
            Command::new(&exe)
                .env(WORKER_ENV, "redis")
                .env(URL_ENV, url)
                .env(RUN_ENV, run)
                .env(papy_broker::seal::KEY_ENV, KEY)
                .env(UNTIL_DONE_ENV, "1")
                .env(HOST_PID_ENV, std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(Into::into)
        })
        .collect()
}

/// Waits for the workers to leave (the run is done), killing stragglers.
fn reap(children: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in children.iter_mut() {
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Workers that have read from the run's consumer group (Redis 7 adds a
/// consumer at its first entry, not at a read that finds none).
fn consumers(url: &str, run: &str) -> Res<usize> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    let seen: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(RunKeys::new(run).tasks)
        .arg(GROUP)
        .query(&mut con)?;
    Ok(seen.len())
}

/// `proxy --to HOST:PORT --rtt-ms R`: prints the port it listens on, runs
/// until stdin closes (for the Celery side of the table).
fn serve_proxy(f: &HashMap<String, String>) -> Res<()> {
    let to = f.get("to").ok_or("--to HOST:PORT is required")?;
    let upstream = to
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("`{to}` has no address"))?;
    let rtt = Duration::from_secs_f64(flag(f, "rtt-ms", 0.0f64)? / 1000.0);
    let proxy = DelayProxy::start(upstream, rtt)?;
    println!("{}", proxy.addr().port());
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}

/// One small cell on a Redis of its own (Unix socket, no proxy).
fn smoke() -> Res<()> {
    let server = support::RedisServer::start();
    let cell = Cell {
        redis: server.url(),
        workers: 2,
        job: "sleep".into(),
        stride: None,
        rtt: Duration::ZERO,
        seconds: 0.3,
        rounds: 1,
    };
    println!("{}", cell.measure()?);
    println!("the full table: python3 bench/scale/run.py");
    Ok(())
}
