// Fused multi-head attention (flash-style online softmax) over a packed [q | k | v] tensor.
// Each workgroup takes 64 queries of one (batch item, head); each invocation owns one query and
// keeps its running max, running sum and output row in registers, while the workgroup streams
// keys and values through shared memory 16 at a time. Memory use is O(T·W): the T×T score
// matrix is never stored.
// Dispatch: (ceil(T / 64), heads, batch) workgroups.
// Bindings: group 0 = qkv (read, [B, T, row_stride]), out (read_write, [B, T, out_stride]);
// group 1 binding 0 = AttentionParams. The q/k/v column offsets select the form: standard
// (0, W, 2W) or value-value (2W, 2W, 2W, METHOD.md A2).

const QUERIES: u32 = 64u;
const KEYS: u32 = 16u;
const MAX_HEAD_DIM: u32 = 128u;
// Stands in for −∞ (Tint rejects literals that round past f32::MAX).
const NEG_LARGE: f32 = -3.0e38;

struct AttentionParams {
    tokens: u32,
    head_dim: u32,
    row_stride: u32,
    out_stride: u32,
    q_offset: u32,
    k_offset: u32,
    v_offset: u32,
    causal: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(1) @binding(0) var<uniform> params: AttentionParams;

var<workgroup> k_tile: array<f32, 2048>; // KEYS × MAX_HEAD_DIM
var<workgroup> v_tile: array<f32, 2048>;

@compute @workgroup_size(64)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = params.tokens;
    let d = params.head_dim;
    let head = wid.y;
    let item_base = wid.z * t * params.row_stride;
    let query = wid.x * QUERIES + lid;
    let has_query = query < t;

    var q: array<f32, 128>;
    var acc: array<f32, 128>;
    if (has_query) {
        let q_base = item_base + query * params.row_stride + params.q_offset + head * d;
        for (var j = 0u; j < d; j++) { q[j] = qkv[q_base + j] * params.scale; }
    }
    var run_max = NEG_LARGE;
    var run_sum = 0.0;

    // Causal: no query of this workgroup looks past its last query.
    var key_end = t;
    if (params.causal != 0u) { key_end = min(t, wid.x * QUERIES + QUERIES); }

    for (var k0 = 0u; k0 < key_end; k0 += KEYS) {
        for (var e = lid; e < KEYS * d; e += QUERIES) {
            let kr = e / d;
            let kc = e % d;
            var kv = 0.0;
            var vv = 0.0;
            if (k0 + kr < t) {
                let row = item_base + (k0 + kr) * params.row_stride + head * d + kc;
                kv = qkv[row + params.k_offset];
                vv = qkv[row + params.v_offset];
            }
            k_tile[kr * MAX_HEAD_DIM + kc] = kv;
            v_tile[kr * MAX_HEAD_DIM + kc] = vv;
        }
        workgroupBarrier();
        if (has_query) {
            var s: array<f32, 16>;
            var tile_max = NEG_LARGE;
            for (var j = 0u; j < KEYS; j++) {
                let key = k0 + j;
                var score = NEG_LARGE;
                if (key < t && (params.causal == 0u || key <= query)) {
                    score = 0.0;
                    for (var c = 0u; c < d; c++) { score = fma(q[c], k_tile[j * MAX_HEAD_DIM + c], score); }
                }
                s[j] = score;
                tile_max = max(tile_max, score);
            }
            if (tile_max > NEG_LARGE) {
                let new_max = max(run_max, tile_max);
                let correction = exp(run_max - new_max);
                run_sum *= correction;
                for (var c = 0u; c < d; c++) { acc[c] *= correction; }
                for (var j = 0u; j < KEYS; j++) {
                    if (s[j] == NEG_LARGE) { continue; }
                    let w = exp(s[j] - new_max);
                    run_sum += w;
                    for (var c = 0u; c < d; c++) { acc[c] = fma(w, v_tile[j * MAX_HEAD_DIM + c], acc[c]); }
                }
                run_max = new_max;
            }
        }
        workgroupBarrier();
    }
    if (has_query) {
        let o_base = (wid.z * t + query) * params.out_stride + head * d;
        let inv = 1.0 / run_sum;
        for (var c = 0u; c < d; c++) { out[o_base + c] = acc[c] * inv; }
    }
}
