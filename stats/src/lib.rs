//! Summary statistics of measured or simulated series: the one place where the project
//! defines percentiles, the median and the mean.
//!
//! **Percentile** ([`percentile`]) is the nearest-rank method: the `q`-th percentile of `n`
//! sorted values is the value of rank `ceil(q x n)` (1-based, clamped to `1..=n`), always
//! one of the values, never an interpolation. The simulator's and the rig's reports use it.
//!
//! **Median** ([`median`]) is the middle value, `sorted[n / 2]`: the upper of the two middle
//! values when `n` is even (where nearest-rank `percentile(0.5)` gives the lower one).
//!
//! [`index_percentile`] (`sorted[round(q x (n - 1))]`) is the older definition of the
//! profile CSV's p10/p90 and the validation suite's p90, kept so that their files do not
//! change; it agrees with [`median`] at `q = 0.5` and with [`percentile`] at many but not
//! all `(q, n)`.
//!
//! **Empty input** gives `None` everywhere; callers choose what an empty series reports
//! (the reports print zeros, see [`Summary`]).
#![warn(missing_docs)]

use std::cmp::Ordering;

/// A value a series can hold: totally ordered for sorting, convertible to `f64` for means.
pub trait Sample: Copy + Default {
    /// The value as `f64`.
    fn as_f64(self) -> f64;
    /// A total order (for floats, `f64::total_cmp`: NaN sorts after every number).
    fn total_cmp(&self, other: &Self) -> Ordering;
}

impl Sample for f64 {
    fn as_f64(self) -> f64 {
        self
    }
    fn total_cmp(&self, other: &Self) -> Ordering {
        f64::total_cmp(self, other)
    }
}

/// Integer samples: nanosecond times (the simulator's `Time`).
impl Sample for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn total_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}

/// Sorts `values` in place (the order every function here expects).
pub fn sort<T: Sample>(values: &mut [T]) {
    values.sort_unstable_by(T::total_cmp);
}

/// A sorted copy of `values`.
pub fn sorted<T: Sample>(values: &[T]) -> Vec<T> {
    let mut v = values.to_vec();
    sort(&mut v);
    v
}

/// The `q`-th percentile (`q` in 0..=1) of `sorted` by the nearest-rank method: the value of
/// 1-based rank `ceil(q x n)`, clamped to `1..=n`. `None` when `sorted` is empty.
pub fn percentile<T: Sample>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// The value at index `round(q x (n - 1))` of `sorted` (`q` in 0..=1, halves rounded up).
/// `None` when `sorted` is empty. The profile CSV's p10/p90 and the validation suite's p90
/// use it; new code uses [`percentile`].
pub fn index_percentile<T: Sample>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let i = (q * (n - 1) as f64).round() as usize;
    Some(sorted[i.min(n - 1)])
}

/// The middle value of `sorted`, `sorted[n / 2]` (the upper middle one when `n` is even).
/// `None` when `sorted` is empty.
pub fn median<T: Sample>(sorted: &[T]) -> Option<T> {
    sorted.get(sorted.len() / 2).copied()
}

/// The arithmetic mean of `values`, summed in the given order. `None` when empty.
pub fn mean<T: Sample>(values: &[T]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().map(|x| x.as_f64()).sum::<f64>() / values.len() as f64)
}

/// Mean, median, 95th percentile and maximum of a series, as the reports print them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary<T> {
    /// Mean (summed in sorted order).
    pub mean: f64,
    /// 50th percentile (nearest rank: the lower middle value when `n` is even).
    pub p50: T,
    /// 95th percentile (nearest rank).
    pub p95: T,
    /// Maximum.
    pub max: T,
}

impl<T: Sample> Summary<T> {
    /// The summary of `values` (any order); `None` when empty. The reports print an empty
    /// series as zeros: `Summary::of(v).unwrap_or_default()`.
    pub fn of(values: &[T]) -> Option<Summary<T>> {
        let v = sorted(values);
        Some(Summary {
            mean: mean(&v)?,
            p50: percentile(&v, 0.5)?,
            p95: percentile(&v, 0.95)?,
            max: *v.last()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 0.5), Some(10));
        assert_eq!(percentile(&v, 0.95), Some(19));
        assert_eq!(percentile(&v, 1.0), Some(20));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
    }

    #[test]
    fn median_is_the_upper_middle_and_index_percentile_rounds() {
        assert_eq!(median(&[1, 2, 3, 4]), Some(3));
        assert_eq!(median(&[1, 2, 3]), Some(2));
        let v: Vec<u64> = (0..20).collect();
        assert_eq!(index_percentile(&v, 0.5), median(&v));
        assert_eq!(index_percentile(&v, 0.1), Some(2)); // round(1.9)
        assert_eq!(percentile(&v, 0.1), Some(1)); // rank ceil(2.0) = 2
        assert_eq!(index_percentile(&v, 0.9), Some(17)); // round(17.1)
    }

    #[test]
    fn empty_input_gives_none() {
        let e: [f64; 0] = [];
        assert_eq!(percentile(&e, 0.5), None);
        assert_eq!(index_percentile(&e, 0.5), None);
        assert_eq!(median(&e), None);
        assert_eq!(mean(&e), None);
        assert_eq!(Summary::of(&e), None);
        assert_eq!(Summary::of(&e).unwrap_or_default(), Summary::default());
    }

    #[test]
    fn summary_of_unsorted_values() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        assert_eq!((s.p50, s.p95, s.max), (2.0, 4.0, 4.0));
        assert!(percentile(&sorted(&[f64::NAN, 1.0]), 1.0).unwrap().is_nan());
    }
}
