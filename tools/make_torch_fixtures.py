"""Generate the PyTorch checkpoint fixtures read by tests/torch_reader.rs.

Writes tests/fixtures/torch/: small `torch.save` and `torch.jit.save` archives (`*.pt`), for
each one `*.expected.safetensors` holding every tensor the Rust reader must find, under the
name it must report, as a contiguous copy in the original dtype (so the test compares names,
dtypes, shapes and bytes exactly), a legacy (pre-1.6 format) file the reader must refuse, and
manifest.json recording the versions and this command.

Run from the repository root:

    python3 tools/make_torch_fixtures.py
    python3 tools/make_torch_fixtures.py --check-large   # also the full-vocabulary traced CLIP

`--check-large` traces an open_clip CLIP with the real vocabulary (49408 tokens, ~13 MB, too
big to commit) into a temporary directory and runs the ignored Rust test
`large_traced_clip_from_env` on it through TOKENCLIP_TORCH_LARGE; nothing of it is kept.

Everything is seeded (torch.manual_seed(0)); archive bytes may still differ between torch
versions (e.g. the random serialization id), the expected tensors do not.
"""

import collections
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings

import open_clip
import safetensors.torch
import torch
from torch import nn

warnings.filterwarnings("ignore")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "torch")
MAX_TOTAL = 200 * 1024


def expected(path, tensors):
    """Writes the contiguous copies the reader must reproduce, next to the fixture."""
    copies = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    safetensors.torch.save_file(copies, path.replace(".pt", ".expected.safetensors"))


def state_dict_fixture():
    g = torch.Generator().manual_seed(1)
    shared = torch.randn(4, 6, generator=g)
    base = torch.randn(10, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f16"] = torch.randn(5, generator=g).half()
    sd["bf16"] = torch.randn(2, 3, generator=g).bfloat16()
    sd["f64"] = torch.randn(2, 2, generator=g).double()
    sd["i64"] = torch.arange(-3, 3)
    sd["i32"] = torch.randint(-1000, 1000, (4,), generator=g, dtype=torch.int32)
    sd["i16"] = torch.tensor([-2, 7], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 3], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["transposed"] = torch.randn(3, 5, generator=g).t()
    sd["slice"] = base[3:7]
    sd["view_a"] = shared
    sd["view_b"] = shared[1:3, ::2]
    sd["expanded"] = torch.randn(3, 1, generator=g).expand(3, 4)
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = nn.Parameter(torch.randn(2, generator=g))
    assert not sd["transposed"].is_contiguous() and sd["slice"].storage_offset() == 3
    path = os.path.join(OUT, "state_dict.pt")
    torch.save(sd, path)
    expected(path, sd)


def nested_fixture():
    g = torch.Generator().manual_seed(2)
    proj = torch.randn(4, 2, generator=g)
    conv = torch.randn(2, 3, 2, 2, generator=g)
    obj = {
        "state_dict": {"visual.proj": proj, "visual": {"conv1.weight": conv}},
        "epoch": 3,
        "lr": 0.1,
        "name": "tokenclip",
        "big": 2**70,
        "neg": -5,
        "blob": b"\x00\x01",
        "flags": [True, False, None],
        "tup": (1, 2.5, "x"),
        "lst": [torch.ones(2), torch.zeros(1)],
    }
    path = os.path.join(OUT, "nested.pt")
    torch.save(obj, path)
    expected(path, {"state_dict.visual.proj": proj, "state_dict.visual.conv1.weight": conv,
                    "lst.0": torch.ones(2), "lst.1": torch.zeros(1)})


class PromptLearner(nn.Module):
    def __init__(self):
        super().__init__()
        self.ctx_pos = nn.Parameter(torch.randn(1, 4, 8))
        self.ctx_neg = nn.Parameter(torch.randn(1, 4, 8))
        self.register_buffer("token_prefix", torch.randn(2, 1, 8))


def prompt_learner_fixture():
    """The AnomalyCLIP checkpoint layout: {"prompt_learner": module.state_dict()}, at protocol 4."""
    torch.manual_seed(3)
    sd = PromptLearner().state_dict()
    path = os.path.join(OUT, "prompt_learner.pt")
    torch.save({"prompt_learner": sd}, path, pickle_protocol=4)
    expected(path, {f"prompt_learner.{k}": v for k, v in sd.items()})


def module_fixture():
    """A whole pickled nn.Module (torch.save(model)), named as model.state_dict()."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Sequential(nn.Linear(2, 2, bias=False)))
    model[1].register_buffer("scratch", torch.ones(2), persistent=False)
    path = os.path.join(OUT, "module.pt")
    torch.save(model, path)
    expected(path, model.state_dict())


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2)
        self.ln = nn.LayerNorm(8)
        self.register_buffer("scale", torch.tensor(0.5))
        self.plain = torch.ones(3)  # a tensor attribute that is neither parameter nor buffer
        self.flag = True
        self.depth = 2

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.ln(x + y) * self.scale + self.plain.sum()


class Scripted(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(8, 3)
        self.proj = nn.Parameter(torch.randn(8, 4).t())

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def scripted_fixture():
    torch.manual_seed(5)
    m = torch.jit.script(Scripted())
    path = os.path.join(OUT, "scripted.pt")
    m.save(path)
    expected(path, torch.jit.load(path).state_dict())


def tiny_clip(vocab, width, patch, image, half):
    torch.manual_seed(6)
    cfg = dict(
        embed_dim=width,
        vision_cfg=dict(image_size=image, layers=1, width=width, patch_size=patch, head_width=width // 2),
        text_cfg=dict(context_length=8, vocab_size=vocab, width=width, heads=2, layers=1),
    )
    model = open_clip.model.CLIP(**cfg).eval()
    inputs = (torch.randn(1, 3, image, image), torch.randint(0, vocab, (1, 8)))
    traced = torch.jit.trace_module(model, {"forward": inputs}, strict=False, check_trace=False)
    return traced.half() if half else traced


def traced_clip_fixture():
    """open_clip CLIP traced and cast to float16, like OpenAI's CLIP .pt files (small vocabulary)."""
    path = os.path.join(OUT, "traced_clip.pt")
    tiny_clip(vocab=64, width=8, patch=8, image=16, half=True).save(path)
    expected(path, torch.jit.load(path).state_dict())


def legacy_fixture():
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)


def check_large():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "large_clip.pt")
        tiny_clip(vocab=49408, width=64, patch=16, image=32, half=False).save(path)
        expected(path, torch.jit.load(path).state_dict())
        print(f"large traced CLIP: {os.path.getsize(path)} bytes at {path}")
        env = dict(os.environ, TOKENCLIP_TORCH_LARGE=path)
        cmd = ["cargo", "test", "--test", "torch_reader", "large_traced_clip_from_env", "--", "--ignored"]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    makers = [state_dict_fixture, nested_fixture, prompt_learner_fixture, module_fixture, scripted_fixture,
              traced_clip_fixture, legacy_fixture]
    for make in makers:
        make()
    files = sorted(f for f in os.listdir(OUT) if f != "manifest.json")
    sizes = {f: os.path.getsize(os.path.join(OUT, f)) for f in files}
    manifest = {
        "command": "python3 tools/make_torch_fixtures.py",
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
        "seed": "torch.manual_seed / Generator seeds 1-6, one per fixture",
        "files": sizes,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(sizes.values())
    print(f"wrote {len(files)} files, {total} bytes, to {OUT}")
    assert total < MAX_TOTAL, "fixtures too large"
    if "--check-large" in sys.argv:
        check_large()


if __name__ == "__main__":
    main()
