#!/usr/bin/env bash
# The GPU check for a lent NVIDIA machine (the `device` tool; it has no Rust and reaches no
# network, so everything is built and fetched here first and carried):
#
#   tools/gpu_bench.sh prepare     # here: .gpu/ (stripped release binary + the GPU op test
#                                  # binaries), .gl/ (the Vulkan loader's debs, as the device
#                                  # README says), .whl/ (open_clip for the PyTorch anchor)
#   device run: command "bash tools/gpu_bench.sh device", carry [".gpu", ".gl", ".whl"],
#               timeout_s 540; the log comes back as $OUT/gpu_bench.log
#
# On the device: the Vulkan loader is unpacked and pointed at NVIDIA's ICD, the GPU op tests run
# on it (TOKENCLIP_REQUIRE_GPU=1: no adapter is a failure), random-weight ViT-B/16@224 and
# ViT-L/14@336 at 336 and 518 px are made with NumPy and timed (`bench`, image encoder; then
# detection with `--profile`), and open_clip's encode_image on PyTorch CUDA in fp32 with TF32
# off is the anchor, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=(shaders gpu_runtime ops_matmul ops_attention ops_norm ops_softmax ops_copy ops_maps ops_score ops_transport)

prepare() {
  for d in .gpu .gl .whl; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >>.git/info/exclude; done
  rm -rf .gpu && mkdir -p .gpu .gl .whl
  cargo build --release --bin tokenclip
  cp target/release/tokenclip .gpu/ && strip .gpu/tokenclip
  for t in "${tests[@]}"; do
    exe=$(cargo test --no-run --test "$t" --message-format=json 2>/dev/null |
      python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
    cp "$exe" ".gpu/$t" && strip ".gpu/$t"
  done
  pwd >.gpu/built_in   # the test binaries read fixtures from the folder they were built in
  # Stripped, they are about 150 MB; xz brings them to about 42 MB, under the 64 MiB that travels.
  tar -C .gpu -cJf /tmp/gpu-bundle.tar.xz . && rm -rf .gpu && mkdir .gpu && mv /tmp/gpu-bundle.tar.xz .gpu/bundle.tar.xz
  local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 2>/dev/null)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl open_clip_torch ftfy wcwidth
  du -sh .gpu .gl .whl
}

device() {
  local out=${OUT:-/tmp/gpu-bench}
  mkdir -p "$out"
  exec > >(tee "$out/gpu_bench.log") 2>&1
  mkdir -p /tmp/gpu && tar -C /tmp/gpu -xJf .gpu/bundle.tar.xz
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  if [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  export XDG_RUNTIME_DIR=/tmp TOKENCLIP_REQUIRE_GPU=1
  local built_in
  built_in=$(cat /tmp/gpu/built_in)
  if [ "$built_in" != "$PWD" ] && [ ! -e "$built_in" ]; then mkdir -p "$(dirname "$built_in")" && ln -s "$PWD" "$built_in"; fi
  nvidia-smi -L || true
  /tmp/gpu/tokenclip info || true
  echo "== GPU op tests"
  for t in "${tests[@]}"; do echo "-- $t"; "/tmp/gpu/$t" --test-threads 4 2>&1 | grep -E "^test result|FAILED|panicked|SKIPPED" || true; done

  echo "== models (random weights, NumPy)"
  python3 tools/make_random_clip.py --arch ViT-B-16 --out-dir /tmp/b16 >/dev/null
  python3 tools/make_random_clip.py --arch ViT-L-14-336 --out-dir /tmp/l14 >/dev/null
  local tc=/tmp/gpu/tokenclip
  $tc import --clip /tmp/b16/open_clip_model.safetensors --out /tmp/b16/clip.safetensors >/dev/null
  $tc import --clip /tmp/l14/open_clip_model.safetensors --out /tmp/l14/clip.safetensors >/dev/null
  $tc import --clip /tmp/b16/open_clip_model.safetensors --prompts ensemble --vision-only --image-size 224 \
    --out /tmp/b16/det.safetensors >/dev/null
  $tc import --clip /tmp/l14/open_clip_model.safetensors --prompts ensemble --vision-only --image-size 518 \
    --dpam-start 6 --feature-layers 6,12,18,24 --sigma 4 --out /tmp/l14/det518.safetensors >/dev/null

  echo "== tokenclip image encoder on the GPU (median of 10 after a warm-up)"
  $tc --backend gpu bench --model /tmp/b16/clip.safetensors --image-size 224 --reps 10
  $tc --backend gpu bench --model /tmp/l14/clip.safetensors --image-size 336 --reps 10
  $tc --backend gpu bench --model /tmp/l14/clip.safetensors --image-size 518 --reps 10
  echo "== tokenclip detection on the GPU, with the per-op profile"
  $tc --backend gpu bench --model /tmp/b16/det.safetensors --reps 5 --profile
  $tc --backend gpu bench --model /tmp/l14/det518.safetensors --reps 5 --profile
  echo "== batched detection (serve --max-batch) against single passes"
  $tc --backend gpu bench --model /tmp/b16/det.safetensors --reps 3 --batch 8
  $tc --backend gpu bench --model /tmp/l14/det518.safetensors --reps 3 --batch 4

  echo "== anchor: open_clip encode_image on PyTorch CUDA, fp32, TF32 off"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 tools/bench_torch_clip.py --device cuda --reps 10 \
    --only ViT-B-16:224,ViT-L-14-336:336,ViT-L-14-336:518
}

case ${1:-} in
  prepare) prepare ;;
  device) device ;;
  *) echo "usage: tools/gpu_bench.sh prepare|device" >&2; exit 2 ;;
esac
