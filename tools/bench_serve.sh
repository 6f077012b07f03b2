#!/usr/bin/env bash
# Load on `tokenclip serve` from wrk on loopback: requests per second and latency percentiles
# for POST /detect (the image file as the body) and the v2 infer endpoint (base64 JSON).
#
#   tools/bench_serve.sh MODEL IMAGE [CONNECTIONS [SECONDS [SERVE OPTIONS...]]]
#   tools/bench_serve.sh /tmp/tiny.safetensors samples/capsules.jpg 4 20 --backend cpu
#
# Needs target/release/tokenclip (cargo build --release), wrk (Debian: apt install wrk), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench_serve.sh MODEL IMAGE [CONNECTIONS [SECONDS [SERVE OPTIONS...]]]}
image=${2:?usage}
conns=${3:-4}
secs=${4:-20}
shift $(($# < 4 ? $# : 4))
bin=target/release/tokenclip
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" serve --model "$model" --port 0 --queue 64 "$@" >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 600); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/out")
until curl -sf "$url/v2/health/ready" >/dev/null; do sleep 0.1; done

python3 - "$image" "$work" <<'PY'
import base64, json, sys
img, work = sys.argv[1], sys.argv[2]
data = open(img, "rb").read()
req = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(data).decode()]}],
       "outputs": [{"name": "score"}]}
open(f"{work}/infer.json", "w").write(json.dumps(req))
for name, path, body, ctype in [("detect", "/detect", img, "application/octet-stream"),
                                ("infer", "/v2/models/tokenclip/infer", f"{work}/infer.json", "application/json")]:
    open(f"{work}/{name}.lua", "w").write(
        f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.headers["Content-Type"] = "{ctype}"\n'
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        'done = function(summary, latency, requests)\n'
        '  io.write(string.format("non-2xx or errors: %d\\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n'
        '  for _, p in ipairs({50, 90, 99}) do io.write(string.format("p%d %.1f ms\\n", p, latency:percentile(p) / 1000)) end\n'
        'end\n')
PY
curl -s -o /dev/null --data-binary @"$image" "$url/detect"   # warm-up
for name in detect infer; do
  echo "== $name: $conns connections, ${secs} s"
  wrk -t"$((conns < 2 ? conns : 2))" -c"$conns" -d"${secs}s" --timeout 60s -s "$work/$name.lua" "$url" | grep -E "Requests/sec|non-2xx|^p[0-9]|requests in"
done
kill -TERM $pid; wait $pid
