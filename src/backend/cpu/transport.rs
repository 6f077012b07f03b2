//! CPU twins of `shaders/transport.wgsl`: log-domain Sinkhorn and per-row top-K (METHOD.md B4–B5).
//!
//! Sinkhorn follows the PLOT-style loop TokenCLIP's reading rests on: row scaling `r` and
//! column scaling `c` start at 1 (log 0); each iteration updates `r` from `c`, then `c` from
//! `r`, and stops when the mean absolute change of `r` (not of its log) is below `tol`. The plan
//! is `r_i · exp(−C_im/ε) · c_m`, all in the log domain.

use crate::backend::SinkhornParams;

fn log_sum_exp(values: impl Iterator<Item = f32> + Clone) -> f32 {
    let max = values.clone().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f32>().ln()
}

/// Transport plan for one `[n, m]` cost matrix with uniform marginals `1/n`, `1/m`.
/// Returns the number of iterations run.
pub fn sinkhorn(cost: &[f32], n: usize, m: usize, p: SinkhornParams, plan: &mut [f32]) -> u32 {
    let inv_eps = 1.0 / p.eps;
    let (log_a, log_b) = (-(n as f32).ln(), -(m as f32).ln());
    let mut log_r = vec![0.0f32; n];
    let mut log_c = vec![0.0f32; m];
    let mut iters = 0;
    while iters < p.max_iters {
        iters += 1;
        let mut change = 0.0f32;
        for (i, lr) in log_r.iter_mut().enumerate() {
            let row = &cost[i * m..(i + 1) * m];
            let new = log_a - log_sum_exp(row.iter().zip(&log_c).map(|(&c, &g)| g - c * inv_eps));
            change += (new.exp() - lr.exp()).abs();
            *lr = new;
        }
        for (j, lc) in log_c.iter_mut().enumerate() {
            *lc = log_b - log_sum_exp((0..n).map(|i| log_r[i] - cost[i * m + j] * inv_eps));
        }
        if change / (n as f32) < p.tol {
            break;
        }
    }
    for i in 0..n {
        for j in 0..m {
            plan[i * m + j] = (log_r[i] - cost[i * m + j] * inv_eps + log_c[j]).exp();
        }
    }
    iters
}

/// Keeps the `k` largest entries of each `m`-wide row (lower index wins ties), zeroes the rest,
/// and rescales the kept ones to sum to 1 (to `1/k` each if they sum to 0).
pub fn top_k_renorm(x: &[f32], m: usize, k: usize, out: &mut [f32]) {
    for (row, y) in x.chunks_exact(m).zip(out.chunks_exact_mut(m)) {
        y.fill(0.0);
        let mut kept = [false; crate::backend::check::MAX_SUBSPACES];
        let mut sum = 0.0f32;
        for _ in 0..k {
            let mut best = usize::MAX;
            for j in 0..m {
                if !kept[j] && (best == usize::MAX || row[j] > row[best]) {
                    best = j;
                }
            }
            kept[best] = true;
            sum += row[best];
        }
        for j in (0..m).filter(|&j| kept[j]) {
            y[j] = if sum > 0.0 { row[j] / sum } else { 1.0 / k as f32 };
        }
    }
}
