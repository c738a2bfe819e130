#!/usr/bin/env bash
# evoopt vs a straightforward PyTorch loop (bench/pytorch_reference.py), side by side in one
# run: the same models, tasks, batch, steps, training subset and held-out images, the same
# BLAS (both link the system's libblas.so.3). The reference runs one run after another with
# torch's threads on all cores; evoopt runs `evoopt bench workers` (worker processes, one
# thread each, one per core by default). Prints both rates and their ratio.
#
#   bash bench/vs_pytorch.sh [--model paper|tiny] [--steps 500] [--genomes 2] [--workers N]
# Needs a Release build (build/evoopt), the data (scripts/setup.sh) and /usr/bin/python3
# with torch (Debian python3-torch, installed by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
model=paper steps=500 genomes=2 workers=$(nproc) batch=128 subset=15000 val=5000
tasks="mnist fashion_mnist cifar10"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --genomes) genomes=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    *) echo "vs_pytorch.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
data=${EVOOPT_DATA_DIR:-data}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== PyTorch reference ($model, $steps steps, batch $batch, $subset training images, $val held out)"
/usr/bin/python3 bench/pytorch_reference.py --data-dir "$data" --tasks $tasks --model "$model" --steps "$steps" \
  --batch "$batch" --train-subset "$subset" --eval-images "$val" --runs "$genomes" --out "$out/ref.json"
echo "== evoopt bench workers (the same runs: $genomes genomes x each task)"
build/evoopt bench workers --workers "$workers" --genomes "$genomes" --tasks $tasks --model "$model" --steps "$steps" \
  --batch-size "$batch" --train-subset "$subset" --val-size "$val" --data-dir "$data" | tee "$out/evoopt.txt"
/usr/bin/python3 - "$out/ref.json" "$out/evoopt.txt" <<'PY'
import json, re, sys
ref = json.load(open(sys.argv[1]))["runs_per_hour"]
row = re.compile(r"^(in-process|worker processes)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+[\d.]+x")
rates = [(m.group(1), int(m.group(2)), float(m.group(3))) for m in map(row.match, open(sys.argv[2])) if m]
kind, workers, rate = rates[-1]
print(f"== evoopt ({kind}, {workers}) {rate:.1f} runs/hour vs PyTorch reference {ref:.1f} runs/hour: {rate / ref:.2f}x")
PY
