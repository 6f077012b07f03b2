#!/usr/bin/env bash
# Builds the wasm package into web/pkg/: tokenclip.js (ES module, wasm-bindgen --target web),
# tokenclip_bg.wasm and the TypeScript types tokenclip.d.ts. web/ is then both the npm package
# (web/package.json) and the static page (serve web/ and open index.html).
#
#   tools/build_web.sh          release build (what to ship and benchmark)
#   tools/build_web.sh --dev    dev profile (dependencies optimised, this crate not): builds in a
#                               fraction of the time and shares artifacts with the browser tests
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at exactly the wasm-bindgen crate
# version (tools/test.sh installs both). No wasm-opt: Debian's binaryen breaks modules.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
case "${1:-}" in
  --dev) profile=dev ;;
  "" | --release) ;;
  *) echo "usage: tools/build_web.sh [--dev|--release]" >&2; exit 2 ;;
esac

wb_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
  echo "wasm-bindgen-cli $wb_version is needed: cargo install wasm-bindgen-cli --version =$wb_version" >&2
  exit 1
fi

cargo build --lib --target wasm32-unknown-unknown --profile "$profile"
dir=$([ "$profile" = dev ] && echo debug || echo release)
wasm="target/wasm32-unknown-unknown/$dir/tokenclip.wasm"

rm -rf web/pkg
wasm-bindgen --target web --out-dir web/pkg --out-name tokenclip "$wasm"

# The package version follows the crate's.
crate_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
pkg_version=$(sed -n 's/^  "version": "\(.*\)",/\1/p' web/package.json)
if [ "$crate_version" != "$pkg_version" ]; then
  echo "warning: web/package.json has version $pkg_version, Cargo.toml $crate_version" >&2
fi

echo "built web/pkg ($profile): $(du -h web/pkg/tokenclip_bg.wasm | cut -f1) wasm"
echo "serve it with e.g.: python3 -m http.server --directory web 8000   # then open http://localhost:8000/"
