use super::spawn_index;

#[test]
fn spawn_index_maps_local_chunks_back() {
    // k = 3, chunk = 2: task 1 gets chunks 1, 4, ... = items 2,3, 8,9, ...
    let got: Vec<u64> = (0..4).map(|l| spawn_index(l, 1, 3, 2)).collect();
    assert_eq!(got, [2, 3, 8, 9]);
}
