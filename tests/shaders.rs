//! Every WGSL kernel parsed and validated by naga, per override variant, without a GPU; plus the
//! portable limits of DESIGN.md and the params-struct layouts shared with Rust.

use naga::back::pipeline_constants::process_overrides;
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use tokenclip::backend::gpu::shaders::{FILES, KERNELS};

/// Portable limits every variant must respect (browsers, software drivers).
const MAX_INVOCATIONS: u32 = 256;
const MAX_WORKGROUP_BYTES: u32 = 32 * 1024;
const MAX_STORAGE_BINDINGS: u32 = 8;
/// What core WebGPU guarantees: naga gates `unpack2x16float` behind this flag for old GL.
const PORTABLE_CAPABILITIES: Capabilities = Capabilities::SHADER_FLOAT16_IN_FLOAT32;

fn parse(family: &str, source: &str) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{family}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), PORTABLE_CAPABILITIES)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{family}.wgsl does not validate:\n{}", e.emit_to_string(source)));
    (module, info)
}

fn workgroup_bytes(module: &naga::Module) -> u32 {
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).expect("layout");
    module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| layouter[g.ty].size)
        .sum()
}

#[test]
fn every_shader_variant_validates() {
    let mut checked = 0;
    for spec in KERNELS {
        let file = FILES
            .iter()
            .find(|f| f.family == spec.family)
            .unwrap_or_else(|| panic!("no file for family {}", spec.family));
        let (module, info) = parse(spec.family, file.source);
        for variant in spec.variants() {
            let mut constants = naga::back::PipelineConstants::default();
            for (name, value) in &variant {
                constants.insert(name.to_string(), *value);
            }
            let (m, _) = process_overrides(&module, &info, Some((naga::ShaderStage::Compute, spec.entry)), &constants)
                .unwrap_or_else(|e| panic!("{}::{} {variant:?}: {e}", spec.family, spec.entry));
            let ep = m
                .entry_points
                .iter()
                .find(|e| e.name == spec.entry)
                .unwrap_or_else(|| panic!("entry {} missing", spec.entry));
            let [x, y, z] = ep.workgroup_size;
            assert!(
                x * y * z <= MAX_INVOCATIONS,
                "{}::{} {variant:?}: {} invocations",
                spec.family,
                spec.entry,
                x * y * z
            );
            let bytes = workgroup_bytes(&m);
            assert!(
                bytes <= MAX_WORKGROUP_BYTES,
                "{}::{} {variant:?}: {bytes} bytes of workgroup memory",
                spec.family,
                spec.entry
            );
            let storage = m
                .global_variables
                .iter()
                .filter(|(_, g)| matches!(g.space, naga::AddressSpace::Storage { .. }))
                .count() as u32;
            assert!(storage <= MAX_STORAGE_BINDINGS, "{}::{}: {storage} storage bindings", spec.family, spec.entry);
            assert_eq!(
                storage,
                spec.inputs + spec.outputs,
                "{}::{}: registry says {} inputs + {} outputs",
                spec.family,
                spec.entry,
                spec.inputs,
                spec.outputs
            );
            checked += 1;
        }
    }
    assert!(checked >= KERNELS.len());
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&dir).expect("shaders/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name");
            assert!(
                FILES.iter().any(|f| f.family == stem),
                "{} is not in the registry (backend/gpu/shaders.rs)",
                path.display()
            );
            assert!(KERNELS.iter().any(|k| k.family == stem), "{stem}.wgsl has no kernel in the registry");
        }
    }
}

#[test]
fn params_structs_match_wgsl_layout() {
    for spec in KERNELS {
        let source = FILES.iter().find(|f| f.family == spec.family).map(|f| f.source).unwrap_or_default();
        let (module, _) = parse(spec.family, source);
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        let (handle, _) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(spec.params))
            .unwrap_or_else(|| panic!("{}.wgsl has no struct {}", spec.family, spec.params));
        let size = u64::from(layouter[handle].size);
        assert_eq!(
            size, spec.params_size,
            "{}: WGSL {} is {size} bytes, Rust twin {} bytes",
            spec.entry, spec.params, spec.params_size
        );
        assert_eq!(size % 16, 0, "{} must be padded to 16 bytes for uniform use", spec.params);
    }
}
