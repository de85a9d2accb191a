use super::*;

#[test]
fn doorbell_wakes_waiter() {
    let b = Arc::new(Doorbell::default());
    let seen = b.seen();
    let b2 = b.clone();
    let t = std::thread::spawn(move || {
        b2.wait(seen, Duration::from_secs(10));
    });
    std::thread::sleep(Duration::from_millis(10));
    b.ring();
    t.join().unwrap();
    assert_ne!(b.seen(), seen);
    assert!(b.rung_since(seen));
    assert!(!b.rung_since(b.seen()));
}

#[test]
fn rings_before_the_wait_are_not_lost() {
    let b = Doorbell::default();
    let seen = b.seen();
    b.ring();
    let t = std::time::Instant::now();
    b.wait(seen, Duration::from_secs(10));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a ring before the wait"
    );
}

#[test]
fn the_bound_holds_unless_the_task_is_starved() {
    let c = Credits::new(4, Arc::new(Doorbell::default()));
    assert_eq!(c.acquire_up_to(3, false), 3);
    assert_eq!(c.free(), 1);
    assert_eq!(c.acquire_up_to(3, false), 1);
    assert!(c.full());
    assert_eq!(c.acquire_up_to(3, false), 0);
    // A starved task gets its whole batch over the bound.
    assert_eq!(c.acquire_up_to(3, true), 3);
    assert_eq!(c.in_use(), 7);
    c.release(7);
    assert!(!c.full());
}
