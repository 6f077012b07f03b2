// Elementwise ops on flat f32 arrays.
// Dispatch: ceil(n / WG) workgroups, folded into x and y by `grid_for`; one invocation per element.
// Bindings: group 0 = inputs (read) then output (read_write); group 1 binding 0 = ElementwiseParams.

override WG: u32 = 256u;

const QUICK_GELU_ALPHA: f32 = 1.702;

struct ElementwiseParams {
    n: u32,
    factor: f32,
    shift: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x2: array<f32>;
// Unary ops write binding 1, binary ops binding 2 (inputs first, then outputs).
@group(0) @binding(1) var<storage, read_write> unary_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> binary_out: array<f32>;
@group(1) @binding(0) var<uniform> params: ElementwiseParams;

fn element_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// quick_gelu: unary_out[i] = x[i] * sigmoid(1.702 * x[i]).
@compute @workgroup_size(WG)
fn quick_gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    unary_out[i] = v / (1.0 + exp(-QUICK_GELU_ALPHA * v));
}

// gelu: unary_out[i] = x[i] * Phi(x[i]) = 0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz & Stegun
// 7.1.26 (|error| <= 1.5e-7), the coefficients PyTorch's vectorised CPU erf uses.
const ERF_P: f32 = 0.3275911;
const ERF_A1: f32 = 0.254829592;
const ERF_A2: f32 = -0.284496736;
const ERF_A3: f32 = 1.421413741;
const ERF_A4: f32 = -1.453152027;
const ERF_A5: f32 = 1.061405429;
const FRAC_1_SQRT_2: f32 = 0.70710678118654752;

@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    let v = x[i];
    let z = v * FRAC_1_SQRT_2;
    let a = abs(z);
    let t = 1.0 / (1.0 + ERF_P * a);
    let poly = ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t;
    let e = 1.0 - poly * exp(-a * a);
    let erf = select(e, -e, z < 0.0);
    unary_out[i] = 0.5 * v * (1.0 + erf);
}

// scale: unary_out[i] = x[i] * params.factor.
@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    unary_out[i] = x[i] * params.factor;
}

// affine: unary_out[i] = x[i] * params.factor + params.shift.
@compute @workgroup_size(WG)
fn affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    unary_out[i] = x[i] * params.factor + params.shift;
}

// add: binary_out[i] = x[i] + x2[i].
@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element_index(wid, nwg, lid);
    if (i >= params.n) { return; }
    binary_out[i] = x[i] + x2[i];
}
