use super::*;

fn cfg(dir: &Path, script: &Path, executable: &str) -> ScriptConfig {
    ScriptConfig {
        id: "up".into(),
        executable: executable.into(),
        script: script.to_path_buf(),
        dir: dir.join("out"),
        inputs: vec!["data".into()],
        out: vec![OutPort::WithExt("result".into(), "txt".into())],
        params: Value::map([("greeting", "hi")]),
        timeout: Some(30.0),
    }
}

fn input(dir: &Path) -> Value {
    let path = dir.join("sample.v1.txt");
    std::fs::write(&path, "hello\n").unwrap();
    Value::map([("data", path.display().to_string())])
}

#[test]
fn bash_and_python_templates_run() {
    let dir = tempfile::tempdir().unwrap();
    for (lang, exe) in [("bash", "bash"), ("python", "python3")] {
        let script = dir.path().join(format!("t.{lang}"));
        std::fs::write(&script, template(lang).unwrap()).unwrap();
        let out = run(&cfg(dir.path(), &script, exe), &[input(dir.path())]).unwrap();
        let result = out.get("result").unwrap().as_str().unwrap().to_string();
        assert!(result.ends_with("out/sample_up-result.txt"), "{result}");
        assert_eq!(
            std::fs::read_to_string(&result).unwrap(),
            "HELLO\n",
            "{lang}"
        );
        std::fs::remove_file(result).unwrap();
    }
    assert!(template("cobol").is_none());
}

#[test]
fn a_non_zero_exit_carries_the_real_code_stdout_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fail.sh");
    std::fs::write(
        &script,
        "echo \"to stdout $PAPY_PARAM_GREETING\"\necho 'to stderr' >&2\nexit 3\n",
    )
    .unwrap();
    let w = crate::Worker::with_named(
        "papy.script",
        [(
            "cfg",
            crate::to_value(&cfg(dir.path(), &script, "bash")).unwrap(),
        )],
    )
    .unwrap();
    let e = w.call(&[input(dir.path())]).unwrap_err().to_string();
    assert!(e.contains("exited with code 3"), "{e}");
    assert!(e.contains("to stdout hi"), "{e}");
    assert!(e.contains("to stderr"), "{e}");
}

#[test]
fn a_script_that_outlives_its_timeout_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("slow.sh");
    // The child of the script must die too (process group).
    std::fs::write(&script, "sleep 30 &\necho $! > child.pid\nwait\n").unwrap();
    let mut c = cfg(dir.path(), &script, "bash");
    c.timeout = Some(0.5);
    let started = Instant::now();
    let e = run(&c, &[input(dir.path())]).unwrap_err();
    assert!(e.contains("timed out after"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(c.dir.join("child.pid")).unwrap();
    let alive = || {
        Path::new(&format!("/proc/{}", pid.trim())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .unwrap_or_default()
                .contains(") Z ")
    };
    // SIGKILL is delivered when the killed process next runs: on a busy or
    // single CPU it may still show as running for a moment. It was sent
    // (or the child would sleep 30 s): wait for it to land, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(), "the script's child {pid} was left running");
}

#[test]
fn ports_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), Path::new("x"), "bash");
    let e = input_paths(&c, &[Value::map([("other", "p")])]).unwrap_err();
    assert!(e.contains("input port `data` is not connected"), "{e}");
    // Same in and out ports: one output per input, named after it.
    c.inputs = vec!["a".into(), "b".into()];
    c.out = vec![
        OutPort::Bare("a".into()),
        OutPort::WithExt("b".into(), "csv".into()),
    ];
    let inbox = [
        Value::map([("a", "/x/one.fa")]),
        Value::map([("b", "/y/two.tar.gz")]),
    ];
    let got = output_paths(&c, &input_paths(&c, &inbox).unwrap());
    assert!(got["a"].ends_with("out/one_up"), "{got:?}");
    assert!(got["b"].ends_with("out/two_up.csv"), "{got:?}");
    // A missing executable is an error naming it.
    let e = run(
        &cfg(dir.path(), Path::new("x"), "no-such-program-papy"),
        &[input(dir.path())],
    )
    .unwrap_err();
    assert!(e.contains("cannot run `no-such-program-papy"), "{e}");
}

#[test]
fn a_bad_timeout_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("touch.sh");
    std::fs::write(&script, "touch ran\n").unwrap();
    let mut c = cfg(dir.path(), &script, "bash");
    c.timeout = Some(-1.0);
    let e = run(&c, &[input(dir.path())]).unwrap_err();
    assert!(e.contains("timeout -1"), "{e}");
    assert!(!c.dir.join("ran").exists(), "the script did not start");
}

