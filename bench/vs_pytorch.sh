#!/usr/bin/env bash
# evoopt vs a straightforward PyTorch loop (bench/pytorch_reference.py), side by side in one
# run: the same models, tasks, batch, steps, training subset and held-out images, the same
# BLAS (both link the system's libblas.so.3). The reference runs one run after another with
# torch's threads on all cores; evoopt runs `evoopt bench workers` (worker processes, one
# thread each, one per core by default), task by task. Prints both rates and their ratio
# (evoopt's time excludes its workers' start-up, the reference's its data loading).
#
#   bash bench/vs_pytorch.sh [--model paper|tiny] [--steps 500] [--genomes 2] [--workers N] [--racing]
# --racing: then one racing generation at the same settings in each racing mode
# (bench/race_paper.toml: 9 genomes, `evoopt evolve` with --racing, then --racing-continue; the
# generation's seconds from history.csv), its genome evaluations per hour and their ratio to
# the reference's runs per hour measured just before.
# Needs a Release build (build/evoopt), the data (scripts/setup.sh) and /usr/bin/python3
# with torch (Debian python3-torch, installed by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
model=paper steps=500 genomes=2 workers=$(nproc) batch=128 subset=15000 val=5000 racing=0
tasks="mnist fashion_mnist cifar10"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --genomes) genomes=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --racing) racing=1; shift ;;
    *) echo "vs_pytorch.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
data=${EVOOPT_DATA_DIR:-data}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Task by task, the reference and then evoopt on the same runs, so that both sides of each
# task's ratio are timed within minutes of each other (this machine's speed drifts by up to
# ±30% over an hour).
for task in $tasks; do
  echo "== $task: PyTorch reference ($model, $steps steps, batch $batch, $subset training images, $val held out)"
  /usr/bin/python3 bench/pytorch_reference.py --data-dir "$data" --tasks "$task" --model "$model" --steps "$steps" \
    --batch "$batch" --train-subset "$subset" --eval-images "$val" --runs "$genomes" --out "$out/ref.$task.json"
  echo "== $task: evoopt bench workers (the same runs: $genomes genomes)"
  build/evoopt bench workers --workers "$workers" --genomes "$genomes" --tasks "$task" --model "$model" --steps "$steps" \
    --batch-size "$batch" --train-subset "$subset" --val-size "$val" --data-dir "$data" | tee "$out/evoopt.$task.txt"
done
if [[ $racing == 1 ]]; then
  for mode in racing racing-continue; do
    echo "== a racing generation at the same settings: build/evoopt evolve --config bench/race_paper.toml --$mode"
    build/evoopt evolve --config bench/race_paper.toml "--$mode" --model "$model" --steps "$steps" --train-subset "$subset" \
      --val-size "$val" --workers "$workers" --data-dir "$data" --out "$out/$mode" >/dev/null
  done
fi
/usr/bin/python3 - "$out" $tasks <<'PY'
import json, re, sys
out, tasks = sys.argv[1], sys.argv[2:]
row = re.compile(r"^(in-process|worker processes)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x")
ref_s = ref_runs = evo_s = evo_runs = 0.0
print(f"{'task':<14} {'reference s':>12} {'evoopt s':>9} {'ratio':>6}")
for t in tasks:
    ref = json.load(open(f"{out}/ref.{t}.json"))
    rows = [m for m in map(row.match, open(f"{out}/evoopt.{t}.txt")) if m]
    kind, workers, start, secs = rows[-1].group(1), int(rows[-1].group(2)), float(rows[-1].group(3)), float(rows[-1].group(4))
    runs = len(ref["runs"])
    ref_s += ref["seconds"]; ref_runs += runs; evo_s += secs; evo_runs += runs
    print(f"{t:<14} {ref['seconds']:12.1f} {secs:9.1f} {ref['seconds'] / secs:5.2f}x")
ref_rate, evo_rate = 3600 * ref_runs / ref_s, 3600 * evo_runs / evo_s
print(f"== evoopt ({kind}, {workers}) {evo_rate:.1f} runs/hour vs PyTorch reference {ref_rate:.1f} runs/hour: {evo_rate / ref_rate:.2f}x")
import csv, os
for mode in ("racing", "racing-continue"):
    if not os.path.exists(f"{out}/{mode}/history.csv"):
        continue
    gen = list(csv.DictReader(open(f"{out}/{mode}/history.csv")))[0]
    evals, secs = int(gen["evaluations"]), float(gen["seconds"])
    rate = 3600 * evals / secs
    print(f"== racing generation (--{mode}): {evals} genome-task evaluations in {secs:.1f} s ({gen['steps_saved']} steps saved) = "
          f"{rate:.1f} per hour: {rate / ref_rate:.2f}x the reference, {rate / evo_rate:.2f}x evoopt without racing")
PY
