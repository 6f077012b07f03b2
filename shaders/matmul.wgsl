// Register-tiled matrix product c = a · b (+ bias), per batch item.
// Each workgroup computes a 64×64 tile of c; each of its 256 invocations a 4×4 block, strided by
// 16 rows/columns so shared-memory reads of a row of b_tile are contiguous across invocations.
// Dispatch: (ceil(N / 64), ceil(M / 64), batch) workgroups.
// Bindings: group 0 = a (read), b (read), bias (read), c (read_write); group 1 binding 0 =
// MatmulParams. a and c are f32; b and bias are f32 bits or packed f16 pairs (WEIGHT_F16).

// b and bias are stored as packed f16 pairs (read with unpack2x16float) instead of f32 bits.
override WEIGHT_F16: bool = false;
// b is [N, K] (a PyTorch Linear weight, c = a · bᵀ) instead of [K, N].
override B_TRANSPOSED: bool = false;
// Add bias[n] to every row (the bias binding is a placeholder when false).
override HAS_BIAS: bool = false;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    // Elements between consecutive batch items of a and of b (0: b shared by every item).
    a_batch_stride: u32,
    b_batch_stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<u32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(1) @binding(0) var<uniform> params: MatmulParams;

// Tiles stored k-major: a_tile[kk * TILE + row], b_tile[kk * TILE + col].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// Element i of a weight binding's words: f32 bits, or half i of a packed f16 pair.
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

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = params.m;
    let n = params.n;
    let k = params.k;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let a_base = wid.z * params.a_batch_stride;
    let b_base = wid.z * params.b_batch_stride;
    let tx = lid % 16u;
    let ty = lid / 16u;

    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < k; k0 += TILE_K) {
        for (var e = lid; e < TILE * TILE_K; e += THREADS) {
            // a: consecutive invocations read consecutive k of one row.
            let ar = e / TILE_K;
            let ak = e % TILE_K;
            var av = 0.0;
            if (row0 + ar < m && k0 + ak < k) { av = a[a_base + (row0 + ar) * k + k0 + ak]; }
            a_tile[ak * TILE + ar] = av;
            // b: read along its contiguous axis.
            var bk: u32;
            var bc: u32;
            if (B_TRANSPOSED) { bc = e / TILE_K; bk = e % TILE_K; } else { bk = e / TILE; bc = e % TILE; }
            var bv = 0.0;
            if (col0 + bc < n && k0 + bk < k) {
                var bi: u32;
                if (B_TRANSPOSED) { bi = (col0 + bc) * k + k0 + bk; } else { bi = (k0 + bk) * n + col0 + bc; }
                bv = decode_weight(b[weight_word(b_base + bi)], b_base + bi);
            }
            b_tile[bk * TILE + bc] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[kk * TILE + ty + 16u * i];
                bv[i] = b_tile[kk * TILE + tx + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    let c_base = wid.z * m * n;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + ty + 16u * i;
        if (row >= m) { continue; }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx + 16u * j;
            if (col >= n) { continue; }
            var v = acc[i][j];
            if (HAS_BIAS) { v += decode_weight(bias[weight_word(col)], col); }
            c[c_base + row * n + col] = v;
        }
    }
}
