//! `papy run` starts each worker command before the first item (to refuse
//! one that cannot start in one line); the workers it started that way are
//! the pool's first workers, not started a second time.

use std::process::Command;

/// A remote command of 2 workers is started twice in all, not once for the
/// check and twice more for the pool.
#[test]
fn the_workers_started_by_the_check_serve_the_run() {
    let papy = env!("CARGO_BIN_EXE_papy");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "[resources.far]\nkind = \"remote\"\nremote = [{{ command = \"echo started >> starts.log; exec '{papy}' worker --stdio\", workers = 2 }}]\n\n\
             [inputs.n]\nkind = \"range\"\nstart = 0\nend = 20\n\n\
             [[pipers]]\nname = \"a\"\ninputs = [\"n\"]\nresource = \"far\"\nworker = [\"papy.ipasser\"]\n\n\
             [outputs.o]\npiper = \"a\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(papy)
        .args(["run", "-q", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        20,
        "{err}"
    );
    let starts = std::fs::read_to_string(dir.path().join("starts.log")).unwrap();
    assert_eq!(starts.lines().count(), 2, "{err}");
}
