#!/usr/bin/env bash
# Builds the unit and integration tests (and the CLI the integration tests drive) with
# ASan + UBSan in build-asan/ and runs them. Run scripts/setup.sh first (packages, datasets).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVOOPT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target evoopt_unit_tests evoopt_integration_tests
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure -L 'unit|integration' -j"$(nproc)"
