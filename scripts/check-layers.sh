#!/usr/bin/env bash
# Fails when a module includes a module above it. The layers, lowest first: a module in
# src/M or include/evoopt/M may include only the modules before it in this list (apps/ may
# include any). docs/architecture.md draws the same order.
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=(common data genome optim task export train eval ga experiment report)
status=0
for ((i = 0; i < ${#LAYERS[@]}; i++)); do
  m=${LAYERS[$i]}
  allowed=" $m ${LAYERS[*]:0:$i} "
  while IFS= read -r line; do
    [ -z "$line" ] && continue
    dep=$(sed -E 's|.*#include "evoopt/([a-z_]+)/.*|\1|' <<<"$line")
    if [[ "$allowed" != *" $dep "* ]]; then
      echo "layers: ${line%%:#*}: $m includes $dep, a layer above it" >&2
      status=1
    fi
  done < <(grep -rnE '^#include "evoopt/[a-z_]+/' "src/$m" "include/evoopt/$m" 2>/dev/null || true)
done
for d in src/* include/evoopt/*; do
  m=$(basename "$d")
  if [[ " ${LAYERS[*]} " != *" $m "* ]]; then
    echo "layers: $d is in no layer (add it to scripts/check-layers.sh and docs/architecture.md)" >&2
    status=1
  fi
done
if [ $status -eq 0 ]; then echo "layers: ok"; fi
exit $status
