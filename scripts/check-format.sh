#!/usr/bin/env bash
# Fails when any C++ file differs from .clang-format's layout (clang-format -i fixes it).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror
echo "format: ok"
