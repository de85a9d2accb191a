use super::*;

#[test]
fn the_key_round_trips_through_its_hex_form() {
    let hex = run_key_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(unhex::<32>(&hex).as_ref(), Some(run_key()));
    assert_eq!(unhex::<32>("zz"), None);
    assert_eq!(unhex::<32>(&"g".repeat(64)), None);
    assert_eq!(unhex::<2>("0aFf"), Some([0x0a, 0xff]));
    assert_ne!(random::<32>(), random::<32>());
    assert_ne!(random::<8>(), random::<8>());
}
