#!/usr/bin/env bash
# Runs every test: native (CPU backend, and the GPU backend on whatever adapter exists — Mesa's
# lavapipe on a machine without a GPU) and in headless Chromium (WebGPU through SwiftShader): the
# kernels and the JS API (tests/web.rs), then the web page end to end (tests/web_page.py).
# First installs what that needs, idempotently: Debian mesa-vulkan-drivers, chromium and
# chromium-driver, python3; the wasm32 target; wasm-bindgen-cli at the exact wasm-bindgen crate version.
# GPU tests fail, not skip, when no adapter appears: this script installed one.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ] || packages+=(mesa-vulkan-drivers)
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
# The web page test drives Chromium from a standard-library Python script.
command -v python3 >/dev/null || packages+=(python3)
if ((${#packages[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "installing Debian packages: ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# The runner must be the same version as the wasm-bindgen crate (pinned with = in Cargo.toml).
wb_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml)
if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q " $wb_version\$"; then
  echo "installing wasm-bindgen-cli $wb_version"
  cargo install wasm-bindgen-cli --version "=$wb_version"
fi

export PATH="$HOME/.cargo/bin:$PATH"
export TOKENCLIP_REQUIRE_GPU=1
# Mesa's GL path warns without it; harmless, but noisy.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

echo "== native tests (CPU backend; GPU backend on the first wgpu adapter)"
cargo test

echo "== browser tests (headless Chromium, WebGPU)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER="$(command -v chromedriver)" \
WASM_BINDGEN_TEST_TIMEOUT=300 \
  cargo test --target wasm32-unknown-unknown --test web

# The page itself (web/index.html): the wasm package built for it, the tiny fixture model made by
# the CLI, then headless Chromium with and without WebGPU. Screenshots and a JSON report go to
# target/web-artifacts/. The dev profile shares the browser tests' compiled dependencies.
echo "== the web page in headless Chromium (tests/web_page.py)"
tools/build_web.sh --dev
cargo build --bin tokenclip
CHROMEDRIVER="$(command -v chromedriver)" python3 tests/web_page.py
