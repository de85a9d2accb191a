use super::*;
use crate::value::Value;

/// A pull from the integers `next..end` (item `i` of the input is
/// `100 + i`), checking the index it is given.
fn from(next: &mut i64, end: i64) -> impl FnMut(&mut Vec<Inbox>, usize, u64) -> bool + '_ {
    move |job, k, index| {
        let expected = 100 + i64::try_from(index).unwrap_or(-1);
        assert_eq!(expected + job.len() as i64, *next, "the job's first index");
        for _ in 0..k {
            if *next >= end {
                break;
            }
            job.push(Inbox::One(Ok(Value::Int(*next))));
            *next += 1;
        }
        *next >= end
    }
}

fn ints(jobs: &[Vec<Inbox>]) -> Vec<Vec<i64>> {
    jobs.iter()
        .map(|j| {
            j.iter()
                .map(|i| match i {
                    Inbox::One(Ok(v)) => v.as_int().unwrap_or(-1),
                    _ => -1,
                })
                .collect()
        })
        .collect()
}

#[test]
fn whole_jobs_move_and_a_cut_job_keeps_its_order() {
    let mut p = Pending::default();
    let mut next = 100;
    assert!(!p.pull(10, 4, 0, from(&mut next, 1000)));
    assert_eq!(p.len(), 10);
    // A grant of 5: one whole job, and the next one cut.
    assert_eq!(ints(&p.take(5, 4)), [vec![100, 101, 102, 103], vec![104]]);
    // The rest: the cut job's tail, then the last (short) job.
    assert_eq!(ints(&p.take(100, 4)), [vec![105, 106, 107], vec![108, 109]]);
    assert!(p.is_empty());
}

#[test]
fn a_short_last_job_is_topped_up_and_the_end_stops_the_pull() {
    let mut p = Pending::default();
    let mut next = 100;
    assert!(!p.pull(3, 4, 0, from(&mut next, 106)));
    // Items 100..103 wait; the next pull tops their job up, then the
    // input ends after item 105.
    assert!(p.pull(10, 4, 0, from(&mut next, 106)));
    assert_eq!(p.len(), 6);
    assert_eq!(
        ints(&p.take(100, 4)),
        [vec![100, 101, 102, 103], vec![104, 105]]
    );
}

#[test]
fn jobs_smaller_than_a_grown_job_size_are_put_together() {
    let mut p = Pending::default();
    let mut next = 100;
    p.pull(6, 2, 0, from(&mut next, 1000));
    assert_eq!(
        ints(&p.take(6, 4)),
        [vec![100, 101, 102, 103], vec![104, 105]]
    );
    p.clear();
    assert!(p.is_empty());
}
