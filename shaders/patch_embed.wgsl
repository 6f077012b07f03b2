// Patch embedding, step 1 of 2: im2col. Gathers each p×p patch of a [C, H, W] image into one row
// of a [grid_h·grid_w, C·p·p] matrix, in (c, y, x) order (the conv weight's). Step 2 is the
// matmul kernel against the [O, C·p·p] weight (B_TRANSPOSED), recorded by the same launcher.
// Dispatch: ceil(rows · C·p·p / WG) workgroups folded by `grid_for`; one invocation per element.
// Bindings: group 0 = image (read), cols (read_write); group 1 binding 0 = Im2colParams.

override WG: u32 = 256u;

struct Im2colParams {
    channels: u32,
    height: u32,
    width: u32,
    patch_size: u32,
    grid_w: u32,
    total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> image: array<f32>;
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;
@group(1) @binding(0) var<uniform> params: Im2colParams;

@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    if (i >= params.total) { return; }
    let p = params.patch_size;
    let row_len = params.channels * p * p;
    let g = i / row_len;
    let r = i % row_len;
    let ch = r / (p * p);
    let py = (r / p) % p;
    let px = r % p;
    let y = (g / params.grid_w) * p + py;
    let x = (g % params.grid_w) * p + px;
    cols[i] = image[(ch * params.height + y) * params.width + x];
}
