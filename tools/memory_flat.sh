#!/usr/bin/env bash
# Peak memory of `detect` over N images and `eval` over a dataset of N images, for N = 10, 100,
# 1000 (issue 16: memory stays flat). Needs a release build, GNU time and Python with Pillow.
#   tools/memory_flat.sh [MODEL] [SIZE] [COUNTS...]
# MODEL defaults to the tiny test CLIP at 64 px (imported here); SIZE is the images' side.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/tokenclip
work=${TMPDIR:-/tmp}/tokenclip-memory
model=${1:-}
size=${2:-256}
shift 2 || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 100 1000)
mkdir -p "$work"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
if [ -z "$model" ]; then
  model=$work/tiny.safetensors
  gunzip -c tests/fixtures/detect_tiny/clip.safetensors.gz > "$work/clip.safetensors"
  cp tests/fixtures/detect_tiny/clip.open_clip_config.json "$work/open_clip_config.json"
  $bin import --clip "$work/clip.safetensors" --prompts tests/fixtures/detect_tiny/prompts_m4.safetensors \
    --image-size 64 --dpam-start 1 --feature-layers 4 --out "$model" > /dev/null
fi
max=${counts[-1]}
# An MVTec AD-layout class: half good, half with a drawn defect and its mask (PNG).
python3 - "$work/data" "$max" "$size" <<'PY'
import os, sys, random
from PIL import Image, ImageDraw
root, n, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
for d in ("widget/test/good", "widget/test/dent", "widget/ground_truth/dent"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
for i in range(n):
    img = Image.effect_noise((s, s), 40).convert("RGB")
    kind = "dent" if i % 2 else "good"
    path = os.path.join(root, f"widget/test/{kind}/{i:05d}.png")
    if os.path.exists(path):
        continue
    if kind == "dent":
        x, y, r = rnd.randrange(s // 4, 3 * s // 4), rnd.randrange(s // 4, 3 * s // 4), s // 10
        ImageDraw.Draw(img).ellipse((x - r, y - r, x + r, y + r), fill=(250, 30, 200))
        m = Image.new("L", (s, s))
        ImageDraw.Draw(m).ellipse((x - r, y - r, x + r, y + r), fill=255)
        m.save(os.path.join(root, f"widget/ground_truth/dent/{i:05d}_mask.png"))
    img.save(path)
PY
# Peak RSS in MiB; a run that fails (other than eval's exit 2 for a partial report) stops the script.
peak() {
  local rc=0
  /usr/bin/time -f %M -o "$work/time" "$@" > /dev/null 2> "$work/log" || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 2 ]; then echo "failed ($rc): $*" >&2; tail -3 "$work/log" >&2; exit 1; fi
  echo $(( $(tail -1 "$work/time") / 1024 ))
}
echo "| N | detect peak RSS (MiB) | eval peak RSS (MiB) |"
echo "|---|---|---|"
for n in "${counts[@]}"; do
  # The first n images by name, as symlinks: the same files for detect and eval.
  sub=$work/n$n
  rm -rf "$sub"; mkdir -p "$sub/widget/test/good" "$sub/widget/test/dent" "$sub/widget/ground_truth/dent"
  for f in $(cd "$work/data" && ls widget/test/*/*.png | sort -t/ -k4 | head -n "$n"); do
    ln -s "$work/data/$f" "$sub/$f"
    m=${f/test\/dent/ground_truth\/dent}; m=${m%.png}_mask.png
    [ -e "$work/data/$m" ] && ln -s "$work/data/$m" "$sub/$m"
  done
  d=$(peak $bin --backend cpu detect --model "$model" --out "$work/out$n" "$sub/widget/test")
  e=$(peak $bin --backend cpu eval --model "$model" --data "$sub" --no-cache --out "$work/eval$n")
  echo "| $n | $d | $e |"
  rm -rf "$work/out$n" "$work/eval$n"
done
