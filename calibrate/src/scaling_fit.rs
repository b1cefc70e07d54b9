//! The thread-scaling fit of `dicesim profile --threads 1,2,...`: per operator class, the
//! serial fraction `s_c` of the simulator's Amdahl model (`S(k) = k / (1 + s (k - 1))`, see
//! `dicesim_sim::compute`) that best explains the measured per-layer times, the table
//! `profile` prints and the `[unit.classes.<c>] serial_fraction` lines to paste.
//!
//! For a class, `k` threads take `1 / S(k) = 1/k + s (k - 1)/k` of one thread's time. The
//! fit is the least-squares `s` over every layer of the class and every thread count
//! `k > 1` of `t_k / t_1` against that line, each layer weighted by its one-thread time
//! (small layers are mostly dispatch noise); with those weights it equals the fit of the
//! class's summed times `T_k / T_1`, which is what a partition's time depends on.

use dicesim_plan::opclass::OpClass;
use dicesim_sim::compute::speedup;
use std::fmt::Write;

/// A class is fitted only when its layers take at least this share of the model's
/// one-thread time: below it a few microseconds of noise decide the fraction.
pub const MIN_SHARE: f64 = 0.01;

/// ... and at least this much one-thread time per run [us].
pub const MIN_CLASS_US: f64 = 20.0;

/// One layer's median wall times [us] at each thread count of the request (same order).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerScaling {
    /// Layer name.
    pub layer: String,
    /// Operator class.
    pub class: OpClass,
    /// Median time per thread count [us].
    pub times_us: Vec<f64>,
}

/// The fit of one operator class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassFit {
    /// Operator class.
    pub class: OpClass,
    /// Layers of the class that were measured.
    pub layers: usize,
    /// Share of the model's time at the reference thread count (the first listed).
    pub share: f64,
    /// Measured speed-up `T_1 / T_k` per thread count (1 for k = 1; empty without a
    /// one-thread column).
    pub speedups: Vec<f64>,
    /// Fitted serial fraction in [0, 1]; None when the class has too little time or the
    /// request has no one-thread column and another count.
    pub serial_fraction: Option<f64>,
}

/// Fits every class that has layers. `threads` are the thread counts, in the order of each
/// layer's `times_us`.
pub fn fit_classes(threads: &[usize], layers: &[LayerScaling]) -> Vec<ClassFit> {
    let one = threads.iter().position(|&k| k == 1);
    let reference = one.unwrap_or(0);
    let total: f64 = layers.iter().map(|l| l.times_us[reference]).sum();
    OpClass::ALL
        .iter()
        .filter_map(|&c| {
            let of: Vec<&LayerScaling> = layers.iter().filter(|l| l.class == c).collect();
            (!of.is_empty()).then(|| fit_class(c, threads, one, reference, total, &of))
        })
        .collect()
}

