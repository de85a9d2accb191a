use super::{room, DEEP_VISITS, MAX_CHUNK};

#[test]
fn small_jobs_get_a_deeper_buffer_never_larger_than_the_largest_jobs_had() {
    // Threads (2 visits of room at least), 2 workers.
    let most = 2 * MAX_CHUNK * 2;
    // 500 us items: jobs of 2, visits of 4 items: eight visits.
    assert_eq!(room(2, 4, 2), DEEP_VISITS * 4);
    // 1 us items: jobs of 1000: eight visits, under the cap.
    assert_eq!(room(2, 2000, 2), 16_000);
    // The fastest items (jobs of MAX_CHUNK): two visits, as before.
    assert_eq!(room(2, MAX_CHUNK * 2, 2), most);
    assert!(room(2, 3000, 2) <= most);
    // Pools with a round trip per job keep four visits at least.
    assert_eq!(room(4, MAX_CHUNK * 2, 2), 4 * MAX_CHUNK * 2);
    assert_eq!(room(4, 2, 2), DEEP_VISITS * 2);
}
