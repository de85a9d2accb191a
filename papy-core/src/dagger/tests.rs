use super::*;
use crate::worker::Worker;

fn dag(names: &[(&str, i64)]) -> Dagger {
    let mut d = Dagger::new();
    for (n, b) in names {
        d.add_piper(Piper::new(*n, Worker::new("papy.ipasser").unwrap()).branch(*b))
            .unwrap();
    }
    d
}

fn names(v: Vec<&Piper>) -> Vec<String> {
    v.into_iter().map(|p| p.name().to_string()).collect()
}

#[test]
fn checking_for_cycles_is_linear_on_layered_graphs() {
    // 40 layers of two nodes, each fed by both nodes of the layer
    // below, pipes added from the top down: there are 2^40 paths
    // between the ends, which enumerating simple paths would walk.
    let mut d = Dagger::new();
    let w = || Worker::new("papy.ipasser").unwrap();
    for k in 0..40 {
        for side in ["a", "b"] {
            d.add_piper(Piper::new(format!("{side}{k}"), w())).unwrap();
        }
    }
    for k in (1..40).rev() {
        for to in ["a", "b"] {
            for from in ["a", "b"] {
                d.connect(&format!("{from}{}", k - 1), &format!("{to}{k}"))
                    .unwrap();
            }
        }
    }
    let e = d.connect("a39", "a0").unwrap_err();
    assert!(matches!(e, Error::Cycle { .. }), "{e}");
}

#[test]
fn refused_cycle_leaves_graph_unchanged() {
    let mut d = dag(&[("a", 0), ("b", 0), ("c", 0)]);
    d.add_pipe(["a", "b", "c"]).unwrap();
    let before = d.pipes();
    match d.add_pipe(["c", "a"]) {
        Err(Error::Cycle { cycle, .. }) => assert_eq!(cycle, ["a", "b", "c", "a"]),
        other => panic!("{other:?}"),
    }
    // A multi-pipe whose second pair closes a cycle adds nothing either.
    assert!(d.add_pipe(["a", "c", "a"]).is_err());
    assert_eq!(d.pipes(), before);
    assert!(d.add_pipe(["a", "a"]).is_err());
}

#[test]
fn order_by_branch_then_insertion() {
    let mut d = dag(&[("in2", 2), ("in1", 1), ("x", 0), ("y", 0), ("out", 0)]);
    d.add_pipe(["in2", "y", "out"]).unwrap();
    d.add_pipe(["in1", "x", "out"]).unwrap();
    assert_eq!(names(d.order()), ["in1", "x", "in2", "y", "out"]);
    assert_eq!(names(d.inputs()), ["in1", "in2"]);
    assert_eq!(names(d.outputs()), ["out"]);
    // Inbox order of the join = order its pipes were added.
    assert_eq!(names(d.upstream("out").unwrap()), ["y", "x"]);
}

#[test]
fn del_piper_and_pipes() {
    let mut d = dag(&[("a", 0), ("b", 0)]);
    d.connect("a", "b").unwrap();
    assert!(d.del_piper("a", false).is_err());
    assert!(d.connect("a", "b").is_err(), "duplicate pipe");
    d.del_pipe(["a", "b"]).unwrap();
    assert!(d.disconnect("a", "b").is_err());
    d.del_piper("a", false).unwrap();
    assert_eq!(d.len(), 1);
    assert!(d
        .add_piper(Piper::new("b", Worker::new("papy.ipasser").unwrap()))
        .is_err());
    assert!(d
        .add_pipe(["b", "zzz"])
        .unwrap_err()
        .to_string()
        .contains("zzz"));
}
