// Bilinear resize of each [H, W] plane, PyTorch's align_corners=False rule:
// src = max(scale · (dst + 0.5) − 0.5, 0), scale = in / out, upper index clamped to the edge.
// Dispatch: ceil(C · out_h · out_w / WG) workgroups folded by `grid_for`; one invocation per
// output element. Bindings: group 0 = x (read), y (read_write); group 1 binding 0 = ResizeParams.

override WG: u32 = 256u;

struct ResizeParams {
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    scale_h: f32,
    scale_w: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: ResizeParams;

// Lower index, upper index and upper weight along one axis.
fn source_index(dst: u32, scale: f32, size: u32) -> vec3<f32> {
    let real = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
    let i0 = min(u32(real), size - 1u);
    let i1 = select(i0, i0 + 1u, i0 + 1u < size);
    return vec3<f32>(f32(i0), f32(i1), clamp(real - f32(i0), 0.0, 1.0));
}

@compute @workgroup_size(WG)
fn resize_bilinear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    let plane_out = params.out_h * params.out_w;
    if (i >= params.channels * plane_out) { return; }
    let ch = i / plane_out;
    let oy = (i % plane_out) / params.out_w;
    let ox = i % params.out_w;
    let sy = source_index(oy, params.scale_h, params.in_h);
    let sx = source_index(ox, params.scale_w, params.in_w);
    let base = ch * params.in_h * params.in_w;
    let w = params.in_w;
    let y0 = u32(sy.x) * w;
    let y1 = u32(sy.y) * w;
    let x0 = u32(sx.x);
    let x1 = u32(sx.y);
    let top = (1.0 - sx.z) * x[base + y0 + x0] + sx.z * x[base + y0 + x1];
    let bottom = (1.0 - sx.z) * x[base + y1 + x0] + sx.z * x[base + y1 + x1];
    y[i] = (1.0 - sy.z) * top + sy.z * bottom;
}
