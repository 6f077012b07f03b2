// One pass of a separable Gaussian filter over each [H, W] plane, SciPy `gaussian_filter`
// semantics: mode "reflect" (half-sample symmetric, repeated for any offset), weights normalised
// on the host in f64. The launcher records AXIS = 0 (along H, as SciPy does first), then AXIS = 1.
// Dispatch: ceil(C · H · W / WG) workgroups folded by `grid_for`; one invocation per element.
// Bindings: group 0 = x (read), weights (read, 2·radius + 1 taps), y (read_write);
// group 1 binding 0 = BlurParams.

override WG: u32 = 256u;
// 0: filter along H (between rows); 1: along W (within a row).
override AXIS: u32 = 0u;

struct BlurParams {
    channels: u32,
    height: u32,
    width: u32,
    radius: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(1) @binding(0) var<uniform> params: BlurParams;

// Half-sample symmetric about -0.5 (i and -1 - i read the same sample), period 2n. The modulo is
// taken on non-negative values only: WGSL defines `%` for negative i32, but GLSL (wgpu's GL
// backend) leaves it undefined, and llvmpipe's GL gave wrong taps near the edges with it.
fn reflect_index(i: i32, n: i32) -> i32 {
    let period = 2 * n;
    var j = i;
    if (j < 0) { j = -1 - j; }
    var m = i32(u32(j) % u32(period));
    if (m >= n) { m = period - 1 - m; }
    return m;
}

@compute @workgroup_size(WG)
fn gaussian_blur(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * WG + lid;
    let h = params.height;
    let w = params.width;
    if (i >= params.channels * h * w) { return; }
    let plane = (i / (h * w)) * h * w;
    let row = i32((i % (h * w)) / w);
    let col = i32(i % w);
    let r = i32(params.radius);
    var acc = 0.0;
    for (var t = 0; t <= 2 * r; t++) {
        var src: u32;
        if (AXIS == 0u) {
            src = u32(reflect_index(row + t - r, i32(h))) * w + u32(col);
        } else {
            src = u32(row) * w + u32(reflect_index(col + t - r, i32(w)));
        }
        acc += weights[t] * x[plane + src];
    }
    y[i] = acc;
}
