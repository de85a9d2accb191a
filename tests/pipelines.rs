//! End-to-end pipeline behaviour: determinism, errors as data, joins,
//! shared NuMaps, stop/restart, pause/resume, the Plumber state machine.

mod common;

use common::*;
use papy::{
    Dagger, Error, ErrorKind, NuMap, Piper, Plumber, PlumberFile, PlumberState, Source, Value,
    Worker,
};
use std::time::Duration;

fn expected_fork_join(n: i64) -> Vec<Value> {
    // src: x+1; pair -> [y, -y] -> consume 2 -> y + (-y) = 0; mul: 3y; join: 0*1000 + 3y.
    (0..n).map(|x| Value::Int(3 * (x + 1))).collect()
}

#[test]
fn fork_join_produce_spawn_consume_is_independent_of_resources() {
    let n = 200;
    let reference = run_all(
        fork_join(Resources {
            workers: None,
            stride: 1,
            buffer: None,
        }),
        ints(0..n),
    );
    let want = expected_fork_join(n);
    let got: Vec<Value> = reference[0].1.iter().map(|r| r.clone().unwrap()).collect();
    assert_eq!(got, want);
    for workers in [1, 2, 4] {
        for stride in [1, 2, 3, 7] {
            let r = Resources {
                workers: Some(workers),
                stride,
                buffer: None,
            };
            let out = run_all(fork_join(r), ints(0..n));
            assert_eq!(out, reference, "workers {workers} stride {stride}");
        }
    }
}

#[test]
fn error_item_names_function_node_path_and_index_and_others_pass() {
    for workers in [None, Some(2)] {
        let m = numap(
            Resources {
                workers,
                stride: 3,
                buffer: None,
            },
            "err",
        );
        let mut d = Dagger::new();
        d.add_piper(piper("a", Worker::with_args("t_fail_on", [7]).unwrap(), &m))
            .unwrap();
        d.add_piper(piper("b", Worker::with_args("t_add", [1]).unwrap(), &m))
            .unwrap();
        d.add_piper(piper("c", Worker::with_args("t_mul", [2]).unwrap(), &m))
            .unwrap();
        d.add_pipe(["a", "b", "c"]).unwrap();
        let out = run_all(d, ints(1..=20)).remove(0).1;
        assert_eq!(out.len(), 20);
        for (i, r) in out.iter().enumerate() {
            let x = i as i64 + 1;
            if x % 7 == 0 {
                let e = r.as_ref().unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Function);
                assert!(e.function().unwrap().ends_with("t_fail_on"), "{e}");
                assert_eq!(e.path(), ["a", "b", "c"]);
                assert_eq!(e.index(), Some(i as u64));
                assert!(e.message().contains("multiple of 7"));
            } else {
                assert_eq!(r.as_ref().unwrap(), &Value::Int((x + 1) * 2));
            }
        }
    }
}

#[test]
fn panicking_worker_becomes_error_and_run_goes_on() {
    let m = numap(
        Resources {
            workers: Some(2),
            stride: 2,
            buffer: None,
        },
        "panic",
    );
    let mut d = Dagger::new();
    d.add_piper(piper(
        "p",
        Worker::with_args("t_panic_on", [3]).unwrap(),
        &m,
    ))
    .unwrap();
    let out = run_all(d, ints(0..6)).remove(0).1;
    assert_eq!(out.len(), 6);
    let e = out[3].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panic);
    assert!(e.message().contains("deliberate panic on 3"));
    assert_eq!(out[5], Ok(Value::Int(5)));
}

#[test]
fn timeout_in_pipeline_is_an_error_item_and_counts_stay_aligned() {
    let m = NuMap::builder().workers(2).stride(2).build().unwrap();
    let mut d = Dagger::new();
    let slow = Worker::with_args("t_sleep_on", [Value::Int(2), Value::Int(2000)]).unwrap();
    d.add_piper(
        Piper::new("slow", slow)
            .parallel(&m)
            .timeout(Duration::from_millis(200)),
    )
    .unwrap();
    d.add_piper(Piper::new("next", Worker::with_args("t_add", [10]).unwrap()).parallel(&m))
        .unwrap();
    d.connect("slow", "next").unwrap();
    let out = run_all(d, ints(0..6)).remove(0).1;
    assert_eq!(out.len(), 6);
    let e = out[2].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.path(), ["slow", "next"]);
    assert_eq!(out[3], Ok(Value::Int(13)));
}

