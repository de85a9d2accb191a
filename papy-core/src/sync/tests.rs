use super::*;

#[test]
fn spin_for_returns_the_first_answer_or_gives_up_after_the_limit() {
    // A deadline no scheduler delay can reach: the third poll answers.
    let far = Instant::now() + Duration::from_secs(3600);
    let mut polls = 0;
    assert_eq!(
        spin_until(far, || {
            polls += 1;
            (polls == 3).then_some(polls)
        }),
        Some(3)
    );
    let start = Instant::now();
    assert_eq!(spin_for(|| None::<()>), None);
    assert!(start.elapsed() >= IDLE_SPIN);
}
