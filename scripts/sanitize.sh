#!/usr/bin/env bash
# Builds the unit tests with ASan + UBSan in build-asan/ and runs them (CI runs this).
#   scripts/sanitize.sh                                   # ctest -L unit
#   EVOOPT_SANITIZE_LABELS='unit|integration' scripts/sanitize.sh   # also the integration tests
#                                                         # (and the CLI they drive): ~20 min more
# Labels: unit, integration, slow, joined by '|'. integration and slow need scripts/setup.sh
# first (packages, datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
LABELS=${EVOOPT_SANITIZE_LABELS:-unit}
# Each label is one executable, evoopt_<label>_tests (tests/CMakeLists.txt).
IFS='|' read -r -a label_list <<<"$LABELS"
TARGETS=()
for label in "${label_list[@]}"; do TARGETS+=("evoopt_${label}_tests"); done
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVOOPT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target "${TARGETS[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure -L "$LABELS" -j"$(nproc)"