#[test]
fn unequal_join_reports_unmatched_items() {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("l", Worker::with_args("t_add", [0]).unwrap()))
        .unwrap();
    d.add_piper(Piper::new("r", Worker::with_args("t_add", [0]).unwrap()))
        .unwrap();
    d.add_piper(Piper::new("j", Worker::new("t_join").unwrap()))
        .unwrap();
    d.add_pipe(["l", "j"]).unwrap();
    d.add_pipe(["r", "j"]).unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("j").unwrap();
    p.start([
        ("l", Source::values(0..3i64)),
        ("r", Source::values(0..5i64)),
    ])
    .unwrap();
    p.run().unwrap();
    assert!(p.wait(Some(Duration::from_secs(30))).unwrap());
    let out = out.take();
    assert_eq!(out.len(), 5);
    assert_eq!(out[2], Ok(Value::Int(2002)));
    for r in &out[3..] {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unmatched);
        assert_eq!(e.path(), ["j"]);
    }
    assert_eq!(p.stats().nodes["j"].failed, 2);
}

#[test]
fn diamond_of_ten_thousand_items_on_three_shared_numaps() {
    let a = NuMap::builder()
        .name("A")
        .workers(2)
        .stride(16)
        .build()
        .unwrap();
    let b = NuMap::builder()
        .name("B")
        .workers(2)
        .stride(5)
        .build()
        .unwrap();
    let c = NuMap::builder()
        .name("C")
        .workers(1)
        .stride(64)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("top", Worker::with_args("t_add", [1]).unwrap()).parallel(&a))
        .unwrap();
    d.add_piper(Piper::new("left", Worker::with_args("t_mul", [2]).unwrap()).parallel(&b))
        .unwrap();
    d.add_piper(Piper::new("right", Worker::with_args("t_mul", [3]).unwrap()).parallel(&c))
        .unwrap();
    d.add_piper(Piper::new("join", Worker::new("t_join").unwrap()).parallel(&a))
        .unwrap();
    d.add_piper(Piper::new("tail", Worker::with_args("t_add", [0]).unwrap()).parallel(&b))
        .unwrap();
    d.add_pipe(["top", "left", "join", "tail"]).unwrap();
    d.add_pipe(["top", "right", "join"]).unwrap();
    let out = run_all(d, ints(0..10_000)).remove(0).1;
    assert_eq!(out.len(), 10_000);
    for (x, r) in out.iter().enumerate() {
        let y = x as i64 + 1;
        assert_eq!(r.as_ref().unwrap(), &Value::Int(2 * y * 1000 + 3 * y));
    }
}

#[test]
fn consume_imbalance_on_one_shared_numap_does_not_deadlock() {
    // PaPy deadlocks here (L-6): a consume=5 node behind a stride-3 node on the same NuMap.
    let m = NuMap::builder()
        .workers(2)
        .stride(3)
        .buffer(3)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("a", Worker::with_args("t_add", [0]).unwrap()).parallel(&m))
        .unwrap();
    d.add_piper(
        Piper::new("s", Worker::new("t_sum").unwrap())
            .parallel(&m)
            .consume(5),
    )
    .unwrap();
    d.connect("a", "s").unwrap();
    let out = run_all(d, ints(0..23)).remove(0).1;
    let got: Vec<i64> = out
        .into_iter()
        .map(|r| r.unwrap().as_int().unwrap())
        .collect();
    let want: Vec<i64> = (0..23)
        .collect::<Vec<i64>>()
        .chunks(5)
        .map(|c| c.iter().sum())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn stop_mid_unbounded_input_then_restart() {
    let m = NuMap::builder().workers(2).stride(4).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("inc", Worker::with_args("t_add", [1]).unwrap()).parallel(&m))
        .unwrap();
    d.add_piper(Piper::new("dbl", Worker::with_args("t_mul", [2]).unwrap()))
        .unwrap();
    d.connect("inc", "dbl").unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("dbl").unwrap();
    for round in 0..2 {
        p.start([("inc", Source::values(0i64..))]).unwrap();
        p.run().unwrap();
        while out.len() < 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        p.stop().unwrap();
        assert_eq!(p.state(), PlumberState::Stopped);
        let got: Vec<i64> = out
            .take()
            .into_iter()
            .map(|r| r.unwrap().as_int().unwrap())
            .collect();
        // Everything taken from the input came through, in order, ending at a stride boundary.
        assert_eq!(
            got,
            (0..got.len() as i64)
                .map(|x| (x + 1) * 2)
                .collect::<Vec<_>>(),
            "round {round}"
        );
        assert_eq!(got.len() % 4, 0);
        assert_eq!(p.stats().nodes["inc"].items_in, got.len() as u64);
    }
}

