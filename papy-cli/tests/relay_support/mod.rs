//! What the broker tests share: running `papy` with a hang guard, python3
//! with the SDK, scratch folders, pipelines of one piper on a resource (the
//! Python example on another resource, or one written for a test), and
//! Python workers written for a test.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when the test ends, even by a panic.
pub(crate) struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to completion; a run that takes longer than `limit` is
/// killed and fails the test (a hang guard, not a timing).
pub(crate) fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = KillOnDrop(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.0.stdout.take().map(|o| Box::new(o) as _));
    let err = drain(child.0.stderr.take().map(|e| Box::new(e) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "`{cmd:?}` did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// python3 with the SDK's one dependency (msgpack), as tests/python.rs.
pub(crate) fn python_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let has = || {
            Command::new("python3")
                .args(["-c", "import msgpack"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has() {
            let _ = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet"])
                .arg(root().join("python"))
                .status();
        }
        assert!(
            has(),
            "python3 with msgpack is needed: `python3 -m pip install ./python`"
        );
    });
}

pub(crate) fn papy() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_papy"));
    c.current_dir(root())
        .env("PAPY_PLUGIN_PATH", crate::plugins::plugin_dir());
    c
}

/// A fresh folder for one test's files.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("papy-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python example pipeline with its `py` resource replaced by
/// `resource` (TOML lines), its paths made absolute, written in `dir`.
pub(crate) fn python_example_on(dir: &Path, resource: &str) -> PathBuf {
    python_ready();
    let example =
        std::fs::read_to_string(root().join("examples/pipelines/python_node.toml")).unwrap();
    let remote = "kind = \"remote\"\nremote = [{ command = \"exec python3 ../python/shout_worker.py\", workers = 2 }]";
    assert!(
        example.contains(remote),
        "the example's resource is as expected"
    );
    let pipelines = root().join("examples/pipelines");
    let text = example
        .replace(remote, resource)
        .replace("../../target", &root().join("target").display().to_string())
        .replace(
            "data/phrases.txt",
            &pipelines.join("data/phrases.txt").display().to_string(),
        );
    let file = dir.join("python_node.toml");
    std::fs::write(&file, text).unwrap();
    file
}

pub(crate) fn shout_worker() -> String {
    python_ready();
    root()
        .join("examples/python/shout_worker.py")
        .display()
        .to_string()
}

/// Writes the Python worker `source` (its `SDK` placeholder replaced by the
/// SDK's folder) as `dir/name`; returns its path.
pub(crate) fn python_worker(dir: &Path, name: &str, source: &str) -> PathBuf {
    python_ready();
    let sdk = root().join("python").display().to_string();
    let script = dir.join(name);
    std::fs::write(&script, source.replace("SDK", &format!("{sdk:?}"))).unwrap();
    script
}

/// A `redis` resource's lines: the Redis at `url`, then `more` lines.
pub(crate) fn redis_on(url: &str, more: &str) -> String {
    format!("kind = \"redis\"\nurl = \"{url}\"\n{more}")
}

/// An input's lines: the integers `0..n`.
pub(crate) fn range(n: i64) -> String {
    format!("kind = \"range\"\nstart = 0\nend = {n}")
}

/// An input's lines: the lines of `path`.
pub(crate) fn lines_of(path: &Path) -> String {
    format!("kind = \"lines\"\npath = {:?}", path.display().to_string())
}

/// Writes `dir/NAME.toml`: one piper `name` on resource `py` (its lines
/// `resource`), fed `input` (its lines), calling `worker` (a TOML value),
/// its output on stdout.
pub(crate) fn one_piper(
    dir: &Path,
    name: &str,
    resource: &str,
    input: &str,
    worker: &str,
) -> PathBuf {
    let text = format!(
        "[resources.py]\n{resource}\n\n[inputs.input]\n{input}\n\n[[pipers]]\nname = \"{name}\"\n\
         resource = \"py\"\ninputs = [\"input\"]\nworker = {worker}\n\n\
         [outputs.out]\npiper = \"{name}\"\npath = \"-\"\n"
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// The stdout of `cmd` (a `papy` command), which must succeed within 120 s.
pub(crate) fn succeeds(cmd: &mut Command) -> String {
    let out = output_within(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