#[test]
fn processes_left_behind_are_ended_and_do_not_hold_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bg.sh");
    // Exits at once, leaving a child that holds stdout for a minute.
    std::fs::write(
        &script,
        "sleep 60 &\necho $! > bg.pid\ncp \"$PAPY_IN_DATA\" \"$PAPY_OUT_RESULT\"\n",
    )
    .unwrap();
    let c = cfg(dir.path(), &script, "bash");
    let started = Instant::now();
    run(&c, &[input(dir.path())]).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_ends_soon(&c.dir.join("bg.pid"), "left running");
}

#[test]
fn a_missing_output_fails_the_item_and_names_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("lazy.sh");
    std::fs::write(&script, "echo did nothing\n").unwrap();
    let e = run(&cfg(dir.path(), &script, "bash"), &[input(dir.path())]).unwrap_err();
    assert!(e.contains("did not write output port(s) result"), "{e}");
    assert!(e.contains("did nothing"), "{e}");
}

#[test]
fn relative_paths_are_taken_from_the_current_directory() {
    // A temporary folder named relative to the current directory (up to
    // the root, then down): nothing is written in the checkout, which may
    // be read-only.
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let up: std::path::PathBuf = cwd.components().skip(1).map(|_| "..").collect();
    let rel = up.join(dir.path().strip_prefix("/").unwrap());
    assert!(rel.is_relative(), "{}", rel.display());
    let script = rel.join("t.sh");
    std::fs::write(&script, template("bash").unwrap()).unwrap();
    std::fs::write(rel.join("in.txt"), "abc\n").unwrap();
    let mut c = cfg(&rel, &script, "bash");
    c.dir = rel.join("out");
    let inbox = [Value::map([(
        "data",
        rel.join("in.txt").display().to_string(),
    )])];
    let out = run(&c, &inbox).unwrap();
    let result = out.get("result").unwrap().as_str().unwrap().to_string();
    assert!(Path::new(&result).is_absolute(), "{result}");
    assert_eq!(std::fs::read_to_string(result).unwrap(), "ABC\n");
}

#[cfg(target_os = "linux")]
#[test]
fn a_detached_child_holding_the_output_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("detach.sh");
    // A child in a session of its own (out of the script's process group)
    // keeps stdout open for 30 s; the script itself sleeps past its timeout.
    std::fs::write(
        &script,
        "setsid sleep 30 &\necho $! > detached.pid\nsleep 30\n",
    )
    .unwrap();
    let c = ScriptConfig {
        timeout: Some(1.0),
        ..cfg(dir.path(), &script, "bash")
    };
    let started = Instant::now();
    let e = run(&c, &[input(dir.path())]).unwrap_err();
    let took = started.elapsed();
    assert!(e.contains("timed out after"), "{e}");
    assert!(took < Duration::from_secs(10), "the item waited {took:?}");
    assert_ends_soon(
        &c.dir.join("detached.pid"),
        "the detached child is still running",
    );
}

/// The process whose id the script wrote to `pid_file` is gone (or a
/// zombie) within 10 s: SIGKILL is delivered asynchronously, so it may
/// still be seen running for a moment.
fn assert_ends_soon(pid_file: &Path, what: &str) {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    let gone = |stat: &str| stat.is_empty() || stat.contains(") Z ");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stat;
    loop {
        stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        if gone(&stat) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(&stat), "{what}: {stat}");
}

#[test]
fn a_detached_grandchild_that_closes_its_output_is_ended_at_the_timeout_too() {
    // It leaves the script's group and holds none of its pipes: before,
    // nothing found it, and it outlived the timeout.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("daemon.sh");
    std::fs::write(
        &script,
        "setsid sh -c 'echo $$ > daemon.pid; exec </dev/null >/dev/null 2>&1; exec sleep 30' &\n\
         while [ ! -s daemon.pid ]; do sleep 0.01; done\nsleep 30\n",
    )
    .unwrap();
    let c = ScriptConfig {
        timeout: Some(1.0),
        ..cfg(dir.path(), &script, "bash")
    };
    let e = run(&c, &[input(dir.path())]).unwrap_err();
    assert!(e.contains("timed out after"), "{e}");
    assert_ends_soon(
        &c.dir.join("daemon.pid"),
        "the detached grandchild is still running",
    );
}
