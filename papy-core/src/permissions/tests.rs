use super::*;

#[test]
fn nothing_is_allowed_by_none_and_everything_by_all() {
    let none = Permissions::none();
    assert!(none.check_file(Path::new("/tmp/x")).is_err());
    assert!(none.check_programs("papy.script").is_err());
    assert!(none.check_programs("papy.dump_lines").is_ok());
    assert!(none.check_network("a socket item").is_err());
    let all = Permissions::all();
    assert!(all.check_file(Path::new("/etc/passwd")).is_ok());
    assert!(all.check_programs("papy.script").is_ok());
    assert!(all.check_network("a socket item").is_ok());
}

#[test]
fn a_path_cannot_climb_or_link_out_of_an_allowed_directory() {
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("in");
    std::fs::create_dir(&inside).unwrap();
    let p = Permissions::none().allow_files_in(&inside).unwrap();
    assert!(p.check_file(&inside.join("new.txt")).is_ok());
    assert!(p.check_file(&inside).is_ok());
    assert!(p.check_file(&inside.join("../out.txt")).is_err());
    assert!(p.check_file(&root.path().join("out.txt")).is_err());
    // A link inside that points outside leads outside.
    std::os::unix::fs::symlink(root.path(), inside.join("up")).unwrap();
    assert!(p.check_file(&inside.join("up/out.txt")).is_err());
    std::os::unix::fs::symlink("/etc/passwd", inside.join("pw")).unwrap();
    assert!(p.check_file(&inside.join("pw")).is_err());
    // A folder that does not exist cannot be checked.
    let e = p.check_file(&inside.join("no/such/file")).unwrap_err();
    assert!(matches!(e, Denied::Unresolved { .. }), "{e}");
    assert!(e.to_string().contains("--allow-files"), "{e}");
}

#[test]
fn granting_a_missing_directory_is_an_error() {
    assert!(Permissions::none()
        .allow_files_in("/no/such/dir/anywhere")
        .is_err());
}
