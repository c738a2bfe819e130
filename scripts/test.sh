#!/usr/bin/env bash
# Sets up (packages, build, datasets) and runs the whole test suite.
#   scripts/test.sh            # everything: labels unit, integration and slow
#   scripts/test.sh -LE slow   # extra arguments go to ctest: here unit and integration
#   scripts/test.sh -L unit    # the unit tests only (no datasets, no CLI)
set -euo pipefail
cd "$(dirname "$0")/.."
EVOOPT_TEST_TOOLS=1 scripts/setup.sh   # also installs what only the tests need (Chromium, python3-pil)
cd "${EVOOPT_BUILD_DIR:-build}"
cmake --build . -j"$(nproc)"            # the tests (set-up builds only the CLI)
ctest --output-on-failure -j"$(nproc)" "$@"
