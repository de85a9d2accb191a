use std::path::Path;

use super::*;

fn read_all(path: &Path, size: usize) -> Vec<Item> {
    blocks(path, size).unwrap().collect()
}

fn texts(items: Vec<Item>) -> Vec<String> {
    items
        .into_iter()
        .map(|i| match i.unwrap() {
            Value::Str(s) => s.to_string(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

fn write(dir: &tempfile::TempDir, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join("in.txt");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn blocks_are_whole_lines_that_concatenate_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..500)
        .map(|i| format!("line {i} {}\n", "x".repeat(i % 37)))
        .collect::<String>()
        + "no newline at the end";
    let path = write(&dir, text.as_bytes());
    for size in [1, 7, 64, 1000, 1 << 20] {
        let got = texts(read_all(&path, size));
        assert_eq!(got.concat(), text, "size {size}");
        let (last, whole) = got.split_last().unwrap();
        for b in whole {
            assert!(b.ends_with('\n'), "size {size}: {b:?} is cut inside a line");
            // Within the size, or one line alone; never a line fewer than fits.
            let lines = b.matches('\n').count();
            assert!(
                b.len() <= size || lines == 1,
                "size {size}: {b:?} is too long"
            );
            assert!(
                b.len() > size / 2 || lines == 1 || size < 100,
                "size {size}: {b:?}"
            );
        }
        assert!(last.ends_with("no newline at the end"), "size {size}");
    }
}

#[test]
fn a_line_longer_than_the_block_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let long = "y".repeat(300);
    let path = write(&dir, format!("a\n{long}\nb\n").as_bytes());
    let got = texts(read_all(&path, 100));
    assert_eq!(got, ["a\n".to_string(), format!("{long}\n"), "b\n".into()]);
}

#[test]
fn an_empty_file_has_no_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, b"");
    assert!(read_all(&path, 10).is_empty());
}

#[test]
fn a_line_that_is_not_utf8_is_an_error_between_the_text_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, b"good\nba\xffd\nafter\n\xfe\nend");
    for size in [3, 1 << 20] {
        let items = read_all(&path, size);
        let (text, errors): (Vec<_>, Vec<_>) = items.into_iter().partition(Result::is_ok);
        assert_eq!(texts(text).concat(), "good\nafter\nend", "size {size}");
        let errors: Vec<String> = errors
            .into_iter()
            .map(|e| e.unwrap_err().to_string())
            .collect();
        assert_eq!(errors.len(), 2, "size {size}: {errors:?}");
        assert!(
            errors[0].contains("in.txt")
                && errors[0].contains("byte 7")
                && errors[0].contains("bytes 5..10"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("byte 16") && errors[1].contains("bytes 16..18"),
            "{errors:?}"
        );
    }
    // In file order: the text before a bad line comes before its error.
    let items = read_all(&path, 1 << 20);
    assert_eq!(items[0].as_ref().unwrap(), &Value::from("good\n"));
    assert!(items[1].is_err());
    assert_eq!(items[2].as_ref().unwrap(), &Value::from("after\n"));
    assert!(items[3].is_err());
    assert_eq!(items[4].as_ref().unwrap(), &Value::from("end"));
    assert_eq!(items.len(), 5);
}

#[test]
fn a_missing_file_names_it() {
    let err = blocks("/no/such/file.txt", 10).unwrap_err().to_string();
    assert!(err.contains("/no/such/file.txt"), "{err}");
}

#[cfg(feature = "compress")]
#[test]
fn a_compressed_file_is_read_in_blocks_of_its_text() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt.gz");
    let text: String = (0..1000).map(|i| format!("{i}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap();
    let got = texts(read_all(&path, 100));
    assert!(got.len() > 10);
    assert_eq!(got.concat(), text);
}
