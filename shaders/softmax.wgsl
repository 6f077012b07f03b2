// Row reductions, one workgroup per row of `cols` elements: `softmax` (max-subtracted, sums in
// f32; y has x's shape) and `row_max` (y[row] = the row's largest value).
// Dispatch: `rows` workgroups folded into x and y by `grid_for`.
// Bindings: group 0 = x (read), y (read_write); group 1 binding 0 = SoftmaxParams.

override WG: u32 = 256u;

struct SoftmaxParams {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: SoftmaxParams;

var<workgroup> partial: array<f32, 256>;

// Tree reduction (WG is a power of two); `use_max` picks max instead of sum.
fn workgroup_reduce(lid: u32, v: f32, use_max: bool) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let a = partial[lid];
            let b = partial[lid + s];
            partial[lid] = select(a + b, max(a, b), use_max);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.rows) { return; }
    let cols = params.cols;
    let base = row * cols;
    var m = -3.0e38; // stands in for −∞ (Tint rejects literals that round past f32::MAX)
    for (var j = lid; j < cols; j += WG) { m = max(m, x[base + j]); }
    let top = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < cols; j += WG) { s += exp(x[base + j] - top); }
    let inv = 1.0 / workgroup_reduce(lid, s, false);
    for (var j = lid; j < cols; j += WG) { y[base + j] = exp(x[base + j] - top) * inv; }
}

@compute @workgroup_size(WG)
fn row_max(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.rows) { return; }
    let base = row * params.cols;
    var m = -3.0e38;
    for (var j = lid; j < params.cols; j += WG) { m = max(m, x[base + j]); }
    let total = workgroup_reduce(lid, m, true);
    if (lid == 0u) { y[row] = total; }
}
