#!/usr/bin/env python3
"""Checkpoint-format and activation fixtures from the PyPI references (open_clip_torch,
transformers, torch): every kind of CLIP checkpoint a user is likely to hold, with both MLP
activations, and the config files the hub ships beside them. Random weights, fixed seed.

Writes under tests/fixtures/checkpoints/ one folder per checkpoint, as the hub lays them out:
  openclip_gelu/           open_clip_model.safetensors.gz + open_clip_config.json (quick_gelu false)
  openclip_gelu_bin/       open_clip_pytorch_model.bin.gz (torch.save of the state dict) + open_clip_config.json
  openclip_quick_bin/      the same with quick_gelu true
  hf_gelu/                 Hugging Face CLIPModel model.safetensors.gz + config.json (hidden_act "gelu")
  hf_gelu_bin/             the same as pytorch_model.bin.gz (torch.save of the state dict, as transformers < 5 saved)
  hf_quick_bin/            the same with hidden_act "quick_gelu" (what openai/clip-vit-large-patch14-336 ships)
  expected.safetensors     pixels.{i} (open_clip's preprocess at 32 px), and per folder NAME:
                           NAME.image_embeds [3, D], NAME.text_embeds [T, D] (open_clip's encode_image /
                           encode_text, or transformers' get_image_features / get_text_features for hf_*),
                           gelu.x / gelu.y (torch.nn.functional.gelu, the exact default) for the op test
and the sidecars of the older QuickGELU fixtures (so import reads their activation as it would
on the hub): tests/fixtures/clip_tiny_openclip.open_clip_config.json and
tests/fixtures/detect_tiny/clip.open_clip_config.json (their model configs, from
tools/make_clip_fixtures.py and tools/make_detect_fixtures.py).

Model: vision W=64, 1 layer, patch 8, 32 px; text W=64, 1 layer; D=32; f32 storage of values
exactly representable in f16 (the files compress to a third).

Command: python3 tools/make_checkpoint_fixtures.py
"""
import gzip
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_clip_fixtures as mcf  # noqa: E402  (its helpers: randomize, tokens, preprocessing, HF mapping)

import open_clip  # noqa: E402

SEED = 20261203
FIX = os.path.join(mcf.ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "checkpoints")
VISION = dict(image_size=32, layers=1, width=64, patch_size=8, head_width=64)
TEXT = dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=1)
EMBED = 32


