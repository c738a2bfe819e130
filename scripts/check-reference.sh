#!/usr/bin/env bash
# Fails when docs/config-reference.md differs from what `evoopt config reference` prints
# (the config schemas' keys, types, defaults, ranges, flags and help). To refresh it:
#   build/evoopt config reference > docs/config-reference.md
set -euo pipefail
cd "$(dirname "$0")/.."
evoopt="${EVOOPT_BUILD_DIR:-build}/evoopt"
if ! diff -u docs/config-reference.md <("$evoopt" config reference); then
  echo "reference: docs/config-reference.md is stale; run: $evoopt config reference > docs/config-reference.md" >&2
  exit 1
fi
echo "reference: ok"
