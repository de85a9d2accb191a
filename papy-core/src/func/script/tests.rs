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
    let alive = Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the script's child {pid} was left running");
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
