//! The activation observers against PyTorch's (`torch.ao.quantization.observer`, one thread):
//! tests/python/observers.py feeds each case's batches to `MinMaxObserver` and
//! `HistogramObserver` (quint8, per-tensor affine, reduce_range on and off), and every scale
//! (as f32 bits) and zero point here must be identical. The histogram observer's final
//! histogram, its range and its searched range are compared too, to say where a case diverges.

use ascrepro::compress::observer::{HistogramObserver, Observer, ObserverKind};
use serde_json::Value;

mod common;

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Positions where two f32 vectors differ bitwise, as a short message.
fn bit_mismatch(what: &str, got: &[f32], want: &[f32]) -> Option<String> {
    let bad: Vec<(usize, f32, f32)> = (got.iter().zip(want).enumerate())
        .filter(|(_, (g, w))| g.to_bits() != w.to_bits())
        .map(|(i, (&g, &w))| (i, g, w))
        .collect();
    (got.len() != want.len() || !bad.is_empty()).then(|| {
        format!(
            "{what}: {} of {} differ, first (index, ours, PyTorch): {:?}",
            bad.len(),
            want.len(),
            &bad[..bad.len().min(5)]
        )
    })
}

#[test]
fn observers_match_pytorch() {
    let dir = common::temp_dir("observers");
    common::run_python("observers.py", [&dir]);
    let reference: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let batches: Vec<Vec<f32>> = case["batches"]
            .as_array()
            .unwrap()
            .iter()
            .map(f32s)
            .collect();

        for (kind, kind_name) in [
            (ObserverKind::MinMax, "min_max"),
            (ObserverKind::Histogram, "histogram"),
        ] {
            for (reduce_range, range_name) in [(true, "reduced"), (false, "full")] {
                let key = format!("{kind_name}/{range_name}");
                let want = &case["expected"][&key];
                let want_scale = want["scale"].as_f64().unwrap() as f32;
                let want_zp = want["zero_point"].as_i64().unwrap();
                let mut observer = kind.build(reduce_range);
                for b in &batches {
                    observer.observe(b).unwrap();
                }
                let got = observer.qparams().unwrap();
                checked += 1;
                if (got.scale as f32).to_bits() != want_scale.to_bits() || got.zero_point != want_zp
                {
                    failures.push(format!(
                        "{name} {key}: scale {:e} zero point {}, PyTorch {want_scale:e} {want_zp}",
                        got.scale, got.zero_point
                    ));
                }
                let want_range = (0, if reduce_range { 127 } else { 255 });
                assert_eq!((got.quant_min, got.quant_max), want_range, "{name} {key}");
            }
        }

        // Where the histogram observer's intermediate state first differs.
        let mut hist = HistogramObserver::new(true);
        for b in &batches {
            hist.observe(b).unwrap();
        }
        let (lo, hi) = hist.range().unwrap();
        let want_range = f32s(&case["histogram_range"]);
        if let Some(m) = bit_mismatch("histogram range", &[lo, hi], &want_range) {
            failures.push(format!("{name}: {m}"));
        }
        if let Some(m) = bit_mismatch("histogram", hist.histogram(), &f32s(&case["histogram"])) {
            failures.push(format!("{name}: {m}"));
        }
        let (lo, hi) = hist.searched_range().unwrap();
        if let Some(m) = bit_mismatch("searched range", &[lo, hi], &f32s(&case["searched_range"])) {
            failures.push(format!("{name}: {m}"));
        }
    }
    assert!(checked >= 80, "only {checked} observer cases ran");
    assert!(
        failures.is_empty(),
        "{} differences from PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn non_finite_input_is_refused() {
    for kind in [ObserverKind::MinMax, ObserverKind::Histogram] {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut observer = kind.build(true);
            observer.observe(&[0.5, -1.0, 2.0]).unwrap();
            let before = observer.qparams().unwrap();
            let err = observer.observe(&[1.0, bad, 3.0]).unwrap_err();
            assert!(err.to_string().contains("non-finite"), "{kind:?}: {err}");
            // The refused batch leaves the observer as it was.
            assert_eq!(observer.qparams().unwrap(), before, "{kind:?} after {bad}");
        }
        // A first batch with NaN, then nothing observed: still no qparams.
        let mut observer = kind.build(true);
        assert!(observer.observe(&[f32::NAN]).is_err());
        assert!(observer.qparams().is_err(), "{kind:?}");
    }
}

#[test]
fn empty_batches_are_ignored_and_unobserved_is_an_error() {
    for kind in [ObserverKind::MinMax, ObserverKind::Histogram] {
        let mut observer = kind.build(true);
        observer.observe(&[]).unwrap();
        assert!(observer.qparams().is_err(), "{kind:?}");
        observer.observe(&[0.25, -0.5]).unwrap();
        let q = observer.qparams().unwrap();
        observer.observe(&[]).unwrap();
        assert_eq!(observer.qparams().unwrap(), q, "{kind:?}");
    }
}

#[test]
fn observer_kind_serde_names() {
    for (kind, name) in [
        (ObserverKind::MinMax, "\"min_max\""),
        (ObserverKind::Histogram, "\"histogram\""),
    ] {
        assert_eq!(serde_json::to_string(&kind).unwrap(), name);
        assert_eq!(serde_json::from_str::<ObserverKind>(name).unwrap(), kind);
    }
}
