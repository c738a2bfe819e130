#!/usr/bin/env bash
# Builds the unit tests with ASan + UBSan in build-asan/ and runs them (CI runs this).
#   scripts/sanitize.sh                                   # ctest -L unit
#   EVOOPT_SANITIZE_LABELS='unit|integration' scripts/sanitize.sh   # also the integration tests
#                                                         # (and the CLI they drive): ~20 min more
# The integration label needs scripts/setup.sh first (packages, datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
LABELS=${EVOOPT_SANITIZE_LABELS:-unit}
TARGETS=(evoopt_unit_tests)
if [[ "$LABELS" == *integration* ]]; then TARGETS+=(evoopt_integration_tests); fi
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVOOPT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target "${TARGETS[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure -L "$LABELS" -j"$(nproc)"
