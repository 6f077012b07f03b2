//! The PyTorch checkpoint reader (`tokenclip::clip::import::{torch, pickle, zip}`) against
//! fixtures written by torch (tools/make_torch_fixtures.py), and against damaged inputs made
//! here from those fixtures: every failure must be an error naming the file, never a panic.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tokenclip::clip::import::pickle::{self, Value};
use tokenclip::clip::import::torch::{self as tr, TorchCheckpoint, TorchDType, TorchFileKind};
use tokenclip::clip::import::zip::ZipArchive;
use tokenclip::ModelError;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenclip-torch-reader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn dtype_of(d: Dtype) -> TorchDType {
    match d {
        Dtype::F64 => TorchDType::F64,
        Dtype::F32 => TorchDType::F32,
        Dtype::F16 => TorchDType::F16,
        Dtype::BF16 => TorchDType::BF16,
        Dtype::I64 => TorchDType::I64,
        Dtype::I32 => TorchDType::I32,
        Dtype::I16 => TorchDType::I16,
        Dtype::I8 => TorchDType::I8,
        Dtype::U8 => TorchDType::U8,
        Dtype::BOOL => TorchDType::Bool,
        other => panic!("fixture dtype {other:?}"),
    }
}

fn to_f32(d: TorchDType, b: &[u8]) -> Option<Vec<f32>> {
    Some(match d {
        TorchDType::F32 => b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        TorchDType::F64 => b.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        TorchDType::F16 => b.chunks(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        TorchDType::BF16 => b.chunks(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => return None,
    })
}

/// Checks a checkpoint against the expected tensors written next to it by torch.
fn check_against_expected(pt: &Path, expected: &Path) -> TorchCheckpoint {
    let ck = TorchCheckpoint::open(pt).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(expected).unwrap();
    let exp = SafeTensors::deserialize(&bytes).unwrap();
    let mut want: Vec<String> = exp.names().into_iter().map(|s| s.to_string()).collect();
    want.sort();
    let got: Vec<String> = ck.tensors().keys().cloned().collect();
    assert_eq!(got, want, "{}: tensor names", pt.display());
    for name in &want {
        let e = exp.tensor(name).unwrap();
        let t = ck.tensor(name).unwrap();
        assert_eq!(t.dtype, dtype_of(e.dtype()), "{name}: dtype");
        assert_eq!(t.shape, e.shape(), "{name}: shape");
        assert_eq!(ck.read_bytes(name).unwrap(), e.data(), "{name}: bytes");
        match to_f32(t.dtype, e.data()) {
            Some(want) => {
                let got = ck.read_f32(name).unwrap();
                assert_eq!(got.len(), want.len());
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: f32 values");
            }
            None => assert!(matches!(ck.read_f32(name), Err(ModelError::DTypeMismatch { .. })), "{name}"),
        }
    }
    ck
}

fn check_fixture(stem: &str) -> TorchCheckpoint {
    check_against_expected(&fixture(&format!("{stem}.pt")), &fixture(&format!("{stem}.expected.safetensors")))
}

#[test]
fn state_dict_all_dtypes_and_layouts() {
    let ck = check_fixture("state_dict");
    assert!(!ck.is_torchscript());
    let t = ck.tensors();
    assert!(!t["transposed"].is_contiguous());
    assert_eq!(t["transposed"].strides, vec![1, 5]);
    assert_eq!((t["slice"].offset, t["slice"].shape.clone()), (3, vec![4]));
    assert_eq!(t["view_a"].storage, t["view_b"].storage);
    assert_eq!((t["view_b"].offset, t["view_b"].strides.clone()), (6, vec![6, 2]));
    assert_eq!(t["expanded"].strides, vec![1, 0]);
    assert!(t["scalar"].shape.is_empty());
    assert_eq!(ck.read_f32("scalar").unwrap(), vec![2.5]);
    assert_eq!(ck.read_bytes("empty").unwrap(), Vec::<u8>::new());
    assert!(matches!(ck.read_f32("nope"), Err(ModelError::MissingTensor { .. })));
}

#[test]
fn nested_dicts_are_flattened_and_other_values_kept() {
    let ck = check_fixture("nested");
    let Value::Dict(root) = ck.root() else { panic!("root is {:?}", ck.root()) };
    let get = |k: &str| &root.iter().find(|(key, _)| key.as_str() == Some(k)).unwrap().1;
    assert_eq!(get("epoch"), &Value::Int(3));
    assert_eq!(get("lr"), &Value::Float(0.1));
    assert_eq!(get("name"), &Value::Str("tokenclip".into()));
    assert_eq!(get("neg"), &Value::Int(-5));
    assert_eq!(get("big"), &Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0x40]));
    assert_eq!(get("blob"), &Value::Bytes(vec![0, 1]));
    assert_eq!(get("flags"), &Value::List(vec![Value::Bool(true), Value::Bool(false), Value::None]));
    assert_eq!(get("tup"), &Value::Tuple(vec![Value::Int(1), Value::Float(2.5), Value::Str("x".into())]));
}

