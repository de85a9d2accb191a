use super::*;
use crate::worker::Worker;

#[test]
fn fail_all_names_each_item_by_its_index_in_the_node() {
    use crate::job::{Take, TaskCtx};
    // Task 1 of 2 spawned tasks taking items in turn: its local items
    // 0, 1, 2 are the node's items 1, 3, 5.
    let f = WorkerTask::new(Worker::typed("id", |x: i64| x), "node").spawned(1, 2, 1);
    let ctx = Arc::new(TaskCtx::new(0, Arc::new(f), None, None, false));
    let job = Job::new(ctx.clone(), 0, (0..3).map(|i| i.into_inbox()).collect());
    job.fail_all(ItemError::new(ErrorKind::WorkerDied, "gone"));
    let Take::Batch(_, items) = ctx.queue.take(Some(std::time::Duration::from_secs(5))) else {
        panic!("the items are delivered")
    };
    let indices: Vec<Option<u64>> = items
        .iter()
        .map(|r| r.as_ref().err().and_then(ItemError::index))
        .collect();
    assert_eq!(indices, [Some(1), Some(3), Some(5)]);
}

#[test]
fn an_inbox_is_no_larger_than_an_item() {
    // Batches of inboxes cross threads for every item of a run: keeping
    // them one item wide keeps that traffic down.
    assert_eq!(std::mem::size_of::<Inbox>(), std::mem::size_of::<Item>());
    let many = vec![
        Ok(crate::value::Value::Int(1)),
        Ok(crate::value::Value::Int(2)),
    ]
    .into_inbox();
    assert_eq!(many.as_slice().len(), 2);
}
