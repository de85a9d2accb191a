/// A child's exit is seen without reaping it: its pid (the id of its
/// process group) stays reserved until `wait`, so the group can still be
/// signalled safely; then `wait` reaps it with its real status.
#[cfg(target_os = "linux")]
#[test]
fn an_exited_child_is_seen_and_left_unreaped_until_waited() {
    let mut child = std::process::Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("sh runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !super::exited_unreaped(&mut child) {
        assert!(std::time::Instant::now() < deadline, "the child exits");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
        .expect("a zombie still has its /proc entry");
    assert!(stat.contains(") Z "), "a zombie, not reaped: {stat}");
    let status = child.wait().expect("std reaps it");
    assert_eq!(super::describe_status(status), "exit status 3");
}