#[test]
fn prompt_learner_checkpoint_at_protocol_4() {
    let ck = check_fixture("prompt_learner");
    assert!(ck.tensors().contains_key("prompt_learner.ctx_pos"));
}

#[test]
fn pickled_module_is_named_like_its_state_dict() {
    check_fixture("module");
}

#[test]
fn scripted_module_names_match_jit_state_dict() {
    let ck = check_fixture("scripted");
    assert!(ck.is_torchscript());
    let t = ck.tensors();
    for n in ["blocks.0.attn.in_proj_weight", "blocks.1.attn.out_proj.weight", "blocks.0.scale", "proj"] {
        assert!(t.contains_key(n), "{n}");
    }
    assert!(!t.contains_key("blocks.0.plain"), "a plain tensor attribute is not in state_dict()");
}

#[test]
fn traced_open_clip_matches_jit_state_dict() {
    let ck = check_fixture("traced_clip");
    assert!(ck.is_torchscript());
    let w = ck.tensor("visual.transformer.resblocks.0.attn.in_proj_weight").unwrap();
    assert_eq!((w.dtype, w.shape.clone()), (TorchDType::F16, vec![24, 8]));
    assert!(ck.tensors().contains_key("token_embedding.weight"));
}

/// The full-vocabulary traced CLIP that `tools/make_torch_fixtures.py --check-large` makes in a
/// temporary directory (too big to commit).
#[test]
#[ignore = "needs TOKENCLIP_TORCH_LARGE, made by tools/make_torch_fixtures.py --check-large (13 MB, not committed)"]
fn large_traced_clip_from_env() {
    let Ok(path) = std::env::var("TOKENCLIP_TORCH_LARGE") else {
        eprintln!("SKIPPED: set TOKENCLIP_TORCH_LARGE (tools/make_torch_fixtures.py --check-large)");
        return;
    };
    let pt = PathBuf::from(&path);
    let ck = check_against_expected(&pt, &pt.with_extension("expected.safetensors"));
    assert_eq!(ck.tensor("token_embedding.weight").unwrap().shape, vec![49408, 64]);
}

#[test]
fn sniffing() {
    assert_eq!(tr::sniff(&fixture("state_dict.pt")), Some(TorchFileKind::Zip));
    assert!(tr::is_torch_zip(&fixture("scripted.pt")));
    assert_eq!(tr::sniff(&fixture("legacy.pt")), Some(TorchFileKind::LegacyPickle));
    assert_eq!(tr::sniff(&fixture("manifest.json")), None);
}

// ---- damaged inputs ----

