use std::io::BufRead;

use super::*;
use crate::hooks::{run, When};

#[test]
fn the_engines_hooks_complete_what_a_batch_wrote_to_a_compressed_stream() {
    // The engine never names this module: it runs the hooks at the end
    // of a batch, of a run and of a session, and this module's
    // registered hooks complete the streams.
    let dir = tempfile::tempdir().unwrap();
    for (n, when) in [When::BatchDone, When::RunEnd, When::SessionEnd]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("out{n}.txt.gz"));
        append(&path, b"one\n").unwrap();
        run(when);
        let lines: Vec<String> = super::super::codec::open(&path)
            .unwrap()
            .lines()
            .map(|l| l.unwrap())
            .collect();
        assert_eq!(lines, ["one"], "{when:?}");
    }
}