#[test]
fn state_machine_refuses_invalid_transitions() {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("x", Worker::with_args("t_add", [0]).unwrap()))
        .unwrap();
    let mut p = Plumber::new(d);
    assert!(matches!(p.run(), Err(Error::State { .. })));
    assert!(matches!(p.pause(), Err(Error::State { .. })));
    assert!(matches!(p.stop(), Err(Error::State { .. })));
    assert!(matches!(
        p.start([("nope", Source::values(0..1i64))]),
        Err(Error::Inputs(_))
    ));
    assert!(matches!(
        p.start(Vec::<(String, Source)>::new()),
        Err(Error::Inputs(_))
    ));
    p.start_positional(vec![Source::values(0..1000i64)])
        .unwrap();
    assert!(matches!(
        p.start([("x", Source::values(0..1i64))]),
        Err(Error::State { .. })
    ));
    p.run().unwrap();
    assert!(matches!(p.run(), Err(Error::State { .. })));
    let _ = p.pause();
    assert!(p.wait(Some(Duration::from_millis(1))).is_ok());
    let _ = p.resume();
    assert!(p.wait(Some(Duration::from_secs(30))).unwrap());
    assert_eq!(p.state(), PlumberState::Finished);
    assert_eq!(p.stats().nodes["x"].items_out, 1000);
    // Pausing a finished run does nothing (PaPy's start, run, wait, pause, stop).
    p.pause().unwrap();
    assert_eq!(p.state(), PlumberState::Finished);
    p.stop().unwrap();
    // Restart after stop with new inputs.
    p.start([("x", Source::values(0..10i64))]).unwrap();
    p.run().unwrap();
    assert!(p.wait(None).unwrap());
    assert_eq!(p.stats().nodes["x"].items_out, 10);
}

#[test]
fn pause_holds_output_and_resume_continues() {
    let m = NuMap::builder()
        .workers(2)
        .stride(2)
        .buffer(4)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("x", Worker::with_args("t_add", [0]).unwrap()).parallel(&m))
        .unwrap();
    let mut p = Plumber::new(d);
    let out = p.collect("x").unwrap();
    p.start([("x", Source::values(0..100_000i64))]).unwrap();
    p.run().unwrap();
    while out.len() < 10 {
        std::thread::sleep(Duration::from_millis(1));
    }
    p.pause().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let held = out.len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(out.len(), held, "nothing is drained while paused");
    assert!(held < 100_000);
    p.run().unwrap();
    assert!(p.wait(Some(Duration::from_secs(60))).unwrap());
    assert_eq!(out.len(), 100_000);
}

#[test]
fn debug_node_stops_the_run_with_the_error() {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("f", Worker::with_args("t_fail_on", [5]).unwrap()).debug(true))
        .unwrap();
    let mut p = Plumber::new(d);
    p.start([("f", Source::values(1i64..))]).unwrap();
    p.run().unwrap();
    match p.wait(Some(Duration::from_secs(30))) {
        Err(Error::Debug { node, error }) => {
            assert_eq!(node, "f");
            assert_eq!(error.index(), Some(4));
        }
        other => panic!("expected a debug failure, got {other:?}"),
    }
}

#[test]
fn tracked_node_keeps_its_outputs() {
    let m = NuMap::builder().workers(2).stride(2).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(
        Piper::new("t", Worker::with_args("t_mul", [10]).unwrap())
            .parallel(&m)
            .track(true),
    )
    .unwrap();
    let mut p = Plumber::new(d);
    p.start([("t", Source::values(0..5i64))]).unwrap();
    p.run().unwrap();
    p.wait(None).unwrap();
    let s = p.stats();
    assert_eq!(s.tracked["t"].len(), 5);
    assert_eq!(s.tracked["t"][&3], Ok(Value::Int(30)));
    assert!(s.run_time.is_some() && s.start_time.is_some());
    assert_eq!(s.nodes["t"].items_in, 5);
}

#[test]
fn unordered_node_delivers_every_item() {
    let m = NuMap::builder()
        .workers(3)
        .stride(1)
        .buffer(10)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    let w = Worker::with_args("t_sleep_on", [Value::Int(0), Value::Int(30)]).unwrap();
    d.add_piper(Piper::new("u", w).parallel(&m).ordered(false))
        .unwrap();
    let mut out: Vec<i64> = run_all(d, ints(0..20))
        .remove(0)
        .1
        .into_iter()
        .map(|r| r.unwrap().as_int().unwrap())
        .collect();
    assert_ne!(out[0], 0, "the slow first item is overtaken");
    out.sort_unstable();
    assert_eq!(out, (0..20).collect::<Vec<_>>());
}

