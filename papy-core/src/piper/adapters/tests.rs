use super::*;

fn items(v: impl IntoIterator<Item = i64>) -> Stream {
    Box::new(
        v.into_iter()
            .map(|x| Ok(Value::Int(x)))
            .collect::<Vec<_>>()
            .into_iter(),
    )
}

fn vals(s: impl Iterator<Item = Item>) -> Vec<i64> {
    s.map(|x| x.unwrap().as_int().unwrap()).collect()
}

#[test]
fn distribute_then_identity_merge_restores_order() {
    for (k, chunk, n) in [(2, 1, 7), (3, 2, 10), (2, 5, 3), (4, 3, 24)] {
        let src: InboxStream = Box::new((0..n).map(|x| Inbox::One(Ok(Value::Int(x)))));
        let parts = distribute(src, k, chunk);
        let lists: Vec<Vec<i64>> = parts
            .into_iter()
            .map(|p| {
                p.map(|i| i.as_slice()[0].clone().unwrap().as_int().unwrap())
                    .collect()
            })
            .collect();
        // Re-merge by hand, chunk by chunk.
        let mut out = Vec::new();
        let mut pos = vec![0; k];
        'outer: loop {
            for j in 0..k {
                for _ in 0..chunk {
                    match lists[j].get(pos[j]) {
                        Some(x) => {
                            out.push(*x);
                            pos[j] += 1;
                        }
                        None => break 'outer,
                    }
                }
            }
        }
        assert_eq!(out, (0..n).collect::<Vec<_>>(), "k{k} c{chunk} n{n}");
    }
}

#[test]
fn tee_readers_are_independent() {
    let mut readers = tee(items(0..5), 2);
    let b = readers.pop().unwrap();
    let a = readers.pop().unwrap();
    assert_eq!(vals(a), [0, 1, 2, 3, 4]);
    assert_eq!(vals(b), [0, 1, 2, 3, 4]);
}

#[test]
fn zip_reports_unmatched_items() {
    let c = Arc::new(NodeCounters::new(false));
    let z = Zip::new(vec![items(0..3), items(0..5)], "j".into(), c.clone());
    let out: Vec<Inbox> = z.collect();
    assert_eq!(out.len(), 5);
    for inbox in &out[3..] {
        let e = inbox.as_slice()[0].clone().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unmatched);
    }
    assert_eq!(c.snapshot().items_in, 5);
}

#[test]
fn consume_batches_and_shorter_last() {
    let src: InboxStream = Box::new((0..5).map(|x| Inbox::One(Ok(Value::Int(x)))));
    let out: Vec<Inbox> = Consume { src, n: 2 }.collect();
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].as_slice()[0], Ok(Value::list([4])));
}

#[test]
fn produce_splits_or_reports() {
    let src: Stream = Box::new(
        vec![
            Ok(Value::list([1, 2])),
            Ok(Value::Int(3)),
            Ok(Value::list([4, 5])),
        ]
        .into_iter(),
    );
    let out: Vec<Item> = Produce {
        src,
        m: 2,
        repeat: false,
        pending: VecDeque::new(),
        node: "p".into(),
        index: 0,
    }
    .collect();
    assert_eq!(out.len(), 6);
    assert_eq!(out[0], Ok(Value::Int(1)));
    assert_eq!(out[2].as_ref().unwrap_err().kind(), ErrorKind::Produce);
    assert_eq!(out[3].as_ref().unwrap_err().index(), Some(1));
    assert_eq!(out[5], Ok(Value::Int(5)));
}

#[test]
fn produce_with_repeat_emits_each_whole_result_m_times() {
    let src: Stream = Box::new(
        vec![
            Ok(Value::list([1, 2])),
            Err(ItemError::new(ErrorKind::Function, "boom")),
            Ok(Value::Int(3)),
        ]
        .into_iter(),
    );
    let out: Vec<Item> = Produce {
        src,
        m: 3,
        repeat: true,
        pending: VecDeque::new(),
        node: "p".into(),
        index: 0,
    }
    .collect();
    assert_eq!(out.len(), 9);
    assert!(out[..3].iter().all(|x| x == &Ok(Value::list([1, 2]))));
    assert!(out[3..6].iter().all(|x| x.is_err()));
    assert!(out[6..].iter().all(|x| x == &Ok(Value::Int(3))));
}
