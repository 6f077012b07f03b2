// Row normalisations: one workgroup per row of `cols` elements, WG invocations striding the row.
// Dispatch: `rows` workgroups folded into x and y by `grid_for`.
// Bindings: group 0 = inputs (read) then output (read_write); group 1 binding 0 = LayerNormParams.
// WG must be a power of two (tree reduction); both sums are centred two-pass in f32.

override WG: u32 = 256u;
// gamma and beta stored as packed f16 (read with unpack2x16float) instead of f32 bits.
override WEIGHT_F16: bool = false;

const L2_NORM_EPS: f32 = 1e-12;

struct LayerNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<u32>;
@group(0) @binding(2) var<storage, read> beta: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// l2_normalize has no weights: its output is binding 1.
@group(0) @binding(1) var<storage, read_write> l2_out: array<f32>;
@group(1) @binding(0) var<uniform> params: LayerNormParams;

var<workgroup> partial: array<f32, 256>;

fn decode_weight(word: u32, i: u32) -> f32 {
    if (WEIGHT_F16) {
        let pair = unpack2x16float(word);
        return select(pair.x, pair.y, (i & 1u) == 1u);
    }
    return bitcast<f32>(word);
}

fn weight_word(i: u32) -> u32 {
    return select(i, i >> 1u, WEIGHT_F16);
}

fn workgroup_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            partial[lid] = partial[lid] + partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// layer_norm: y[r, j] = (x[r, j] - mean_r) / sqrt(var_r + eps) * gamma[j] + beta[j].
@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.rows) { return; }
    let cols = params.cols;
    let base = row * cols;
    var s = 0.0;
    for (var j = lid; j < cols; j += WG) { s += x[base + j]; }
    let mean = workgroup_sum(lid, s) / f32(cols);
    var v = 0.0;
    for (var j = lid; j < cols; j += WG) { let d = x[base + j] - mean; v += d * d; }
    let inv = 1.0 / sqrt(workgroup_sum(lid, v) / f32(cols) + params.eps);
    for (var j = lid; j < cols; j += WG) {
        let g = decode_weight(gamma[weight_word(j)], j);
        let b = decode_weight(beta[weight_word(j)], j);
        y[base + j] = (x[base + j] - mean) * inv * g + b;
    }
}

// l2_normalize: l2_out[r, j] = x[r, j] / max(||x[r]||, 1e-12).
@compute @workgroup_size(WG)
fn l2_normalize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params.rows) { return; }
    let cols = params.cols;
    let base = row * cols;
    var s = 0.0;
    for (var j = lid; j < cols; j += WG) { let v = x[base + j]; s += v * v; }
    let inv = 1.0 / max(sqrt(workgroup_sum(lid, s)), L2_NORM_EPS);
    for (var j = lid; j < cols; j += WG) { l2_out[base + j] = x[base + j] * inv; }
}
