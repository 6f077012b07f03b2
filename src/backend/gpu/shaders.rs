//! The shader registry: every WGSL file, every entry point in it, its binding layout, its params
//! struct and the override values it is built with. Pipelines are built from this list at
//! backend creation, and `tests/shaders.rs` validates every row with naga, so a kernel missing
//! here is a test failure, not a run-time surprise.

/// A WGSL source file (one per op family).
#[derive(Debug, Clone, Copy)]
pub struct ShaderFile {
    /// Family name = file stem under `shaders/`.
    pub family: &'static str,
    /// The WGSL text, as stored.
    pub source: &'static str,
}

/// Every shader file, by family.
pub const FILES: &[ShaderFile] = &[
    ShaderFile { family: "attention", source: include_str!("../../../shaders/attention.wgsl") },
    ShaderFile { family: "blur", source: include_str!("../../../shaders/blur.wgsl") },
    ShaderFile { family: "copy", source: include_str!("../../../shaders/copy.wgsl") },
    ShaderFile { family: "elementwise", source: include_str!("../../../shaders/elementwise.wgsl") },
    ShaderFile { family: "matmul", source: include_str!("../../../shaders/matmul.wgsl") },
    ShaderFile { family: "norm", source: include_str!("../../../shaders/norm.wgsl") },
    ShaderFile { family: "patch_embed", source: include_str!("../../../shaders/patch_embed.wgsl") },
    ShaderFile { family: "resize", source: include_str!("../../../shaders/resize.wgsl") },
    ShaderFile { family: "softmax", source: include_str!("../../../shaders/softmax.wgsl") },
    ShaderFile { family: "score", source: include_str!("../../../shaders/score.wgsl") },
    ShaderFile { family: "transport", source: include_str!("../../../shaders/transport.wgsl") },
];

/// Every entry point: how it binds and which variants exist.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    /// Shader family (file stem).
    pub family: &'static str,
    /// WGSL entry point = op name.
    pub entry: &'static str,
    /// Read-only storage bindings (group 0, bindings 0..inputs).
    pub inputs: u32,
    /// Read-write storage bindings (group 0, after the inputs).
    pub outputs: u32,
    /// The WGSL name of the params struct bound at group 1 binding 0.
    pub params: &'static str,
    /// Size in bytes of the Rust twin of that struct.
    pub params_size: u64,
    /// Override axes: name and the values built. Every combination is one pipeline.
    pub overrides: &'static [(&'static str, &'static [f64])],
}

impl KernelSpec {
    /// Every override combination, in a fixed order (the first axis varies slowest).
    pub fn variants(&self) -> Vec<Vec<(&'static str, f64)>> {
        let mut out = vec![Vec::new()];
        for (name, values) in self.overrides {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |&v| {
                        let mut p = prefix.clone();
                        p.push((*name, v));
                        p
                    })
                })
                .collect();
        }
        out
    }
}

const BOOL: &[f64] = &[0.0, 1.0];
/// Workgroup sizes built for the row and elementwise kernels: 64 for narrow rows, 256 otherwise.
pub const ROW_WG: &[f64] = &[64.0, 256.0];

macro_rules! size_of_params {
    ($t:ty) => {
        std::mem::size_of::<$t>() as u64
    };
}

use super::params::*;

