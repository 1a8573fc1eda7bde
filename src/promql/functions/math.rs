//! Numeric helpers shared by functions and aggregations.

/// One step of Kahan–Neumaier summation: returns the new sum and compensation.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The q-quantile of `values` with linear interpolation between ranks (NaN sorts first).
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Least-squares slope and intercept of `points`, with x in seconds relative to `intercept_t`.
pub(crate) fn linear_regression(points: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let Some(&(_, init_y)) = points.first() else {
        return (f64::NAN, f64::NAN);
    };
    let mut const_y = true;
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    for (i, &(t, v)) in points.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let sum_x = sum_x + c_x;
    let sum_y = sum_y + c_y;
    let sum_xy = sum_xy + c_xy;
    let sum_x2 = sum_x2 + c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, vec![1.0]), f64::INFINITY);
    }

    #[test]
    fn regression_of_a_line() {
        let (slope, intercept) = linear_regression(&[(0, 1.0), (1000, 3.0), (2000, 5.0)], 0);
        assert!((slope - 2.0).abs() < 1e-12);
        assert!((intercept - 1.0).abs() < 1e-12);
    }
}