#[test]
fn fan_out_to_two_outputs_read_at_different_paces() {
    // PaPy's tee locks deadlock when consumers pull out of turn (L-5).
    let m = NuMap::builder().workers(2).stride(3).build().unwrap();
    let mut d = Dagger::new();
    d.add_piper(Piper::new("src", Worker::with_args("t_add", [0]).unwrap()).parallel(&m))
        .unwrap();
    d.add_piper(Piper::new("batch", Worker::new("t_sum").unwrap()).consume(4))
        .unwrap();
    d.add_piper(Piper::new(
        "plain",
        Worker::with_args("t_add", [0]).unwrap(),
    ))
    .unwrap();
    d.add_pipe(["src", "batch"]).unwrap();
    d.add_pipe(["src", "plain"]).unwrap();
    let out = run_all(d, ints(0..40));
    assert_eq!(out[0].0, "batch");
    assert_eq!(out[0].1.len(), 10);
    assert_eq!(out[1].1.len(), 40);
}

#[test]
fn a_panicking_output_callback_fails_the_run_instead_of_losing_items() {
    let mut d = Dagger::new();
    d.add_piper(Piper::new("x", Worker::with_args("t_add", [0]).unwrap()))
        .unwrap();
    let mut p = Plumber::new(d);
    let mut seen = 0;
    p.on_output("x", move |_| {
        seen += 1;
        if seen == 3 {
            panic!("sink is full");
        }
    })
    .unwrap();
    p.start([("x", Source::values(0..100i64))]).unwrap();
    p.run().unwrap();
    match p.wait(Some(Duration::from_secs(30))) {
        Err(Error::Output { node, message }) => {
            assert_eq!(node, "x");
            assert!(message.contains("sink is full"));
        }
        other => panic!("expected the output failure, got {other:?}"),
    }
}

#[test]
fn save_and_load_round_trip_the_pipeline() {
    let a = NuMap::builder()
        .name("pool_a")
        .workers(2)
        .stride(3)
        .buffer(9)
        .build()
        .unwrap();
    let mut d = Dagger::new();
    d.add_piper(
        Piper::new("inc", Worker::with_args("t_add", [1]).unwrap())
            .parallel(&a)
            .branch(2),
    )
    .unwrap();
    d.add_piper(
        Piper::new("pair", Worker::new("t_pair").unwrap())
            .parallel(&a)
            .produce(2)
            .spawn(2)
            .track(true)
            .timeout(Duration::from_millis(1500)),
    )
    .unwrap();
    d.add_piper(
        Piper::new("sum", Worker::new("t_sum").unwrap())
            .consume(2)
            .retries(1, Duration::ZERO),
    )
    .unwrap();
    let join = Worker::with_named("papy.njoiner", [("join", "-")]).unwrap();
    let mul = Worker::with_args("t_mul", [3])
        .unwrap()
        .then(Worker::with_args("t_add", [0]).unwrap());
    d.add_piper(Piper::new("mul", mul)).unwrap();
    d.add_piper(Piper::new("join", join).debug(false)).unwrap();
    d.add_pipe(["inc", "pair", "sum", "join"]).unwrap();
    d.add_pipe(["inc", "mul", "join"]).unwrap();
    let p = Plumber::new(d);
    let saved = p.save_string().unwrap();
    assert!(
        saved.contains("[resources.pool_a]") && saved.contains("function = \"papy.njoiner\""),
        "{saved}"
    );
    let mut loaded = Plumber::from_toml(&saved).unwrap();
    assert_eq!(
        loaded.save_string().unwrap(),
        saved,
        "save(load(save(p))) == save(p)"
    );
    // The loaded pipeline computes the same thing.
    let out = loaded.collect("join").unwrap();
    loaded.start([("inc", Source::values(0..10i64))]).unwrap();
    loaded.run().unwrap();
    assert!(loaded.wait(Some(Duration::from_secs(60))).unwrap());
    let got: Vec<Value> = out.take().into_iter().map(|r| r.unwrap()).collect();
    let want: Vec<Value> = (0..10i64)
        .map(|x| Value::from(format!("0-{}", 3 * (x + 1))))
        .collect();
    assert_eq!(got, want);
    // Closures have no name to save.
    let mut c = Dagger::new();
    c.add_piper(Piper::new("c", Worker::typed("anon", |x: i64| x)))
        .unwrap();
    assert!(matches!(
        Plumber::new(c).save_string(),
        Err(papy::config::ConfigError::NotSaveable(_))
    ));
}
