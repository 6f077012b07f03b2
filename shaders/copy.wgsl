// Copies of contiguous element ranges: row slices and row concatenation of row-major matrices
// are both one contiguous range per operand.
// Dispatch: ceil(n / WG) workgroups, folded into x and y by `grid_for`; one invocation per element.
// Bindings: group 0 = src (read), dst (read_write); group 1 binding 0 = CopyParams.

override WG: u32 = 256u;

struct CopyParams {
    n: u32,
    src_offset: u32,
    dst_offset: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(1) @binding(0) var<uniform> params: CopyParams;

// copy_range: dst[dst_offset + i] = src[src_offset + i] for i < n.
@compute @workgroup_size(WG)
fn copy_range(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= params.n) { return; }
    dst[params.dst_offset + i] = src[params.src_offset + i];
}