/// Opening must fail with an error that names the file and says `what`.
fn expect_error(path: &Path, what: &str) -> String {
    let err = match TorchCheckpoint::open(path) {
        Ok(_) => panic!("{}: opened", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&path.display().to_string()), "error does not name the file: {err}");
    assert!(err.contains(what), "error {err:?} does not say {what:?}");
    err
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = scratch(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn legacy_files_are_refused_with_advice() {
    expect_error(&fixture("legacy.pt"), "re-save");
}

#[test]
fn truncated_archives() {
    for stem in ["state_dict", "scripted"] {
        let bytes = std::fs::read(fixture(&format!("{stem}.pt"))).unwrap();
        let n = bytes.len();
        for cut in [0, 3, 10, 100, n / 3, n / 2, n - 200, n - 30, n - 22, n - 1] {
            let p = write(&format!("{stem}-cut{cut}.pt"), &bytes[..cut]);
            assert!(TorchCheckpoint::open(&p).is_err(), "{stem} cut at {cut} opened");
            expect_error(&p, "");
        }
    }
}

#[test]
fn random_bytes() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    expect_error(&write("random.pt", &bytes), "not a PyTorch checkpoint");
    bytes[..4].copy_from_slice(b"PK\x03\x04");
    expect_error(&write("random-pk.pt", &bytes), "end-of-central-directory");
}

/// A small ZIP writer, for archives torch would not write (ZIP64, comments, deflated pickles)
/// and for damaged ones.
#[derive(Default)]
struct ZipOpts {
    zip64: bool,
    comment: Vec<u8>,
    deflate: bool,
}

fn write_zip(entries: &[(String, Vec<u8>)], o: &ZipOpts) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let deflate = o.deflate && name.ends_with(".pkl");
        let body = if deflate {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        } else {
            data.clone()
        };
        let method: u16 = if deflate { 8 } else { 0 };
        let offset = out.len() as u64;
        let (sz32, extra) = if o.zip64 {
            let mut e = vec![1, 0, 24, 0];
            for v in [data.len() as u64, body.len() as u64, offset] {
                e.extend_from_slice(&v.to_le_bytes());
            }
            (None, e)
        } else {
            (Some((body.len() as u32, data.len() as u32, offset as u32)), Vec::new())
        };
        let (csize, usize_, off32) = sz32.unwrap_or((u32::MAX, u32::MAX, u32::MAX));
        // Local header (with padding in its extra field, as torch aligns data).
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[45, 0, 0, 0]);
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&7u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[0xFB, 0xFA, 3, 0, 0, 0, 0]);
        out.extend_from_slice(&body);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[45, 0, 45, 0, 0, 0]);
        central.extend_from_slice(&method.to_le_bytes());
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&crc.sum().to_le_bytes());
        central.extend_from_slice(&csize.to_le_bytes());
        central.extend_from_slice(&usize_.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&off32.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&extra);
    }
    let (cd_offset, cd_size, count) = (out.len() as u64, central.len() as u64, entries.len() as u64);
    out.extend_from_slice(&central);
    if o.zip64 {
        let eocd64 = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for v in [count, count, cd_size, cd_offset] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&eocd64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let c16 = if o.zip64 { u16::MAX } else { count as u16 };
    out.extend_from_slice(&c16.to_le_bytes());
    out.extend_from_slice(&c16.to_le_bytes());
    let (s32, o32) = if o.zip64 { (u32::MAX, u32::MAX) } else { (cd_size as u32, cd_offset as u32) };
    out.extend_from_slice(&s32.to_le_bytes());
    out.extend_from_slice(&o32.to_le_bytes());
    out.extend_from_slice(&(o.comment.len() as u16).to_le_bytes());
    out.extend_from_slice(&o.comment);
    out
}

fn fixture_entries(stem: &str) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(fixture(&format!("{stem}.pt"))).unwrap();
    let mut zip = ZipArchive::new(f, stem).unwrap();
    let names: Vec<String> = zip.entries().iter().map(|e| e.name.clone()).collect();
    names.iter().enumerate().map(|(i, n)| (n.clone(), zip.read_entry(i, 1 << 30).unwrap())).collect()
}

/// `{'w': tensor}` with a float32 storage `0` of `numel` elements, seen at `offset` with `size`.
fn one_tensor_pickle(numel: u8, offset: u8, size: u8) -> Vec<u8> {
    let mut p = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage".to_vec();
    p.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
    p.extend_from_slice(&[numel, b't', b'Q', b'K', offset, b'K', size, 0x85, b'K', 1, 0x85, 0x89]);
    p.extend_from_slice(b"ccollections\nOrderedDict\n)RtRu.");
    p
}

fn archive(pickle: Vec<u8>, storage: Option<Vec<u8>>, o: &ZipOpts) -> Vec<u8> {
    let mut entries = vec![("a/data.pkl".to_string(), pickle)];
    if let Some(s) = storage {
        entries.push(("a/data/0".into(), s));
    }
    entries.push(("a/version".into(), b"3\n".to_vec()));
    write_zip(&entries, o)
}

