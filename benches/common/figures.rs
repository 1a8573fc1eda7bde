//! Summary statistics of the benches' measurements (`#[path]`-included).
#![allow(dead_code)]

/// Nearest-rank percentile (`quantile` in 0..=1) of sorted samples: with 30 samples, p99 is
/// the slowest one. `None` when there are none.
pub fn percentile<T: Copy>(sorted: &[T], quantile: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median (for an even count, the upper of the two middle values); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}