def open_clip_config(embed_dim, vision, text, quick_gelu):
    """What the hub's open_clip repositories ship as open_clip_config.json."""
    cfg = {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text}
    if quick_gelu:
        cfg["quick_gelu"] = True
    return {"model_cfg": cfg, "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                 "std": list(open_clip.OPENAI_DATASET_STD)}}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def gz(src, dst):
    with open(src, "rb") as f, gzip.GzipFile(dst, "wb", mtime=0) as g:
        shutil.copyfileobj(f, g)


def model(quick_gelu, gen, tokens):
    m = open_clip.model.CLIP(embed_dim=EMBED, vision_cfg=VISION, text_cfg=TEXT, quick_gelu=quick_gelu).eval()
    mcf.randomize(m, gen)
    mcf.sparse_token_table(m, tokens, gen)
    mcf.round_f16(m)
    return m


def state_dict(m):
    return {k: v.contiguous() for k, v in m.state_dict().items() if k != "attn_mask"}


@torch.no_grad()
def main():
    gen = torch.Generator().manual_seed(SEED)
    tokens = mcf.test_tokens(open_clip.get_tokenizer("ViT-B-16"))
    pixels = mcf.preprocess_images(32)
    out = {f"pixels.{i}": pixels[i] for i in range(pixels.shape[0])}
    os.makedirs(OUT, exist_ok=True)
    gelu_model, quick_model = model(False, gen, tokens), model(True, gen, tokens)
    assert isinstance(gelu_model.visual.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)

    def folder(name):
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    with tempfile.TemporaryDirectory() as tmp:
        for name, m, quick, kind in [("openclip_gelu", gelu_model, False, "safetensors"),
                                     ("openclip_gelu_bin", gelu_model, False, "bin"),
                                     ("openclip_quick_bin", quick_model, True, "bin")]:
            d = folder(name)
            if kind == "safetensors":
                f = os.path.join(tmp, "open_clip_model.safetensors")
                save_file(state_dict(m), f)
            else:
                f = os.path.join(tmp, "open_clip_pytorch_model.bin")
                torch.save(state_dict(m), f)
            gz(f, os.path.join(d, os.path.basename(f) + ".gz"))
            write_json(os.path.join(d, "open_clip_config.json"), open_clip_config(EMBED, VISION, TEXT, quick))
            out[f"{name}.image_embeds"], out[f"{name}.text_embeds"] = m.encode_image(pixels), m.encode_text(tokens)

        for name, m, act, safe in [("hf_gelu", gelu_model, "gelu", True), ("hf_gelu_bin", gelu_model, "gelu", False),
                                   ("hf_quick_bin", quick_model, "quick_gelu", False)]:
            hf = mcf.hf_model_from(m, act)
            img = hf.get_image_features(pixel_values=pixels)
            txt = hf.get_text_features(input_ids=tokens)
            img, txt = getattr(img, "pooler_output", img), getattr(txt, "pooler_output", txt)
            ref_img, ref_txt = m.encode_image(pixels), m.encode_text(tokens)
            print(f"{name}: transformers vs open_clip rel L2: image {mcf.rel_l2(img, ref_img):.2e}, "
                  f"text {mcf.rel_l2(txt, ref_txt):.2e}")
            assert mcf.rel_l2(img, ref_img) < 1e-5 and mcf.rel_l2(txt, ref_txt) < 1e-5
            d = folder(name)
            save = os.path.join(tmp, name)
            hf.save_pretrained(save)  # model.safetensors + config.json
            f = "model.safetensors" if safe else "pytorch_model.bin"
            if not safe:
                # What transformers < 5 wrote (and the hub's openai/clip-vit-large-patch14-336 holds): torch.save
                # of the state dict. transformers 5 no longer writes it.
                torch.save({k: v.contiguous() for k, v in hf.state_dict().items()}, os.path.join(save, f))
            gz(os.path.join(save, f), os.path.join(d, f + ".gz"))
            shutil.copy(os.path.join(save, "config.json"), os.path.join(d, "config.json"))
            out[f"{name}.image_embeds"], out[f"{name}.text_embeds"] = img, txt

    x = torch.linspace(-6.0, 6.0, 2001) + 0.37 * torch.randn(2001, generator=gen)
    out["gelu.x"], out["gelu.y"] = x, torch.nn.functional.gelu(x)
    # The exact-GELU model really differs from its QuickGELU twin (the fixture would prove nothing otherwise).
    twin = open_clip.model.CLIP(embed_dim=EMBED, vision_cfg=VISION, text_cfg=TEXT, quick_gelu=True).eval()
    twin.load_state_dict(gelu_model.state_dict())
    diff = mcf.rel_l2(twin.encode_image(pixels), out["openclip_gelu.image_embeds"])
    print(f"exact GELU vs QuickGELU on the same weights: image embeddings rel L2 {diff:.2e}")
    assert diff > 1e-3, diff
    meta = {"script": "tools/make_checkpoint_fixtures.py", "command": "python3 tools/make_checkpoint_fixtures.py",
            "seed": str(SEED), "open_clip": open_clip.__version__, "torch": torch.__version__,
            "texts": json.dumps(mcf.TEXTS, ensure_ascii=False), "tokens": json.dumps(tokens.tolist()),
            "images": json.dumps(mcf.IMAGES), "gelu_vs_quick_gelu_rel_l2": f"{diff:.3e}"}
    save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(OUT, "expected.safetensors"),
              metadata=meta)

    # Sidecars of the older fixtures, from the configs their scripts build the models with.
    write_json(os.path.join(FIX, "clip_tiny_openclip.open_clip_config.json"),
               open_clip_config(64, dict(image_size=32, layers=4, width=128, patch_size=8, head_width=64),
                                dict(context_length=77, vocab_size=49408, width=128, heads=2, layers=2), True))
    write_json(os.path.join(FIX, "detect_tiny", "clip.open_clip_config.json"),
               open_clip_config(64, dict(image_size=32, patch_size=8, width=128, layers=4, head_width=64),
                                dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=4), True))
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, mcf.ROOT)}: {os.path.getsize(p) / 1e3:.0f} kB")


if __name__ == "__main__":
    torch.manual_seed(SEED)
    main()
