//! A throw-away Redis server for tests: `redis-server` on a Unix socket in
//! a fresh directory (no TCP port, no persistence), stopped on drop and
//! killed by the kernel if the test dies first (`PR_SET_PDEATHSIG`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Taken at the start of every heavy broker test: they run one at a time,
/// so recovery timings (claim_after, heartbeats) hold on a busy machine.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running `redis-server`, killed (by its pid) and cleaned up on drop.
pub(crate) struct RedisServer {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    /// Options given after the defaults (they win), kept across restarts.
    options: Vec<String>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl RedisServer {
    /// Starts one; panics with a clear message if `redis-server` is missing
    /// (CI installs it: see .ci/run).
    pub(crate) fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts one with `options` after the defaults (e.g. `--appendonly
    /// yes`), which a [`restart`](Self::restart) keeps.
    pub(crate) fn start_with(options: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "papy-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let socket = dir.join("redis.sock");
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        let child = spawn(&dir, &socket, &options);
        let server = RedisServer {
            child,
            dir,
            socket,
            options,
        };
        server.wait_ready();
        server
    }

    /// Kills the server (SIGKILL: without persistence everything is lost)
    /// and starts a new one on the same socket, in the same folder (with
    /// `--appendonly yes` it reads its log back).
    pub(crate) fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        self.child = spawn(&self.dir, &self.socket, &self.options);
        self.wait_ready();
    }

    /// Kills the server (SIGKILL) and leaves it down.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket.exists() {
                if let Ok(c) = redis::Client::open(self.url()) {
                    if let Ok(mut con) = c.get_connection() {
                        if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                            return;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Makes sure `redis-server` can be run: `cargo test --workspace` on a
/// fresh Debian or Ubuntu machine installs it (the `redis-server` package,
/// with apt-get, when the tests run as root), as .ci/run does; elsewhere a
/// missing server is a clear failure naming the package.
fn ensure_installed() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let present = |cmd: &str| {
            Command::new(cmd)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        };
        if present("redis-server") {
            return;
        }
        let root = rustix::process::geteuid().is_root();
        if root && present("apt-get") {
            eprintln!(
                "papy tests: redis-server is missing; installing the Debian package redis-server with apt-get (as .ci/run does)"
            );
            let _ = Command::new("sh")
                .args([
                    "-c",
                    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server",
                ])
                .stdout(Stdio::null())
                .status();
        }
    });
}

/// Starts `redis-server` on `socket`, without persistence unless
/// `options` say otherwise.
fn spawn(dir: &Path, socket: &Path, options: &[String]) -> Child {
    ensure_installed();
    let mut c = Command::new("redis-server");
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{set_parent_process_death_signal, Signal};
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls prctl(2), which is async-signal-safe; it allocates
        // nothing and touches no shared state.
        unsafe {
            c.pre_exec(|| {
                // The server dies with the thread that started it (the
                // test), even if the test process is killed.
                Ok(set_parent_process_death_signal(Some(Signal::KILL))?)
            });
        }
    }
    c.args(["--port", "0", "--unixsocket"])
        .arg(socket)
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .args(options)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `redis-server` ({e}): the broker tests need it; they install \
                     it themselves only as root on Debian/Ubuntu (apt-get install redis-server)"
            )
        })
}

impl RedisServer {
    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// A connection for inspecting keys.
    pub(crate) fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a connection to the test server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
