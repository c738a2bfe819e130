#!/usr/bin/env bash
# One-command set-up on Debian 12: installs every Debian package evoopt needs
# (skipping what is present), builds the CLI in Release, and prepares the datasets.
# Idempotent: run it as often as you like. Afterwards the CLI is build/evoopt.
#
#   scripts/setup.sh                 # packages + build + datasets
#   EVOOPT_DATA_MIRROR=DIR scripts/setup.sh   # also look for datasets in DIR
#   EVOOPT_SKIP_DATA=1 scripts/setup.sh       # packages + build only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PACKAGES=(
  build-essential cmake pkg-config git
  libtorch-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libfmt-dev
  libstb-dev zlib1g-dev libcurl4-openssl-dev libssl-dev
  libgtest-dev clang-format
  libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist
  jargon-text               # the Jargon File 4.4.7 (public domain): the held-out text task `jargon`
  python3-torch             # the PyTorch reference of bench/vs_pytorch.sh (run with /usr/bin/python3)
)
# Tools only the tests need (scripts/test.sh sets EVOOPT_TEST_TOOLS=1): headless Chromium
# renders report.html in the report test; python3-pil writes the PNGs of the user-task test's
# image folder (tests/unit/make_user_task.py).
if [ "${EVOOPT_TEST_TOOLS:-0}" = "1" ]; then PACKAGES+=(chromium python3-pil); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# The fast BLAS: libtorch-dev links libblas.so.3, which Debian resolves through
# update-alternatives. OpenBLAS (pthread build) made the `paper` models' linear layers
# 3.8x faster than the reference BLAS; evoopt runs each worker process with one BLAS
# thread. EVOOPT_KEEP_BLAS=1 leaves the system's choice alone.
OPENBLAS=/usr/lib/$(gcc -print-multiarch)/openblas-pthread/libblas.so.3
if [ "${EVOOPT_KEEP_BLAS:-0}" != "1" ] && [ -e "$OPENBLAS" ]; then
  ALT="libblas.so.3-$(gcc -print-multiarch)"
  if [ "$(readlink -f "/etc/alternatives/$ALT")" != "$(readlink -f "$OPENBLAS")" ]; then
    echo "setup: selecting OpenBLAS ($OPENBLAS) for $ALT"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO update-alternatives --set "$ALT" "$OPENBLAS"
  fi
fi

BUILD_DIR=${EVOOPT_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${EVOOPT_CMAKE_ARGS:-} >/dev/null
# The CLI only: the tests are built by scripts/test.sh, which needs them.
cmake --build "$BUILD_DIR" -j"$(nproc)" --target evoopt

if [ "${EVOOPT_SKIP_DATA:-0}" != "1" ]; then
  # The offline mirror beside a checkout (as on the project's own machines) is
  # used when present; EVOOPT_DATA_MIRROR adds more.
  MIRRORS=()
  if [ -d "$ROOT/../shared/datasets" ]; then MIRRORS+=(--mirror "$ROOT/../shared/datasets"); fi
  # jargon-text puts the Jargon File under /usr/share/doc, which minimal images strip
  # (dpkg path-exclude): then take the text from the package itself.
  JARGON_TMP=""
  if [ ! -e /usr/share/doc/jargon-text/jargon.txt.gz ]; then
    JARGON_TMP=$(mktemp -d)
    if (cd "$JARGON_TMP" && apt-get download -q jargon-text >/dev/null && dpkg-deb -x jargon-text_*.deb x); then
      MIRRORS+=(--mirror "$JARGON_TMP/x/usr/share/doc/jargon-text")
    fi
  fi
  "$BUILD_DIR/evoopt" data fetch "${MIRRORS[@]}"
  if [ -n "$JARGON_TMP" ]; then rm -rf "$JARGON_TMP"; fi
  "$BUILD_DIR/evoopt" data verify
fi
echo "setup: done; the CLI is $BUILD_DIR/evoopt"
