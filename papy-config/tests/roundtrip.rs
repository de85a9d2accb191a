//! Random valid pipelines: save -> load -> save gives the same text, and
//! the loaded pipeline computes the same output as the one saved.

use std::time::Duration;

use papy::{Dagger, NuMap, Piper, Plumber, PlumberFile, Source, Value, Worker};
use proptest::prelude::*;

/// One node: which earlier nodes feed it (empty = the input), its
/// function, its options.
#[derive(Debug, Clone)]
struct Node {
    ups: Vec<usize>,
    nested: bool,
    resource: Option<usize>,
    branch: i64,
    track: bool,
    timeout_ms: Option<u64>,
    retries: u32,
}

#[derive(Debug, Clone)]
struct Res {
    workers: usize,
    stride: Option<usize>,
    extra_buffer: Option<usize>,
    ordered: bool,
}

fn res() -> impl Strategy<Value = Res> {
    (
        1usize..4,
        prop::option::of(1usize..8),
        prop::option::of(0usize..8),
        any::<bool>(),
    )
        .prop_map(|(workers, stride, extra_buffer, ordered)| Res {
            workers,
            stride,
            extra_buffer,
            ordered,
        })
}

fn node(i: usize) -> impl Strategy<Value = Node> {
    let ups = if i == 0 {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::btree_set(0..i, 1..=2.min(i))
            .prop_map(|s| s.into_iter().collect())
            .boxed()
    };
    (
        ups,
        any::<bool>(),
        prop::option::of(0usize..2),
        -2i64..3,
        any::<bool>(),
        prop::option::of(1000u64..5000),
        0u32..3,
    )
        .prop_map(
            |(ups, nested, resource, branch, track, timeout_ms, retries)| Node {
                ups,
                nested,
                resource,
                branch,
                track,
                timeout_ms,
                retries,
            },
        )
}

fn pipeline() -> impl Strategy<Value = (Vec<Res>, Vec<Node>)> {
    (
        prop::collection::vec(res(), 2),
        (1usize..5).prop_flat_map(|n| (0..n).map(node).collect::<Vec<_>>()),
    )
}

fn build(resources: &[Res], nodes: &[Node]) -> Dagger {
    // A join pairs items by position, so the validator refuses joins fed
    // in completion order: pipelines with joins keep their resources ordered.
    let joins = nodes.iter().any(|n| n.ups.len() > 1);
    let numaps: Vec<NuMap> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut b = NuMap::builder()
                .name(format!("pool{i}"))
                .workers(r.workers)
                .ordered(r.ordered || joins);
            if let Some(s) = r.stride {
                b = b.stride(s);
            }
            if let Some(e) = r.extra_buffer {
                b = b.buffer(r.stride.unwrap_or(1) + e);
            }
            b.build().expect("a valid NuMap")
        })
        .collect();
    let mut d = Dagger::new();
    for (i, n) in nodes.iter().enumerate() {
        // Joins take every input as a list; a single input passes through
        // (with an argument, to exercise saving arguments).
        let w = if n.ups.len() > 1 {
            Worker::new("papy.npasser").expect("npasser")
        } else if n.nested {
            Worker::with_named("papy.ipasser", [("i", 0)]).expect("ipasser")
        } else {
            Worker::new("papy.ipasser").expect("ipasser")
        };
        let mut p = Piper::new(format!("n{i}"), w)
            .branch(n.branch)
            .repeat(n.nested)
            .track(n.track)
            .retries(n.retries, Duration::from_millis(10));
        if let Some(r) = n.resource {
            p = p.parallel(&numaps[r]);
            if let Some(t) = n.timeout_ms {
                p = p.timeout(Duration::from_millis(t));
            }
        }
        d.add_piper(p).expect("a new piper");
    }
    for (i, n) in nodes.iter().enumerate() {
        for u in &n.ups {
            d.connect(&format!("n{u}"), &format!("n{i}"))
                .expect("an acyclic pipe");
        }
    }
    d
}

