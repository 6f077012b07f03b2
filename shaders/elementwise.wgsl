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
