use super::*;

#[test]
fn each_rule_names_its_key() {
    let ok = NuMapSizes {
        stride: Some(4),
        buffer: Some(8),
        threads_from_stride: true,
    };
    assert!(ok.validate().is_empty());
    let keys = |s: NuMapSizes| s.validate().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(NuMapSizes {
            stride: Some(0),
            ..ok
        }),
        ["stride"]
    );
    assert_eq!(
        keys(NuMapSizes {
            buffer: Some(2),
            ..ok
        }),
        ["buffer"]
    );
    let wide = NuMapSizes {
        stride: Some(limits::MAX_WORKERS + 1),
        buffer: None,
        threads_from_stride: true,
    };
    assert_eq!(keys(wide), ["stride"]);
    assert!(keys(NuMapSizes {
        threads_from_stride: false,
        ..wide
    })
    .is_empty());
}
