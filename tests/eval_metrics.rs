//! Evaluation metrics (METHOD.md D) against scikit-learn / scikit-image golden values from
//! `tools/make_metric_fixtures.py` (`tests/fixtures/metrics/`), and the streaming pixel
//! accumulator against the exact one.
//!
//! Tolerances: exact metrics within 1e-6 of the reference (absolute); the streaming accumulator
//! within 1e-4 of the exact value, and always within its own reported error bounds.

use std::sync::OnceLock;

use serde_json::Value;
use tokenclip::eval::{
    image_metrics, label_components, mean_over_classes, pixel_metrics_exact, AuproMode, ClassMetrics, Metric,
    MetricError, PixelAccumulator, PixelImage, PixelMetrics, Undefined, MAX_CURVE_POINTS,
};

const EXACT_TOL: f64 = 1e-6;
const STREAM_TOL: f64 = 1e-4;

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics/reference.json");
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e}; regenerate with python3 tools/make_metric_fixtures.py"));
        serde_json::from_str(&text).expect("reference.json parses")
    })
}

fn inputs() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics/inputs.safetensors");
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    })
}

fn tensor_f32(name: &str) -> (Vec<f32>, Vec<usize>) {
    let st = safetensors::SafeTensors::deserialize(inputs()).expect("inputs parse");
    let t = st.tensor(name).unwrap_or_else(|_| panic!("tensor {name} missing"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    let v = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    (v, t.shape().to_vec())
}

fn tensor_bool(name: &str) -> Vec<bool> {
    let st = safetensors::SafeTensors::deserialize(inputs()).expect("inputs parse");
    let t = st.tensor(name).unwrap_or_else(|_| panic!("tensor {name} missing"));
    assert_eq!(t.dtype(), safetensors::Dtype::U8, "{name}");
    t.data().iter().map(|&b| b != 0).collect()
}

fn undefined_name(r: Undefined) -> String {
    serde_json::to_value(r).expect("serialises").as_str().expect("a string").to_owned()
}

/// Checks `got` against `expected[key]`: a number within `tol`, or null with
/// `expected[key_undefined]` naming the reason.
fn check(case: &str, key: &str, got: Metric, expected: &Value, tol: f64) {
    match (&expected[key], got) {
        (Value::Null, Metric::Undefined(r)) => {
            let want = expected[format!("{key}_undefined")].as_str().expect("reason");
            assert_eq!(undefined_name(r), want, "{case} {key}");
        }
        (Value::Number(n), Metric::Value(v)) => {
            let want = n.as_f64().expect("f64");
            assert!(v.is_finite(), "{case} {key}: {v}");
            assert!((v - want).abs() <= tol, "{case} {key}: got {v}, want {want}, |diff| {:e}", (v - want).abs());
        }
        (want, got) => panic!("{case} {key}: got {got:?}, want {want}"),
    }
}

struct PixelCase {
    name: String,
    maps: Vec<f32>,
    masks: Vec<bool>,
    images: usize,
    height: usize,
    width: usize,
    expected: Value,
}

impl PixelCase {
    fn image_views(&self) -> Vec<PixelImage<'_>> {
        let n = self.height * self.width;
        (0..self.images)
            .map(|i| PixelImage {
                map: &self.maps[i * n..(i + 1) * n],
                mask: &self.masks[i * n..(i + 1) * n],
                height: self.height,
                width: self.width,
            })
            .collect()
    }

    fn stream(&self, groups: usize, staging: usize) -> PixelMetrics {
        let mut acc = PixelAccumulator::with_capacity(groups, staging);
        for im in self.image_views() {
            acc.add(im.map, im.mask, im.height, im.width).expect("valid image");
        }
        acc.finish()
    }
}

fn stored_pixel_cases() -> Vec<PixelCase> {
    let r = reference();
    r["pixel"]
        .as_array()
        .expect("pixel cases")
        .iter()
        .map(|c| {
            let name = c["name"].as_str().expect("name").to_owned();
            let (maps, shape) = tensor_f32(&format!("{name}/maps"));
            let masks = tensor_bool(&format!("{name}/masks"));
            assert_eq!(masks.len(), maps.len());
            PixelCase {
                name,
                maps,
                masks,
                images: shape[0],
                height: shape[1],
                width: shape[2],
                expected: c["expected"].clone(),
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// The generator shared with tools/make_metric_fixtures.py (`low_bits_case`).

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn low_bits_case(entry: &Value) -> PixelCase {
    let p = &entry["params"];
    let images = p["images"].as_u64().expect("images") as usize;
    let size = p["size"].as_u64().expect("size") as usize;
    let seed = p["seed"].as_u64().expect("seed");
    let mut maps = Vec::with_capacity(images * size * size);
    let mut masks = Vec::with_capacity(images * size * size);
    for img in 0..images {
        for y in 0..size {
            for x in 0..size {
                let i = ((img * size + y) * size + x) as u64;
                let h = splitmix64(i + (seed << 32)) >> 44;
                let m = (y / 32 + x / 32 + img) % 5 == 0;
                let bits = 0x3F00_0000u64 + h + if m { 1 << 18 } else { 0 };
                maps.push(f32::from_bits(bits as u32));
                masks.push(m);
            }
        }
    }
    let first: Vec<u64> =
        entry["expected"]["first_bits"].as_array().expect("bits").iter().filter_map(Value::as_u64).collect();
    let got: Vec<u64> = maps[..first.len()].iter().map(|v| u64::from(v.to_bits())).collect();
    assert_eq!(got, first, "generator differs from the Python one");
    PixelCase {
        name: entry["name"].as_str().expect("name").to_owned(),
        maps,
        masks,
        images,
        height: size,
        width: size,
        expected: entry["expected"].clone(),
    }
}

fn generated_case() -> PixelCase {
    let entry = &reference()["generated"][0];
    assert_eq!(entry["generator"], "low_bits_case");
    low_bits_case(entry)
}

fn check_pixel(case: &PixelCase, m: &PixelMetrics, tol: f64) {
    let e = &case.expected;
    check(&case.name, "roc_auc", m.auroc, e, tol);
    check(&case.name, "average_precision", m.average_precision, e, tol);
    check(&case.name, "f1_max", m.f1_max, e, tol);
    check(&case.name, "aupro_exact", m.aupro, e, tol);
    check(&case.name, "aupro_sampled", m.aupro_sampled, e, tol);
}

/// |a − b| when both are defined; both undefined alike gives 0.
fn diff(a: Metric, b: Metric) -> f64 {
    match (a, b) {
        (Metric::Value(x), Metric::Value(y)) => (x - y).abs(),
        (Metric::Undefined(r), Metric::Undefined(s)) if r == s => 0.0,
        _ => panic!("{a:?} vs {b:?}"),
    }
}

/// |streaming − exact| for AUROC, AP, F1-max, AUPRO and sampled AUPRO.
fn errors(s: &PixelMetrics, e: &PixelMetrics) -> [f64; 5] {
    [
        diff(s.auroc, e.auroc),
        diff(s.average_precision, e.average_precision),
        diff(s.f1_max, e.f1_max),
        diff(s.aupro, e.aupro),
        diff(s.aupro_sampled, e.aupro_sampled),
    ]
}

fn sci(v: &[f64]) -> String {
    v.iter().map(|e| format!("{e:.2e}")).collect::<Vec<_>>().join(" ")
}

/// Streaming `s` against exact `e`: every difference within the reported bounds (plus rounding).
fn assert_within_bounds(name: &str, s: &PixelMetrics, e: &PixelMetrics) {
    let b = s.approximation.bounds;
    let slack = 1e-9;
    assert!(diff(s.auroc, e.auroc) <= b.auroc + slack, "{name} auroc {:e} > {:e}", diff(s.auroc, e.auroc), b.auroc);
    let d = diff(s.average_precision, e.average_precision);
    assert!(d <= b.average_precision + slack, "{name} ap {d:e} > {:e}", b.average_precision);
    let d = diff(s.f1_max, e.f1_max);
    assert!(d <= b.f1_max + slack, "{name} f1 {d:e} > {:e}", b.f1_max);
    if let (Metric::Value(x), Metric::Value(y)) = (s.f1_max, e.f1_max) {
        assert!(x <= y + slack, "{name}: streaming F1-max above exact");
    }
    assert!(diff(s.aupro, e.aupro) <= b.aupro + slack, "{name} aupro {:e} > {:e}", diff(s.aupro, e.aupro), b.aupro);
}

// ----------------------------------------------------------------------------------------------

#[test]
fn image_metrics_match_sklearn_on_binary_cases() {
    let cases = reference()["binary"].as_array().expect("binary cases");
    assert!(cases.len() >= 14);
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let (scores, _) = tensor_f32(&format!("{name}/scores"));
        let labels = tensor_bool(&format!("{name}/labels"));
        let m = image_metrics(&scores, &labels).expect("valid input");
        let e = &c["expected"];
        check(name, "roc_auc", m.auroc, e, EXACT_TOL);
        check(name, "average_precision", m.average_precision, e, EXACT_TOL);
        check(name, "f1_max", m.f1_max, e, EXACT_TOL);
        assert!(m.curves.roc.len() <= MAX_CURVE_POINTS && m.curves.pr.len() <= MAX_CURVE_POINTS);
    }
}

#[test]
fn image_curves_are_monotone_and_end_at_one() {
    let (scores, _) = tensor_f32("random_20000/scores");
    let labels = tensor_bool("random_20000/labels");
    let m = image_metrics(&scores, &labels).expect("valid input");
    let roc = &m.curves.roc;
    assert_eq!(roc.len(), MAX_CURVE_POINTS);
    assert_eq!((roc[0].fpr, roc[0].tpr, roc[0].threshold), (0.0, 0.0, None));
    let last = roc[roc.len() - 1];
    assert_eq!((last.fpr, last.tpr), (1.0, 1.0));
    assert!(roc.windows(2).all(|w| w[0].fpr <= w[1].fpr && w[0].tpr <= w[1].tpr));
    let pr = &m.curves.pr;
    assert_eq!((pr[0].recall, pr[0].precision), (0.0, 1.0));
    assert_eq!(pr[pr.len() - 1].recall, 1.0);
}

#[test]
fn pixel_metrics_exact_match_sklearn_and_reference_aupro() {
    let cases = stored_pixel_cases();
    assert!(cases.len() >= 8);
    for case in &cases {
        let m = pixel_metrics_exact(&case.image_views()).expect("valid input");
        check_pixel(case, &m, EXACT_TOL);
        assert!(m.approximation.exact && m.approximation.bounds.max() == 0.0, "{}", case.name);
    }
}

#[test]
fn components_match_skimage_label() {
    for case in &stored_pixel_cases() {
        let n = case.height * case.width;
        let mut sizes: Vec<u64> = Vec::new();
        for i in 0..case.images {
            let c = label_components(&case.masks[i * n..(i + 1) * n], case.height, case.width).expect("valid mask");
            sizes.extend(c.sizes().iter().map(|&s| u64::from(s)));
        }
        sizes.sort_unstable();
        let want: Vec<u64> =
            case.expected["component_sizes"].as_array().expect("sizes").iter().filter_map(Value::as_u64).collect();
        assert_eq!(sizes, want, "{}", case.name);
    }
}

#[test]
fn streaming_with_default_capacity_is_exact_across_merges() {
    // Tiny staging buffers force a merge every few pixels; nothing is coarsened.
    for case in &stored_pixel_cases() {
        for staging in [1, 7, 1000] {
            let s = case.stream(tokenclip::eval::DEFAULT_CAPACITY, staging);
            assert!(s.approximation.exact, "{}", case.name);
            check_pixel(case, &s, EXACT_TOL);
        }
    }
}

#[test]
fn streaming_stays_within_its_bounds_when_coarsened() {
    // Capacities far too small on purpose: values move, but never past the reported bounds.
    for case in &stored_pixel_cases() {
        let exact = pixel_metrics_exact(&case.image_views()).expect("valid input");
        for groups in [1, 2, 5, 17, 64, 300] {
            let s = case.stream(groups, 97);
            assert!(s.approximation.groups <= groups, "{}", case.name);
            assert_within_bounds(&format!("{} groups={groups}", case.name), &s, &exact);
        }
    }
}

#[test]
fn low_bits_1m_pixels_match_sklearn_exactly_and_streaming_within_1e_4() {
    let case = generated_case();
    assert_eq!(case.maps.len(), 1 << 20);
    // ~730k distinct scores: the default accumulator never coarsens, so it is exact.
    let s = case.stream(tokenclip::eval::DEFAULT_CAPACITY, tokenclip::eval::DEFAULT_STAGING);
    assert!(s.approximation.exact, "{:?}", s.approximation);
    check_pixel(&case, &s, EXACT_TOL);
    // Forced coarsening: 2^16 groups (5 bits dropped) and 2^14 (7 bits). Every error stays
    // within 1e-4 and within the reported bounds; at 2^16 the bounds themselves are below 1e-4.
    for groups in [1 << 16, 1 << 14] {
        let c = case.stream(groups, 1 << 16);
        assert!(!c.approximation.exact && c.approximation.dropped_bits >= 5, "{:?}", c.approximation);
        assert_within_bounds(&format!("low bits, {groups} groups"), &c, &s);
        let errs = errors(&c, &s);
        eprintln!(
            "low bits, {groups} groups: |err| auroc/ap/f1/aupro/aupro_sampled {}, {:?}",
            sci(&errs),
            c.approximation
        );
        assert!(errs.iter().all(|&e| e <= STREAM_TOL), "{groups} groups: {errs:?}");
        if groups == 1 << 16 {
            assert!(c.approximation.bounds.max() <= STREAM_TOL, "{:?}", c.approximation.bounds);
        }
    }
}

/// Smooth maps over a wide range ([0, 4], as four summed layers) with blob masks, generated
/// here: the streaming error when the table holds far fewer groups than distinct scores.
#[test]
fn streaming_on_smooth_maps_within_1e_4_and_bounds() {
    let (images, size) = (8usize, 192usize);
    let mut maps = Vec::new();
    let mut masks = Vec::new();
    for img in 0..images {
        let f = img as f32 + 1.0;
        for y in 0..size {
            for x in 0..size {
                let (yf, xf) = (y as f32 / size as f32, x as f32 / size as f32);
                let (dy, dx) = (yf - 0.3 - 0.05 * f, xf - 0.6 + 0.03 * f);
                let blob = dy * dy + dx * dx < 0.004 * f;
                let base = 1.5 + (yf * 7.0 * f).sin() * (xf * 5.0).cos() * 0.8 + 0.3 * (xf * 31.0 + f).sin();
                let noise = (splitmix64((img * size * size + y * size + x) as u64) >> 40) as f32 / (1u64 << 24) as f32;
                maps.push((base + 0.2 * noise + if blob { 0.9 } else { 0.0 }).clamp(0.0, 4.0));
                masks.push(blob || (img == 3 && y == 10 && x == 10));
            }
        }
    }
    let case =
        PixelCase { name: "smooth".into(), maps, masks, images, height: size, width: size, expected: Value::Null };
    let exact = pixel_metrics_exact(&case.image_views()).expect("valid input");
    // 295k pixels in at most 2^16 groups: 9 bits dropped, a coarser table than the default
    // capacity gives on a 45M-pixel class. Errors within 1e-4; at 2^13 groups (12 bits) they
    // pass 1e-4 but stay within the bounds.
    for groups in [1 << 16, 1 << 13] {
        let s = case.stream(groups, 1 << 15);
        assert_within_bounds("smooth", &s, &exact);
        let errs = errors(&s, &exact);
        eprintln!(
            "smooth, {groups} groups: |err| auroc/ap/f1/aupro/aupro_sampled {}, {:?}",
            sci(&errs),
            s.approximation
        );
        if groups == 1 << 16 {
            assert!(errs.iter().all(|&e| e <= STREAM_TOL), "{groups} groups: {errs:?}");
        }
    }
}

#[test]
fn degenerate_inputs_are_undefined_not_nan() {
    let m = image_metrics(&[], &[]).expect("empty is valid");
    assert_eq!(m.auroc, Metric::Undefined(Undefined::NoSamples));
    let m = image_metrics(&[0.3; 4], &[false, true, true, false]).expect("valid");
    assert_eq!((m.auroc, m.average_precision), (Metric::Value(0.5), Metric::Value(0.5)));
    let p = pixel_metrics_exact(&[]).expect("empty is valid");
    assert_eq!(
        (p.auroc, p.aupro, p.aupro_sampled),
        (
            Metric::Undefined(Undefined::NoSamples),
            Metric::Undefined(Undefined::NoSamples),
            Metric::Undefined(Undefined::NoSamples)
        )
    );
    // Two thresholds only, both at FPR ≥ 0.3 but one: fewer than two sampled points.
    let p = pixel_metrics_exact(&[PixelImage {
        map: &[0.0, 1.0, 0.0, 0.0],
        mask: &[false, true, false, false],
        height: 2,
        width: 2,
    }])
    .expect("valid");
    assert_eq!(p.aupro, Metric::Value(1.0));
    assert_eq!(p.aupro_sampled, Metric::Undefined(Undefined::TooFewPoints));
}

#[test]
fn rejects_bad_inputs_without_changing_state() {
    assert!(matches!(image_metrics(&[0.1, f32::NAN], &[true, false]), Err(MetricError::NonFinite { index: 1, .. })));
    assert!(matches!(image_metrics(&[0.1], &[true, false]), Err(MetricError::LengthMismatch { .. })));
    let mut acc = PixelAccumulator::new();
    assert!(matches!(acc.add(&[0.1; 6], &[false; 6], 2, 2), Err(MetricError::LengthMismatch { .. })));
    assert!(matches!(acc.add(&[0.1, 0.2, f32::INFINITY, 0.0], &[false; 4], 2, 2), Err(MetricError::NonFinite { .. })));
    assert!(matches!(acc.add(&[0.1; 4], &[false; 3], 2, 2), Err(MetricError::LengthMismatch { .. })));
    assert!(matches!(acc.add(&[], &[], usize::MAX, 2), Err(MetricError::ImageTooLarge { .. })));
    acc.add(&[0.9, 0.1, 0.2, 0.3], &[true, false, false, false], 2, 2).expect("valid");
    let m = acc.finish();
    assert_eq!((m.normal_pixels, m.anomalous_pixels, m.regions), (3, 1, 1));
    assert_eq!(m.auroc, Metric::Value(1.0));
}

#[test]
fn memory_bound_is_stated() {
    assert_eq!(PixelAccumulator::new().memory_bound_bytes(), 72 << 20);
}

#[test]
fn mean_over_classes_skips_undefined_and_counts_them() {
    let good = image_metrics(&[0.1, 0.9, 0.4], &[false, true, false]).expect("valid");
    let normal_only = image_metrics(&[0.1, 0.9], &[false, false]).expect("valid");
    let pix = pixel_metrics_exact(&[PixelImage {
        map: &[0.2, 0.8, 0.1, 0.3],
        mask: &[false, true, false, false],
        height: 2,
        width: 2,
    }])
    .expect("valid");
    let classes = vec![
        ClassMetrics::new("a", &good, Some(&pix), AuproMode::Exact),
        ClassMetrics::new("b", &normal_only, None, AuproMode::Exact),
    ];
    assert_eq!(classes[1].pixel_aupro, Metric::Undefined(Undefined::NotEvaluated));
    let mean = mean_over_classes(&classes);
    assert_eq!(mean.image_auroc.value, Metric::Value(1.0));
    assert_eq!((mean.image_auroc.used, mean.image_auroc.skipped), (1, 1));
    assert_eq!(mean.image_auroc.to_string(), "100.0 (1 skipped)");
    assert_eq!(mean.pixel_aupro.value, pix.aupro);
    let none = mean_over_classes(&classes[1..]);
    assert_eq!(none.image_ap.value, Metric::Undefined(Undefined::NoDefinedClass));
    assert_eq!(none.image_ap.value.percent(), "n/a");
    assert_eq!(Metric::Value(0.9148).percent(), "91.5");
    assert_eq!(Metric::Undefined(Undefined::NoAnomalous).to_string(), "n/a (no anomalous samples)");
    let json = serde_json::to_string(&classes[1].image_auroc).expect("serialises");
    assert_eq!(json, r#"{"undefined":"no_anomalous"}"#);
}