fn outputs(mut p: Plumber) -> Vec<(String, Vec<Value>)> {
    let names: Vec<String> = p
        .dagger()
        .outputs()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    let cols: Vec<_> = names
        .iter()
        .map(|n| p.collect(n).expect("an output"))
        .collect();
    p.start([("n0", Source::values(0..12i64))]).expect("start");
    p.run().expect("run");
    assert!(p.wait(Some(Duration::from_secs(60))).expect("wait"));
    names
        .into_iter()
        .zip(cols)
        .map(|(n, c)| {
            // Unordered resources give completion order: compare as sets.
            let mut v: Vec<Value> = c
                .take()
                .into_iter()
                .map(|r| r.expect("no error items"))
                .collect();
            v.sort();
            (n, v)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn save_load_save_is_the_same_text_and_the_same_output((resources, nodes) in pipeline()) {
        let first = Plumber::new(build(&resources, &nodes));
        let text = first.save_string().expect("saved");
        let loaded = Plumber::from_toml(&text).expect("loaded");
        let again = loaded.save_string().expect("saved again");
        prop_assert_eq!(&again, &text);
        let reloaded = Plumber::from_toml(&again).expect("loaded again");
        let kinds = |o: Vec<(String, Vec<Value>)>| -> Vec<(String, Vec<String>)> {
            o.into_iter().map(|(n, v)| (n, v.iter().map(|x| format!("{}:{x:?}", x.kind())).collect())).collect()
        };
        prop_assert_eq!(kinds(outputs(first)), kinds(outputs(reloaded)));
    }
}

#[test]
fn a_mixed_pool_is_refused_by_name_when_saving() {
    use std::sync::Arc;
    let a: Arc<dyn papy::Pool> = Arc::new(papy::ThreadPool::new("a", 1).expect("pool"));
    let b: Arc<dyn papy::Pool> = Arc::new(papy::ThreadPool::new("b", 1).expect("pool"));
    let mixed = papy::pool::MixedPool::new(vec![a, b]).expect("mixed");
    let m = NuMap::builder()
        .name("both")
        .pool(Arc::new(mixed))
        .build()
        .expect("numap");
    let mut d = Dagger::new();
    d.add_piper(Piper::new("p", Worker::new("papy.ipasser").expect("w")).parallel(&m))
        .expect("piper");
    let e = Plumber::new(d)
        .save_string()
        .expect_err("a mixed pool cannot be saved");
    assert!(
        e.to_string()
            .contains("resource `both` runs on a pool of kind `mixed`"),
        "{e}"
    );
}

#[test]
fn a_redis_resource_without_the_kind_installed_is_a_clear_error() {
    let text = "[resources.farm]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\n[[pipers]]\nname = \"a\"\nresource = \"farm\"\nworker = [\"papy.ipasser\"]\n";
    let e = Plumber::from_toml(text)
        .expect_err("no redis kind in this program")
        .to_string();
    assert!(
        e.contains("<text>:2:8: resource `farm`: unknown pool kind `redis`"),
        "{e}"
    );
    assert!(e.contains("papy_broker::install()"), "{e}");
}

#[test]
fn strings_that_look_like_variables_are_saved_as_they_are() {
    let mut d = Dagger::new();
    d.add_piper(Piper::new(
        "j",
        Worker::with_named("papy.njoiner", [("join", "${NOT_A_VARIABLE}")]).expect("njoiner"),
    ))
    .expect("piper");
    let text = Plumber::new(d).save_string().expect("saved");
    assert!(text.contains("$${NOT_A_VARIABLE}"), "{text}");
    let loaded = Plumber::from_toml(&text).expect("loads without expanding");
    assert_eq!(loaded.save_string().expect("saved again"), text);
    let step = &loaded.dagger().piper("j").expect("j").worker().steps()[0];
    assert!(step.args().contains(&Value::from("${NOT_A_VARIABLE}")));
}

#[test]
fn two_numaps_with_one_name_are_refused_when_saving() {
    let a = NuMap::builder().name("same").workers(1).build().expect("a");
    let b = NuMap::builder().name("same").workers(2).build().expect("b");
    let mut d = Dagger::new();
    let w = || Worker::new("papy.ipasser").expect("w");
    d.add_piper(Piper::new("x", w()).parallel(&a)).expect("x");
    d.add_piper(Piper::new("y", w()).parallel(&b)).expect("y");
    d.connect("x", "y").expect("pipe");
    let e = Plumber::new(d).save_string().expect_err("ambiguous");
    assert!(
        e.to_string()
            .contains("two different NuMaps are named `same`"),
        "{e}"
    );
}
