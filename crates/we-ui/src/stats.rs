//! Rolling quantiles of tick times for the charts (pure functions).

/// Ticks each rolling quantile looks back over.
pub const TICK_WINDOW: usize = 100;

/// The `q` quantile (0..=1, nearest rank, as the runtime's own report) of
/// `values`; 0 for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// For each position `i`, the `q` quantile of the `window` values ending at `i`
/// (fewer at the start).
pub fn rolling_quantile(values: &[f64], window: usize, q: f64) -> Vec<f64> {
    let window = window.max(1);
    (0..values.len())
        .map(|i| quantile(&values[(i + 1).saturating_sub(window)..=i], q))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    }

    #[test]
    fn rolling_quantiles_look_back_over_the_window() {
        let v = [5.0, 1.0, 9.0, 2.0, 2.0];
        assert_eq!(rolling_quantile(&v, 2, 1.0), vec![5.0, 5.0, 9.0, 9.0, 2.0]);
        assert_eq!(rolling_quantile(&v, 3, 0.5), vec![5.0, 1.0, 5.0, 2.0, 2.0]);
        assert!(rolling_quantile(&[], 3, 0.5).is_empty());
    }
}
