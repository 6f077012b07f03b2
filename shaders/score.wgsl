// Token-wise scoring against textual subspaces (METHOD.md B6, A4).
// Bindings: group 0 = patches, weights, text_normal, text_abnormal (read), probs (read_write);
// group 1 binding 0 = ScoreParams.

const WG: u32 = 64u;
const MAX_SUBSPACES: u32 = 64u;
// F.normalize's floor on the norm.
const NORM_EPS: f32 = 1e-12;

struct ScoreParams {
    tokens: u32,
    dim: u32,
    subspaces: u32,
    // 0: mix embeddings, 1: mix probabilities.
    mix: u32,
    temperature: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> patches: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> text_normal: array<f32>;
@group(0) @binding(3) var<storage, read> text_abnormal: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(1) @binding(0) var<uniform> params: ScoreParams;

var<workgroup> w_row: array<f32, 64>;
var<workgroup> partial: array<vec4<f32>, 64>;

fn reduce4(lid: u32, v: vec4<f32>) -> vec4<f32> {
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

// softmax([normal, abnormal] / τ)[abnormal], max-subtracted as PyTorch's softmax.
fn abnormal_probability(normal: f32, abnormal: f32) -> f32 {
    let a = normal / params.temperature;
    let b = abnormal / params.temperature;
    let m = max(a, b);
    let ea = exp(a - m);
    let eb = exp(b - m);
    return eb / (ea + eb);
}

// token_probabilities: per token i (a row of `patches`, L2-normalised) and its subspace weights
// w_i (a row of `weights`):
//   mix 0: p_i = softmax([⟨P_i, n̂_i⟩, ⟨P_i, â_i⟩]/τ)[1], n̂_i = normalize(Σ_m w_im t_n^m), â_i alike;
//   mix 1: p_i = Σ_m w_im softmax([⟨P_i, t_n^m⟩, ⟨P_i, t_a^m⟩]/τ)[1].
// Dispatch: `tokens` workgroups of 64, folded into x and y by `grid_for`.
@compute @workgroup_size(WG)
fn token_probabilities(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    // Uniform across the workgroup, so returning keeps barriers in uniform control flow.
    if (row >= params.tokens) { return; }
    let d = params.dim;
    let m = params.subspaces;
    if (lid < m) { w_row[lid] = weights[row * m + lid]; }
    workgroupBarrier();
    let p_base = row * d;
    if (params.mix == 0u) {
        // (‖u_n‖², ⟨P, u_n⟩, ‖u_a‖², ⟨P, u_a⟩) with u = Σ_m w_m t^m.
        var acc = vec4<f32>(0.0);
        for (var c = lid; c < d; c += WG) {
            var un = 0.0;
            var ua = 0.0;
            for (var j = 0u; j < m; j++) {
                un += w_row[j] * text_normal[j * d + c];
                ua += w_row[j] * text_abnormal[j * d + c];
            }
            let p = patches[p_base + c];
            acc += vec4<f32>(un * un, p * un, ua * ua, p * ua);
        }
        let t = reduce4(lid, acc);
        if (lid == 0u) {
            let normal = t.y / max(sqrt(t.x), NORM_EPS);
            let abnormal = t.w / max(sqrt(t.z), NORM_EPS);
            probs[row] = abnormal_probability(normal, abnormal);
        }
    } else {
        var total = 0.0;
        for (var j = 0u; j < m; j++) {
            var acc = vec4<f32>(0.0);
            for (var c = lid; c < d; c += WG) {
                let p = patches[p_base + c];
                acc += vec4<f32>(p * text_normal[j * d + c], p * text_abnormal[j * d + c], 0.0, 0.0);
            }
            let t = reduce4(lid, acc);
            total += w_row[j] * abnormal_probability(t.x, t.y);
        }
        if (lid == 0u) { probs[row] = total; }
    }
}