#[test]
fn zip64_comment_and_deflated_pickle() {
    let data: Vec<u8> = (0..16u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    let o = ZipOpts { zip64: true, comment: b"a comment with PK\x05\x06 inside".to_vec(), deflate: true };
    let p = write("zip64.pt", &archive(one_tensor_pickle(16, 2, 5), Some(data), &o));
    let ck = TorchCheckpoint::open(&p).unwrap();
    assert_eq!(ck.read_f32("w").unwrap(), vec![2.0, 3.0, 4.0, 5.0, 6.0]);
    // A byte range of a compressed entry is refused; the whole entry reads.
    let mut zip = ZipArchive::new(Cursor::new(std::fs::read(&p).unwrap()), "mem").unwrap();
    let i = zip.find("a/data.pkl").unwrap();
    assert!(zip.read_range(i, 0, &mut [0u8; 4]).is_err());
    assert_eq!(zip.read_entry(i, 1 << 20).unwrap(), one_tensor_pickle(16, 2, 5));
}

#[test]
fn damaged_archives() {
    let o = ZipOpts::default();
    let data = vec![0u8; 16];
    let p = write("no-pkl.pt", &write_zip(&[("a/data/0".into(), data.clone())], &o));
    expect_error(&p, "no data.pkl");
    let p = write("opcode.pt", &archive(b"\x80\x02\xff.".to_vec(), None, &o));
    let err = expect_error(&p, "opcode 0xff");
    assert!(err.contains("byte 2"), "{err}");
    let p = write("past-end.pt", &archive(one_tensor_pickle(4, 2, 3), Some(data.clone()), &o));
    expect_error(&p, "runs past its storage");
    let p = write("missing-storage.pt", &archive(one_tensor_pickle(4, 0, 4), None, &o));
    expect_error(&p, "a/data/0 is missing");
    // The same on real fixtures: a storage removed, one cut short, data.pkl corrupted.
    let entries = fixture_entries("state_dict");
    let without: Vec<_> = entries.iter().filter(|(n, _)| n != "state_dict/data/0").cloned().collect();
    expect_error(&write("sd-missing.pt", &write_zip(&without, &o)), "is missing from the archive");
    let short: Vec<_> = entries
        .iter()
        .map(|(n, d)| (n.clone(), if n == "state_dict/data/0" { d[..d.len() - 4].to_vec() } else { d.clone() }))
        .collect();
    expect_error(&write("sd-short.pt", &write_zip(&short, &o)), "runs past its storage");
    let mut bytes = std::fs::read(fixture("state_dict.pt")).unwrap();
    bytes[80] ^= 0x55; // inside data.pkl, the first entry
    expect_error(&write("sd-crc.pt", &bytes), "CRC");
}

#[test]
fn mutated_pickles_never_panic() {
    let entries = fixture_entries("scripted");
    let pkl = &entries.iter().find(|(n, _)| n == "scripted/data.pkl").unwrap().1;
    for i in 0..pkl.len() {
        for v in [0x00, 0x28, 0x71, 0x80, 0xff] {
            let mut m = pkl.clone();
            m[i] = v;
            let _ = pickle::parse(&m);
            let _ = pickle::parse(&m[..i]);
        }
    }
    // A few whole archives with a mutated pickle go through the tensor walker too.
    let o = ZipOpts::default();
    for (k, i) in (0..pkl.len()).step_by(97).enumerate() {
        let m: Vec<_> = entries
            .iter()
            .map(|(n, d)| {
                let mut d = d.clone();
                if n.ends_with("data.pkl") {
                    d[i] = d[i].wrapping_add(1);
                }
                (n.clone(), d)
            })
            .collect();
        let p = write(&format!("mut{k}.pt"), &write_zip(&m, &o));
        if let Ok(ck) = TorchCheckpoint::open(&p) {
            for name in ck.tensors().keys() {
                let _ = ck.read_bytes(name);
            }
        }
    }
}

#[test]
fn pickle_machine_edge_cases() {
    // A dict memoised before it is filled and referenced again afterwards is the same dict.
    let shared = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u]q\x01(h\x00h\x00e0h\x01.";
    let want = Value::Dict(vec![(Value::Str("a".into()), Value::Int(1))]);
    assert_eq!(pickle::parse(shared).unwrap(), Value::List(vec![want.clone(), want]));
    // A list that contains itself.
    assert_eq!(pickle::parse(b"\x80\x02]q\x00h\x00a.").unwrap(), Value::List(vec![Value::Cycle]));
    // Protocol 4/5: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINBYTES8, NEWOBJ_EX.
    let p4 = b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x01m\x94\x8c\x01C\x94\x93)}\x92\x8e\x01\x00\x00\x00\x00\x00\x00\x00zb.";
    let Value::Object(o) = pickle::parse(p4).unwrap() else { panic!() };
    assert_eq!(o.class.as_global(), Some(("m", "C")));
    assert_eq!(o.state, Some(Value::Bytes(b"z".to_vec())));
    // Deep nesting is an error, not a stack overflow.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.extend(std::iter::repeat_n(b'a', 99_999));
    deep.push(b'.');
    assert!(pickle::parse(&deep).unwrap_err().what.contains("nested deeper"));
    // Exponential sharing (each tuple holds the previous one twice) is bounded.
    let mut exp = b"\x80\x02]q\x00".to_vec();
    for _ in 0..64 {
        exp.extend_from_slice(b"0h\x00h\x00\x86q\x00");
    }
    exp.extend_from_slice(b"0h\x00.");
    assert!(pickle::parse(&exp).unwrap_err().what.contains("too large"));
    // Lengths past the end, missing STOP, bad memo keys, stack underflow.
    for bad in [
        &b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x0f"[..],
        b"\x80\x02N",
        b"\x80\x02h\x05.",
        b"\x80\x02R.",
        b"\x80\x02e.",
    ] {
        let e = pickle::parse(bad).unwrap_err();
        assert!(e.offset >= 2, "{e}");
    }
}
