// Optimal transport between tokens and subspaces (METHOD.md B4–B5).
// Bindings: group 0 = inputs (read) then outputs (read_write); group 1 binding 0 = the params.

const MAX_SUBSPACES: u32 = 64u;
// Stands in for −∞ (Tint rejects literals that round past f32::MAX).
const NEG_LARGE: f32 = -3.0e38;

struct SinkhornParams {
    tokens: u32,
    subspaces: u32,
    max_iters: u32,
    _pad0: u32,
    inv_eps: f32,
    tol: f32,
    _pad1: u32,
    _pad2: u32,
}

struct TopKParams {
    rows: u32,
    cols: u32,
    k: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> cost: array<f32>;
@group(0) @binding(1) var<storage, read_write> plan: array<f32>;
// Sinkhorn's log row scaling, one per token (scratch, [B, N]).
@group(0) @binding(2) var<storage, read_write> log_r: array<f32>;
@group(1) @binding(0) var<uniform> sinkhorn_params: SinkhornParams;

var<workgroup> partial: array<f32, 256>;
var<workgroup> log_c: array<f32, 64>;
var<workgroup> change: f32;

fn workgroup_reduce(lid: u32, v: f32, use_max: bool) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
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

// sinkhorn: log-domain Sinkhorn with uniform marginals, one workgroup per batch item.
// Row scaling r and column scaling c start at 1; each iteration sets
//   log r_i = −log N − LSE_m(log c_m − C_im/ε),  log c_m = −log M − LSE_i(log r_i − C_im/ε),
// and stops once mean_i |r_i − r_i(previous)| < tol. plan = exp(log r_i − C_im/ε + log c_m).
// Dispatch: (batch, 1, 1) workgroups of 256.
@compute @workgroup_size(256)
fn sinkhorn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = sinkhorn_params.tokens;
    let m = sinkhorn_params.subspaces;
    let inv_eps = sinkhorn_params.inv_eps;
    let cost_base = wid.x * n * m;
    let r_base = wid.x * n;
    let log_a = -log(f32(n));
    let log_b = -log(f32(m));
    for (var i = lid; i < n; i += 256u) { log_r[r_base + i] = 0.0; }
    if (lid < m) { log_c[lid] = 0.0; }
    workgroupBarrier();
    storageBarrier();

    for (var it = 0u; it < sinkhorn_params.max_iters; it++) {
        var local_change = 0.0;
        for (var i = lid; i < n; i += 256u) {
            var row_max = NEG_LARGE;
            for (var j = 0u; j < m; j++) {
                row_max = max(row_max, log_c[j] - cost[cost_base + i * m + j] * inv_eps);
            }
            var s = 0.0;
            for (var j = 0u; j < m; j++) {
                s += exp(log_c[j] - cost[cost_base + i * m + j] * inv_eps - row_max);
            }
            let updated = log_a - (row_max + log(s));
            local_change += abs(exp(updated) - exp(log_r[r_base + i]));
            log_r[r_base + i] = updated;
        }
        storageBarrier();
        workgroupBarrier();
        for (var j = 0u; j < m; j++) {
            var col_max = NEG_LARGE;
            for (var i = lid; i < n; i += 256u) {
                col_max = max(col_max, log_r[r_base + i] - cost[cost_base + i * m + j] * inv_eps);
            }
            col_max = workgroup_reduce(lid, col_max, true);
            var s = 0.0;
            for (var i = lid; i < n; i += 256u) {
                s += exp(log_r[r_base + i] - cost[cost_base + i * m + j] * inv_eps - col_max);
            }
            s = workgroup_reduce(lid, s, false);
            if (lid == 0u) { log_c[j] = log_b - (col_max + log(s)); }
        }
        let total_change = workgroup_reduce(lid, local_change, false);
        if (lid == 0u) { change = total_change / f32(n); }
        // workgroupUniformLoad makes the stopping test uniform, so every invocation leaves together.
        if (workgroupUniformLoad(&change) < sinkhorn_params.tol) { break; }
    }
    for (var e = lid; e < n * m; e += 256u) {
        let i = e / m;
        let j = e % m;
        plan[cost_base + e] = exp(log_r[r_base + i] - cost[cost_base + e] * inv_eps + log_c[j]);
    }
}

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(1) @binding(0) var<uniform> top_k_params: TopKParams;

// top_k_renorm: per row, keep the k largest entries (lower index wins ties), zero the rest and
// rescale the kept ones to sum to 1 (1/k each if they sum to 0).
// Dispatch: ceil(rows / 64) workgroups folded by `grid_for`; one invocation per row.
@compute @workgroup_size(64)
fn top_k_renorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (row >= top_k_params.rows) { return; }
    let m = top_k_params.cols;
    let base = row * m;
    var kept: array<bool, 64>;
    var sum = 0.0;
    for (var t = 0u; t < top_k_params.k; t++) {
        var best = m;
        for (var j = 0u; j < m; j++) {
            if (!kept[j] && (best == m || scores[base + j] > scores[base + best])) { best = j; }
        }
        kept[best] = true;
        sum += scores[base + best];
    }
    for (var j = 0u; j < m; j++) {
        var v = 0.0;
        if (kept[j]) { v = select(1.0 / f32(top_k_params.k), scores[base + j] / sum, sum > 0.0); }
        weights[base + j] = v;
    }
}
