use super::*;
use crate::error::{ErrorKind, Item, ItemError};
use crate::job::{Inbox, TaskCtx, WorkerTask};
use crate::protocol::packed::unpack_indices;
use crate::value::Value;
use crate::worker::Worker;
use std::sync::Arc;

fn job(ctx: &Arc<TaskCtx>, first: u64, inboxes: Vec<Inbox>) -> Job {
    Job::new(ctx.clone(), first, inboxes)
}

fn ctx() -> Arc<TaskCtx> {
    let f = WorkerTask::new(Worker::typed("double", |x: i64| x * 2), "node");
    Arc::new(TaskCtx::new(0, Arc::new(f), None, None, false))
}

fn ok(i: i64) -> Inbox {
    Inbox::One(Ok(Value::Int(i)))
}

fn failures(results: &[Vec<Item>]) -> Vec<usize> {
    results
        .iter()
        .map(|j| j.iter().filter(|r| r.is_err()).count())
        .collect()
}

#[test]
fn a_job_packed_when_submitted_sends_the_same_bytes_and_keeps_its_count() {
    let c = ctx();
    let (a, b): (Vec<Inbox>, Vec<Inbox>) = ((0..40).map(ok).collect(), (0..32).map(ok).collect());
    let group = vec![job(&c, 5, a.clone()), job(&c, 45, b.clone())];
    let (plan, wire) = prepare(&group);
    let (want_indices, want_values) = match wire.values {
        WireValues::Packed(v) => (wire.indices, v),
        WireValues::Many(_) => panic!("packed values expected"),
    };
    let mut packed: Vec<Job> = vec![job(&c, 5, a), job(&c, 45, b)];
    packed.iter_mut().for_each(pack);
    assert!(packed
        .iter()
        .all(|j| j.inboxes.is_empty() && j.packed.is_some()));
    assert_eq!(packed.iter().map(Job::len).collect::<Vec<_>>(), [40, 32]);
    let (plan2, wire) = prepare(&packed);
    let WireValues::Packed(values) = wire.values else {
        panic!("packed values expected")
    };
    assert_eq!((wire.indices, values), (want_indices, want_values));
    assert_eq!((plan.sent, plan2.sent), (72, 72));
    // A death charges every item of a packed job, by its own index.
    let back = plan2.charge(&packed, &ItemError::new(ErrorKind::WorkerDied, "gone"));
    let idx: Vec<Option<u64>> = back
        .into_iter()
        .flatten()
        .map(|r| r.unwrap_err().index())
        .collect();
    assert_eq!(idx, (5..77).map(Some).collect::<Vec<_>>());
    // An inbox with an error is not packed: it is answered on the host.
    let mut j = job(
        &c,
        0,
        vec![
            ok(1),
            Inbox::One(Err(ItemError::new(ErrorKind::Function, "x"))),
        ],
    );
    pack(&mut j);
    assert!(j.packed.is_none() && j.inboxes.len() == 2);
}

#[test]
fn an_inbox_of_one_input_goes_packed_however_it_is_held() {
    let c = ctx();
    let one = Inbox::Many(vec![Ok(Value::Int(9))].into());
    let group = vec![job(&c, 0, vec![ok(7), one])];
    let (_, wire) = prepare(&group);
    let WireValues::Packed(v) = &wire.values else {
        panic!("packed values expected")
    };
    let values = crate::protocol::packed::decode_values(v).unwrap();
    assert_eq!(values, [Value::Int(7), Value::Int(9)]);
}

#[test]
fn a_group_with_several_inputs_per_item_goes_as_lists() {
    let c = ctx();
    let two = Inbox::Many(vec![Ok(Value::Int(1)), Ok(Value::Int(2))].into());
    let bad = Inbox::One(Err(ItemError::new(ErrorKind::Function, "upstream")));
    let group = vec![job(&c, 0, vec![ok(7), bad, two])];
    let (plan, wire) = prepare(&group);
    assert_eq!(plan.positions, Some(vec![(0, 0), (0, 2)]));
    assert_eq!(unpack_indices(&wire.indices), [0, 2]);
    let WireValues::Many(v) = &wire.values else {
        panic!("lists expected")
    };
    assert_eq!(
        v,
        &[vec![&Value::Int(7)], vec![&Value::Int(1), &Value::Int(2)]]
    );
}

#[test]
fn a_group_of_plain_values_goes_out_whole_and_is_cut_back_per_job() {
    let c = ctx();
    let group = vec![job(&c, 0, vec![ok(1), ok(2)]), job(&c, 2, vec![ok(3)])];
    let (plan, wire) = prepare(&group);
    assert!(plan.positions.is_none() && plan.answered.is_empty());
    assert_eq!(unpack_indices(&wire.indices), [0, 1, 2]);
    let WireValues::Packed(v) = &wire.values else {
        panic!("packed values expected")
    };
    let values = crate::protocol::packed::decode_values(v).unwrap();
    assert_eq!(values, [Value::Int(1), Value::Int(2), Value::Int(3)]);
    drop(wire);
    let back = plan.assemble(&group, (10..13).map(|i| Ok(Value::Int(i))).collect());
    assert_eq!(
        back,
        vec![
            vec![Ok(Value::Int(10)), Ok(Value::Int(11))],
            vec![Ok(Value::Int(12))]
        ]
    );
}

#[test]
fn error_inboxes_stay_here_and_results_land_in_their_places() {
    let c = ctx();
    let bad = Inbox::One(Err(ItemError::new(ErrorKind::Function, "upstream")));
    let group = vec![job(&c, 0, vec![ok(1), ok(2)]), job(&c, 2, vec![bad, ok(4)])];
    let (plan, wire) = prepare(&group);
    assert_eq!(plan.answered.len(), 1);
    assert_eq!(plan.positions, Some(vec![(0, 0), (0, 1), (1, 1)]));
    assert_eq!(unpack_indices(&wire.indices), [0, 1, 3]);
    let WireValues::Packed(v) = &wire.values else {
        panic!("packed values expected")
    };
    let values = crate::protocol::packed::decode_values(v).unwrap();
    assert_eq!(values, [Value::Int(1), Value::Int(2), Value::Int(4)]);
    drop(wire);
    let back = plan.assemble(&group, (10..13).map(|i| Ok(Value::Int(i))).collect());
    assert_eq!(
        failures(&back)[1],
        1,
        "the error passed on counts as a failure"
    );
    assert_eq!(back[0], vec![Ok(Value::Int(10)), Ok(Value::Int(11))]);
    let passed = back[1][0].as_ref().unwrap_err();
    assert_eq!(passed.message(), "upstream");
    assert_eq!(back[1][1], Ok(Value::Int(12)));

    // A death charges exactly the items sent, each with its own index.
    let (plan, _) = prepare(&group);
    let back = plan.charge(&group, &ItemError::new(ErrorKind::WorkerDied, "gone"));
    assert_eq!(failures(&back), [2, 2]);
    let died: Vec<Option<u64>> = back
        .iter()
        .flatten()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| e.kind() == ErrorKind::WorkerDied)
        .map(ItemError::index)
        .collect();
    assert_eq!(died, [Some(0), Some(1), Some(3)]);
    assert_eq!(back[1][0].as_ref().unwrap_err().message(), "upstream");
}
