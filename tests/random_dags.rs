//! Property test: random DAG shapes on random resources give, for every
//! output node, exactly one item (value or error) per input item, in input
//! order, identical to the same DAG evaluated linearly.

mod common;

use common::*;
use papy::{worker, Dagger, NuMap, Piper, Value, Worker};
use proptest::prelude::*;

/// Sums every input of the inbox and adds `k`; fails when the sum is a multiple of 13.
#[worker]
fn t_sum_inbox(inbox: &[Value], k: i64) -> Result<i64, String> {
    let s: i64 = inbox.iter().map(|v| v.as_int().unwrap_or(0)).sum::<i64>() + k;
    if s % 13 == 0 {
        Err(format!("{s} is unlucky"))
    } else {
        Ok(s)
    }
}

#[derive(Debug, Clone)]
struct Shape {
    /// For node i (i >= 1): its upstream nodes (indices < i).
    ups: Vec<Vec<usize>>,
    /// For each node: None = linear, Some(j) = NuMap j.
    pools: Vec<Option<usize>>,
    spawn: Vec<usize>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..7).prop_flat_map(|n| {
        let ups = (1..n)
            .map(|i| {
                proptest::collection::btree_set(0..i, 1..=2.min(i))
                    .prop_map(|s| s.into_iter().collect())
            })
            .collect::<Vec<_>>();
        (
            ups,
            proptest::collection::vec(proptest::option::of(0usize..2), n),
            proptest::collection::vec(1usize..3, n),
        )
            .prop_map(|(mut ups, pools, spawn)| {
                ups.insert(0, Vec::new());
                Shape { ups, pools, spawn }
            })
    })
}

fn build(s: &Shape, numaps: &[NuMap]) -> Dagger {
    let mut d = Dagger::new();
    for (i, pool) in s.pools.iter().enumerate() {
        let w = Worker::with_args("t_sum_inbox", [i as i64]).expect("registered");
        let mut p = Piper::new(format!("n{i}"), w);
        if let Some(j) = pool {
            p = p.parallel(&numaps[*j]).spawn(s.spawn[i]);
        }
        d.add_piper(p).expect("piper");
    }
    for (i, ups) in s.ups.iter().enumerate() {
        for u in ups {
            d.connect(&format!("n{u}"), &format!("n{i}")).expect("pipe");
        }
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn every_input_yields_one_output_per_output_node(
        s in shape(),
        workers in (1usize..4, 1usize..4),
        strides in (1usize..9, 1usize..9),
        n_items in 0i64..120,
    ) {
        let linear: Vec<NuMap> = Vec::new();
        let mut lin_shape = s.clone();
        lin_shape.pools = vec![None; s.pools.len()];
        let reference = run_all(build(&lin_shape, &linear), ints(0..n_items));
        let numaps = vec![
            NuMap::builder().workers(workers.0).stride(strides.0).build().expect("numap"),
            NuMap::builder().workers(workers.1).stride(strides.1).build().expect("numap"),
        ];
        let got = run_all(build(&s, &numaps), ints(0..n_items));
        for (name, items) in &got {
            prop_assert_eq!(items.len() as i64, n_items, "output {}", name);
        }
        prop_assert_eq!(got, reference);
    }
}
