use super::*;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

fn spec(index: usize, count: usize) -> Option<ShardSpec> {
    Some(ShardSpec { index, count })
}

#[test]
fn parse_takes_zero_based_i_of_n() {
    assert_eq!(ShardSpec::parse("0/4").ok(), spec(0, 4));
    assert_eq!(ShardSpec::parse("3/4").ok(), spec(3, 4));
    assert_eq!(ShardSpec::parse(" 1 / 2 ").ok(), spec(1, 2));
    assert!(matches!(ShardSpec::parse("4/4"), Err(ShardError::IndexOutOfRange { index: 4, count: 4, .. })));
    assert!(matches!(ShardSpec::parse("0/0"), Err(ShardError::ZeroTotal { .. })));
    for bad in ["", "3", "1/2/3", "-1/4", "a/4", "1/", "/4", "1.0/4", "+1/4", "99999999999999999999999/4"] {
        assert!(matches!(ShardSpec::parse(bad), Err(ShardError::Malformed { .. })), "{bad}");
    }
    let e = ShardSpec::parse("4/4").unwrap_err().to_string();
    assert_eq!(e, "--shard 4/4: shard index 4 is out of range for 4 shards (indices are 0-based: 0 … 3)");
}

#[test]
fn resolve_prefers_the_flag_then_k8s_then_slurm() {
    let none = env(&[]);
    assert_eq!(ShardSpec::resolve(None, None, &none).unwrap(), None);
    assert_eq!(ShardSpec::resolve(Some("1/3"), None, &env(&[(K8S_INDEX_ENV, "0")])).unwrap(), spec(1, 3));
    let k8s = env(&[(K8S_INDEX_ENV, "2"), (TOTAL_ENV, "3"), (SLURM_INDEX_ENV, "1")]);
    assert_eq!(ShardSpec::resolve(None, None, &k8s).unwrap(), spec(2, 3));
    assert_eq!(ShardSpec::resolve(None, Some(5), &k8s).unwrap(), spec(2, 5), "--shards wins over the env total");
    let slurm1 = env(&[(SLURM_INDEX_ENV, "4"), (SLURM_MIN_ENV, "1"), (TOTAL_ENV, "4")]);
    assert_eq!(ShardSpec::resolve(None, None, &slurm1).unwrap(), spec(3, 4), "array 1-4");
    let slurm0 = env(&[(SLURM_INDEX_ENV, "0"), (TOTAL_ENV, "4")]);
    assert_eq!(ShardSpec::resolve(None, None, &slurm0).unwrap(), spec(0, 4), "no min: 0-based");
}

#[test]
fn resolve_refuses_half_given_or_bad_values() {
    let e = ShardSpec::resolve(None, None, &env(&[(K8S_INDEX_ENV, "1")])).unwrap_err();
    assert!(matches!(e, ShardError::IndexWithoutTotal { var: K8S_INDEX_ENV, .. }), "{e}");
    assert!(e.to_string().contains("--shards N"), "{e}");
    let e = ShardSpec::resolve(None, Some(3), &env(&[])).unwrap_err();
    assert!(matches!(e, ShardError::TotalWithoutIndex { count: 3, .. }), "{e}");
    let e = ShardSpec::resolve(None, None, &env(&[(TOTAL_ENV, "x"), (K8S_INDEX_ENV, "0")])).unwrap_err();
    assert!(matches!(e, ShardError::BadNumber { .. }), "{e}");
    let e = ShardSpec::resolve(None, None, &env(&[(TOTAL_ENV, "2"), (K8S_INDEX_ENV, "2")])).unwrap_err();
    assert!(matches!(e, ShardError::IndexOutOfRange { index: 2, count: 2, .. }), "{e}");
    let e = ShardSpec::resolve(None, Some(0), &env(&[(K8S_INDEX_ENV, "0")])).unwrap_err();
    assert!(matches!(e, ShardError::ZeroTotal { .. }), "{e}");
    let e = ShardSpec::resolve(None, None, &env(&[(SLURM_INDEX_ENV, "0"), (SLURM_MIN_ENV, "1"), (TOTAL_ENV, "2")]));
    assert!(matches!(e, Err(ShardError::BadNumber { .. })));
}

#[test]
fn ranges_tile_the_list_in_order() {
    for len in [0usize, 1, 2, 5, 7, 100] {
        for count in 1..=8 {
            let ranges: Vec<_> = (0..count).map(|index| ShardSpec { index, count }.range(len)).collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[count - 1].end, len);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start, "len {len}, {count} shards");
            }
            let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        }
    }
    assert_eq!(ShardSpec { index: 1, count: 3 }.range(7), 2..4);
}

fn info(name: &str, index: usize, count: usize, model: &str) -> ShardInfo {
    let fingerprint = [("model".to_string(), model.to_string())].into_iter().collect();
    ShardInfo { name: name.into(), spec: ShardSpec { index, count }, fingerprint }
}

#[test]
fn check_set_names_what_is_wrong() {
    let ok = check_set(vec![info("b", 1, 2, "m"), info("a", 0, 2, "m")], "x").unwrap();
    assert_eq!(ok.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(matches!(check_set(vec![], "dir"), Err(ShardError::NoShards { .. })));
    let e = check_set(vec![info("a", 0, 2, "m"), info("b", 1, 3, "m")], "x").unwrap_err();
    assert!(matches!(e, ShardError::MixedTotal { na: 2, nb: 3, .. }), "{e}");
    let e = check_set(vec![info("a", 0, 2, "m"), info("b", 1, 2, "other")], "x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "a and b are shards of different runs: their fingerprints differ in `model` (m vs other)"
    );
    let e = check_set(vec![info("a", 0, 2, "m"), info("b", 0, 2, "m")], "x").unwrap_err();
    assert!(matches!(e, ShardError::Overlap { index: 0, .. }), "{e}");
    let e = check_set(vec![info("a", 1, 4, "m")], "x").unwrap_err();
    assert_eq!(e.to_string(), "missing shards of 4: 0, 2, 3 (0-based; run them, or name their files or folders)");
}