/// Every kernel, by (family, entry).
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        family: "attention",
        entry: "attention",
        inputs: 1,
        outputs: 1,
        params: "AttentionParams",
        params_size: size_of_params!(AttentionParams),
        overrides: &[],
    },
    KernelSpec {
        family: "blur",
        entry: "gaussian_blur",
        inputs: 2,
        outputs: 1,
        params: "BlurParams",
        params_size: size_of_params!(BlurParams),
        overrides: &[("AXIS", BOOL)],
    },
    KernelSpec {
        family: "copy",
        entry: "copy_range",
        inputs: 1,
        outputs: 1,
        params: "CopyParams",
        params_size: size_of_params!(CopyParams),
        overrides: &[],
    },
    KernelSpec {
        family: "elementwise",
        entry: "quick_gelu",
        inputs: 1,
        outputs: 1,
        params: "ElementwiseParams",
        params_size: size_of_params!(ElementwiseParams),
        overrides: &[],
    },
    KernelSpec {
        family: "elementwise",
        entry: "gelu",
        inputs: 1,
        outputs: 1,
        params: "ElementwiseParams",
        params_size: size_of_params!(ElementwiseParams),
        overrides: &[],
    },
    KernelSpec {
        family: "elementwise",
        entry: "scale",
        inputs: 1,
        outputs: 1,
        params: "ElementwiseParams",
        params_size: size_of_params!(ElementwiseParams),
        overrides: &[],
    },
    KernelSpec {
        family: "elementwise",
        entry: "affine",
        inputs: 1,
        outputs: 1,
        params: "ElementwiseParams",
        params_size: size_of_params!(ElementwiseParams),
        overrides: &[],
    },
    KernelSpec {
        family: "elementwise",
        entry: "add",
        inputs: 2,
        outputs: 1,
        params: "ElementwiseParams",
        params_size: size_of_params!(ElementwiseParams),
        overrides: &[],
    },
    KernelSpec {
        family: "matmul",
        entry: "matmul",
        inputs: 3,
        outputs: 1,
        params: "MatmulParams",
        params_size: size_of_params!(MatmulParams),
        overrides: &[("WEIGHT_F16", BOOL), ("B_TRANSPOSED", BOOL), ("HAS_BIAS", BOOL)],
    },
    KernelSpec {
        family: "norm",
        entry: "layer_norm",
        inputs: 3,
        outputs: 1,
        params: "LayerNormParams",
        params_size: size_of_params!(LayerNormParams),
        overrides: &[("WG", ROW_WG), ("WEIGHT_F16", BOOL)],
    },
    KernelSpec {
        family: "norm",
        entry: "l2_normalize",
        inputs: 1,
        outputs: 1,
        params: "LayerNormParams",
        params_size: size_of_params!(LayerNormParams),
        overrides: &[("WG", ROW_WG)],
    },
    KernelSpec {
        family: "patch_embed",
        entry: "im2col",
        inputs: 1,
        outputs: 1,
        params: "Im2colParams",
        params_size: size_of_params!(Im2colParams),
        overrides: &[],
    },
    KernelSpec {
        family: "resize",
        entry: "resize_bilinear",
        inputs: 1,
        outputs: 1,
        params: "ResizeParams",
        params_size: size_of_params!(ResizeParams),
        overrides: &[],
    },
    KernelSpec {
        family: "score",
        entry: "token_probabilities",
        inputs: 4,
        outputs: 1,
        params: "ScoreParams",
        params_size: size_of_params!(ScoreParams),
        overrides: &[],
    },
    KernelSpec {
        family: "softmax",
        entry: "softmax",
        inputs: 1,
        outputs: 1,
        params: "SoftmaxParams",
        params_size: size_of_params!(SoftmaxParams),
        overrides: &[("WG", ROW_WG)],
    },
    KernelSpec {
        family: "softmax",
        entry: "row_max",
        inputs: 1,
        outputs: 1,
        params: "SoftmaxParams",
        params_size: size_of_params!(SoftmaxParams),
        overrides: &[("WG", ROW_WG)],
    },
    KernelSpec {
        family: "transport",
        entry: "sinkhorn",
        inputs: 1,
        outputs: 2,
        params: "SinkhornParams",
        params_size: size_of_params!(SinkhornParams),
        overrides: &[],
    },
    KernelSpec {
        family: "transport",
        entry: "top_k_renorm",
        inputs: 1,
        outputs: 1,
        params: "TopKParams",
        params_size: size_of_params!(TopKParams),
        overrides: &[],
    },
];

/// The source of a family's file.
pub fn source(family: &str) -> Option<&'static str> {
    FILES.iter().find(|f| f.family == family).map(|f| f.source)
}
