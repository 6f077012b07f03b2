#!/usr/bin/env bash
# Runs tokenclip's cargo-fuzz targets (fuzz/) for a given time each, seeded from the test
# fixtures. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 600 s, every target)
# Crashes land in fuzz/artifacts/TARGET/; corpora grow in fuzz/corpus/TARGET/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^tokenclip-fuzz$'))
fi
seed() { # TARGET: copy the small fixtures that feed it into its corpus
  local dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $1 in
    image_decode) find tests/fixtures samples -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) \
                    -size -300k -exec cp -n {} "$dir"/ \; ;;
    safetensors_file) find tests/fixtures -type f -name '*.safetensors' -size -300k -exec cp -n {} "$dir"/ \; ;;
    torch_checkpoint) find tests/fixtures -type f \( -name '*.pth' -o -name '*.pt' -o -name '*.bin' \) -size -300k \
                        -exec cp -n {} "$dir"/ \; ;;
    registry) cp -n src/hub/registry.toml "$dir"/
              find tests -type f -name '*.toml' -size -100k -exec cp -n {} "$dir"/ \; ;;
    visa_csv) printf 'object,split,label,image,mask\ncandle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\ncandle,test,normal,"candle/Data/Images/Normal/0,1.JPG",\n' \
                > "$dir"/1cls.csv ;;
    dataset_tree) printf 'bottle/test/good/000.png\nbottle/test/crack/000.png\nbottle/ground_truth/crack/000_mask.png\nbottle/train/good/\n' > "$dir"/mvtec
                  printf 'screw/good/a.jpg\nscrew/scratch/b.png\nscrew/scratch/b_mask.png\nscrew/loop->..\n' > "$dir"/folder
                  printf 'split_csv/1cls.csv=object,split,label,image,mask\\ncandle,test,normal,candle/a.JPG,\ncandle/a.JPG\n' > "$dir"/visa ;;
    serve_request) printf '\0\0{"id":"a","inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["iVBORw0KGgo="]}],"outputs":[{"name":"map","parameters":{"binary_data":true}}]}' > "$dir"/bytes
                   printf '\0\0{"inputs":[{"name":"p","shape":[1,2,3],"datatype":"UINT8","data":[[[1,2,3],[4,5,6]]]}],"parameters":{"binary_data_output":true}}' > "$dir"/pixels
                   printf '\1\x60{"inputs":[{"name":"p","shape":[1,1,3],"datatype":"UINT8","parameters":{"binary_data_size":3}}]}abc' > "$dir"/binary ;;
    tokenizer) printf 'a photo of a damaged bottle.' > "$dir"/prompt
               printf 'flawless  &amp; “perfect” ﬁne Ｗｉｄｅ object' > "$dir"/unicode ;;
  esac
}
for t in "${targets[@]}"; do
  seed "$t"
  echo "== $t: ${secs}s"
  (cd fuzz && cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10) \
    2>&1 | grep -E '^(#[0-9]+.*(DONE|pulse)|==|SUMMARY|artifact_prefix|Test unit written)' || true
  ls fuzz/artifacts/"$t" 2>/dev/null | sed "s/^/  finding: /" || true
done
