//! papy on Redis Streams: a broker-backed [`Pool`](papy_core::Pool) for
//! pipelines that outgrow one machine (see `docs/distributed.md`).
//!
//! - The host ([`BrokerPool`], `kind = "redis"` in a pipeline file) appends
//!   each job as a task entry to `papy:<run>:tasks` and reads
//!   `papy:<run>:results` and `papy:<run>:dead`.
//! - Any number of workers (`papy worker --redis URL --run RUN`, or
//!   [`serve`] in a program of your own) read the task stream in one
//!   consumer group, run the batches exactly as a process worker would,
//!   append the results and acknowledge the entries. A worker given a
//!   command (`papy worker --redis URL --run RUN -- python3 w.py`, a
//!   resource's `command`, [`ServeOptions::relay`]) relays each batch to a
//!   local stdio worker of any language through a one-worker process pool.
//! - Delivery is at least once: a dead worker's entries are reclaimed by
//!   another worker after `claim_after` (`XAUTOCLAIM`; live workers send
//!   heartbeats), an entry delivered more than `max_attempts` times goes to
//!   the dead-letter stream and its items become `WorkerDied` errors, and
//!   the host drops the results of a batch it has already delivered.
//!
//! Everything broker-specific sits behind the small [`Queue`] trait (and
//! [`Connect`], which opens connections to one): the host pool
//! ([`BrokerPoolBuilder::build_on`]) and the workers ([`serve_on`]) are
//! written against it. [`RedisQueue`] implements it with the `redis`
//! crate's synchronous API; [`MemoryQueue`] in memory, so the delivery
//! rules are tested without a server (`tests/memory.rs`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use papy_core::{NuMap, WorkerCommand};
//! let pool = papy_broker::BrokerPool::builder("shards", "redis://127.0.0.1:6379")
//!     .local_workers(2, WorkerCommand::new("papy", ["worker"]))
//!     .build()?;
//! let numap = NuMap::builder().pool(Arc::new(pool)).stride(100).build()?;
//! # Ok::<(), papy_core::Error>(())
//! ```

mod admit;
pub mod codec;
mod config;
mod error;
mod floor;
mod heartbeat;
mod keys;
mod local;
mod memory_queue;
mod options;
mod pool;
mod queue;
mod redis_queue;
mod relay;
pub mod seal;
mod session;
mod url;
pub use config::RedisConfig;
mod window;
mod worker;

use std::time::Duration;

pub use error::{BrokerError, Result};
pub use keys::{RunKeys, GROUP};
pub use memory_queue::{MemoryQueue, PendingEntry};
pub use options::{ServeOptions, READ_AHEAD};
pub use pool::{BrokerPool, BrokerPoolBuilder};
pub use queue::{Claim, Connect, Cursor, Done, Entry, Outcome, Queue, RunSettings};
pub use redis_queue::{RedisConnector, RedisQueue};
pub use relay::{relay_env, relay_from_env, COMMAND_DIR_ENV, COMMAND_ENV, INIT_ENV, RECYCLE_ENV};
pub use url::{redact, Url};
pub use worker::{serve, serve_on, worker_main, HOST_PID_ENV, RUN_ENV, UNTIL_DONE_ENV, URL_ENV};

/// Deliveries of one batch before it is dead-lettered, unless the run says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Idle time after which a batch is reclaimed, unless the run says otherwise.
pub const DEFAULT_CLAIM_AFTER: Duration = Duration::from_secs(30);

/// Installs the `redis` pool kind, so pipeline files can say
/// `kind = "redis"` (the `papy` command line calls it at start).
///
/// ```
/// papy_broker::install();
/// ```
pub fn install() {
    papy_config::kinds::register::<config::RedisConfig>();
}

/// The name of the test that [`enable_test_support!`] adds.
pub const TEST_ENTRY: &str = "__papy_broker_worker_entry";

/// For tests: this test binary as a local broker worker (it must use
/// [`enable_test_support!`]), for
/// [`BrokerPoolBuilder::local_workers`].
///
/// # Errors
/// The executable's path cannot be found.
pub fn test_worker_command() -> papy_core::Result<papy_core::WorkerCommand> {
    let exe = std::env::current_exe()?;
    let flags = ["--exact", "--nocapture", "--test-threads=1", "-q"];
    let args = std::iter::once(TEST_ENTRY).chain(flags);
    Ok(papy_core::WorkerCommand::new(exe, args))
}

/// Adds the test that serves as a broker worker when a pool re-executes the
/// test binary (see [`test_worker_command`]); in any other run it does nothing.
#[macro_export]
macro_rules! enable_test_support {
    () => {
        #[test]
        fn __papy_broker_worker_entry() {
            $crate::worker_main();
        }
    };
}
