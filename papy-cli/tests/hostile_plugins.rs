//! A plugin file that is broken or hostile (huge tables and names, null or
//! misaligned pointers, a panic, an abort while it is opened) makes `papy
//! list` and `papy check` exit with an error naming the file and the
//! cause, never crash them (issue 15). Fixture: `tests/fixtures/hostile`,
//! whose behaviour `PAPY_HOSTILE` chooses.

#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

fn hostile() -> PathBuf {
    support::plugin_file("papy_fixture_hostile")
}

fn papy(mode: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_papy"))
        .args(args)
        .env("PAPY_HOSTILE", mode)
        .output()
        .expect("run papy")
}

fn list(mode: &str) -> Output {
    let file = hostile();
    papy(
        mode,
        &["list".as_ref(), "--plugin".as_ref(), file.as_os_str()],
    )
}

/// Exited by itself (not killed by a signal) with `code`, and said `wanted`.
fn assert_refused(out: &Output, code: i32, wanted: &[&str], case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{case}: papy must exit by itself with {code}, got {:?}; stderr: {stderr}",
        out.status
    );
    for w in wanted {
        assert!(stderr.contains(w), "{case}: `{w}` not in: {stderr}");
    }
    assert!(
        stderr.contains("libpapy_fixture_hostile"),
        "{case}: the file is not named: {stderr}"
    );
}

#[test]
fn a_valid_manifest_from_the_same_file_is_listed() {
    let out = list("");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hostile.echo"));
}

#[test]
fn hostile_manifests_are_refused_by_name_before_anything_is_read() {
    for (mode, wanted) in [
        (
            "huge_table",
            "the worker table has 288230376151711743 entries (at most 65536)",
        ),
        (
            "huge_name",
            "the plugin name is 1099511627776 bytes long (at most 1024)",
        ),
        ("huge_doc", "a doc comment is 1073741824 bytes long"),
        (
            "null_table",
            "the worker table is a null pointer with 3 entries",
        ),
        ("misaligned", "the worker table is not aligned"),
        ("null_call", "worker 0 (`echo`) has a null call pointer"),
        ("null_free", "the free function is a null pointer"),
    ] {
        assert_refused(&list(mode), 2, &["invalid manifest", wanted], mode);
    }
}

#[test]
fn a_plugin_that_crashes_while_opening_fails_list_and_check_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[plugins]\nload = [{:?}]\n\n[[pipers]]\nname = \"a\"\nworker = [\"papy.ipasser\"]\n",
            hostile().display().to_string()
        ),
    )
    .unwrap();
    let crashed = "crashed while being opened";
    for (mode, said, wanted) in [
        (
            "panic",
            crashed,
            "hostile plugin: initialisation failed on purpose",
        ),
        ("abort", crashed, "SIGABRT"),
        (
            "init_abort",
            crashed,
            "hostile plugin: aborting while the library is opened",
        ),
        // An initialiser that ends the process as if all were well.
        (
            "init_exit",
            "ended the process while being opened",
            "exit status 0",
        ),
    ] {
        let case = format!("list, {mode}");
        assert_refused(&list(mode), 2, &[said, wanted], &case);
        let out = papy(mode, &["check".as_ref(), pipeline.as_os_str()]);
        let case = format!("check, {mode}");
        assert_refused(&out, 1, &[said, wanted], &case);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("p.toml:2:"),
            "{case}: the problem is not at the file's [plugins] entry: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A pipeline whose thread resource calls `math.crash`, which aborts the
/// process on item 3.
fn crashing_pipeline(dir: &std::path::Path, isolate: bool) -> PathBuf {
    let file = dir.join(format!("crash-{isolate}.toml"));
    std::fs::write(
        &file,
        format!(
            "[plugins]\npaths = [{:?}]\nload = [\"math\"]\n{}\n\
             [resources.threads]\nkind = \"thread\"\nworkers = 2\n\n\
             [inputs.n]\nkind = \"range\"\nstart = 0\nend = 10\n\n\
             [[pipers]]\nname = \"c\"\nresource = \"threads\"\ninputs = [\"n\"]\n\
             worker = [{{ function = \"math.crash\", args = [3] }}]\n\n\
             [outputs.o]\npiper = \"c\"\npath = \"-\"\n",
            support::plugin_dir().display().to_string(),
            if isolate { "isolate = true" } else { "" }
        ),
    )
    .unwrap();
    file
}

#[test]
fn isolated_plugin_functions_crash_their_worker_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // On threads, the abort takes the whole run down.
    let file = crashing_pipeline(dir.path(), false);
    let out = papy("", &["run".as_ref(), "-q".as_ref(), file.as_os_str()]);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
    }
    // Isolated, the plugin runs in worker processes: one item is lost with
    // its worker, the others come through, and papy exits by itself.
    let file = crashing_pipeline(dir.path(), true);
    let out = papy("", &["run".as_ref(), "-q".as_ref(), file.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        got,
        ["0", "1", "2", "4", "5", "6", "7", "8", "9"],
        "{stderr}"
    );
    assert!(stderr.contains("worker died"), "{stderr}");
    // The same from the command line, for a file that does not ask for it.
    let file = crashing_pipeline(dir.path(), false);
    let out = papy(
        "",
        &[
            "run".as_ref(),
            "-q".as_ref(),
            "--isolate-plugins".as_ref(),
            file.as_os_str(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 9);
}