fn fit_class(
    class: OpClass,
    threads: &[usize],
    one: Option<usize>,
    reference: usize,
    total: f64,
    layers: &[&LayerScaling],
) -> ClassFit {
    let sums: Vec<f64> = (0..threads.len())
        .map(|i| layers.iter().map(|l| l.times_us[i]).sum())
        .collect();
    let share = if total > 0.0 {
        sums[reference] / total
    } else {
        0.0
    };
    let speedups = match one {
        Some(o) => sums.iter().map(|t| ratio(sums[o], *t)).collect(),
        None => Vec::new(),
    };
    let enough = share >= MIN_SHARE && sums[reference] >= MIN_CLASS_US;
    let serial_fraction = one
        .filter(|_| enough)
        .and_then(|o| serial_fraction(threads, &sums, o));
    ClassFit {
        class,
        layers: layers.len(),
        share,
        speedups,
        serial_fraction,
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Least squares of `T_k / T_1 - 1/k = s (k - 1)/k` over the counts `k > 1`, clamped to
/// [0, 1]; None without such a count or without one-thread time.
pub fn serial_fraction(threads: &[usize], sums: &[f64], one: usize) -> Option<f64> {
    let t1 = sums[one];
    if t1 <= 0.0 {
        return None;
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (&k, &t) in threads.iter().zip(sums).filter(|(&k, _)| k > 1) {
        let k = k as f64;
        let a = (k - 1.0) / k;
        num += a * (t / t1 - 1.0 / k);
        den += a * a;
    }
    (den > 0.0).then(|| (num / den).clamp(0.0, 1.0))
}

/// The table `profile` prints: class, layers, time share, measured speed-up per thread
/// count above 1, the speed-up the fitted fraction predicts at the largest count, and the
/// fitted serial fraction (`-`: not fitted).
pub fn table(threads: &[usize], fits: &[ClassFit]) -> String {
    let counts: Vec<(usize, usize)> = threads
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, k)| *k > 1)
        .collect();
    let mut s = format!("{:<10} {:>6} {:>7}", "class", "layers", "share");
    for (_, k) in &counts {
        let _ = write!(s, " {:>7}", format!("x{k}"));
    }
    let _ = writeln!(s, " {:>9} {:>15}", "model", "serial_fraction");
    let kmax = threads.iter().copied().max().unwrap_or(1) as u32;
    for f in fits {
        let _ = write!(
            s,
            "{:<10} {:>6} {:>6.1}%",
            f.class.name(),
            f.layers,
            f.share * 100.0
        );
        for (i, _) in &counts {
            let v = f.speedups.get(*i).map_or("-".into(), |x| format!("{x:.2}"));
            let _ = write!(s, " {v:>7}");
        }
        let (model, frac) = match f.serial_fraction {
            Some(sf) => (format!("{:.2}", speedup(kmax, sf)), format!("{sf:.3}")),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(s, " {model:>9} {frac:>15}");
    }
    s
}

/// The `[unit.classes.<c>] serial_fraction = ...` lines of the fitted classes, to paste
/// under a `[[unit]]` of a device file (or `[[device.unit]]` of a platform file).
pub fn toml_lines(fits: &[ClassFit]) -> String {
    let mut s = String::new();
    for f in fits {
        if let Some(sf) = f.serial_fraction {
            let _ = writeln!(
                s,
                "[unit.classes.{}]\nserial_fraction = {sf:.3}",
                f.class.name()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(class: OpClass, times_us: Vec<f64>) -> LayerScaling {
        LayerScaling {
            layer: "l".into(),
            class,
            times_us,
        }
    }

    #[test]
    fn amdahl_times_give_back_their_serial_fraction() {
        let threads = [1, 2, 4];
        let s = 0.2;
        let t = |t1: f64| threads.map(|k| t1 / speedup(k as u32, s)).to_vec();
        let layers = vec![
            layer(OpClass::Conv3x3s1, t(1000.0)),
            layer(OpClass::Conv3x3s1, t(500.0)),
        ];
        let fits = fit_classes(&threads, &layers);
        assert_eq!(fits.len(), 1);
        assert!((fits[0].serial_fraction.unwrap() - s).abs() < 1e-9);
        assert!((fits[0].speedups[2] - speedup(4, s)).abs() < 1e-9);
        assert_eq!(fits[0].share, 1.0);
    }

    #[test]
    fn fractions_are_clamped_and_small_classes_not_fitted() {
        let threads = [1, 2];
        let layers = vec![
            // slower on two threads: more than serial
            layer(OpClass::Conv, vec![1000.0, 1200.0]),
            // faster than linear
            layer(OpClass::Fc, vec![1000.0, 400.0]),
            // 0.5% of the time
            layer(OpClass::Copy, vec![10.0, 10.0]),
        ];
        let fits = fit_classes(&threads, &layers);
        let of = |c| fits.iter().find(|f| f.class == c).unwrap();
        assert_eq!(of(OpClass::Conv).serial_fraction, Some(1.0));
        assert_eq!(of(OpClass::Fc).serial_fraction, Some(0.0));
        assert_eq!(of(OpClass::Copy).serial_fraction, None);
        let text = table(&threads, &fits);
        assert!(text.contains("x2") && text.contains("copy"), "{text}");
        let lines = toml_lines(&fits);
        assert!(lines.contains("[unit.classes.conv]\nserial_fraction = 1.000"));
        assert!(!lines.contains("copy"));
    }

    #[test]
    fn no_fit_without_a_one_thread_column() {
        let fits = fit_classes(&[2, 4], &[layer(OpClass::Conv, vec![600.0, 400.0])]);
        assert_eq!(fits[0].serial_fraction, None);
        assert!(fits[0].speedups.is_empty());
    }
}
