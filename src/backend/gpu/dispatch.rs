//! Workgroup grids: one place that turns "this many workgroups" into a dispatch the device
//! accepts, folding into y above `max_compute_workgroups_per_dimension` (65,535 in browsers).

/// Folds `groups` workgroups into `(x, y)` with `x ≤ max_per_dim`. Kernels rebuild the linear
/// index as `wid.y · num_workgroups.x + wid.x` and return past the end.
pub fn grid_for(groups: u32, max_per_dim: u32) -> (u32, u32) {
    let groups = groups.max(1);
    if groups <= max_per_dim {
        return (groups, 1);
    }
    let y = groups.div_ceil(max_per_dim);
    (groups.div_ceil(y), y)
}
