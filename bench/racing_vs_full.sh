#!/usr/bin/env bash
# Racing vs full evaluation on several seeds (issue 10): for each seed, the default search
# with and without --racing (`evoopt evolve --seed S [--racing] --no-compare
# --no-break-even`), then per seed the search's training steps and the winner's test
# fitness (3 fresh test seeds), and over the seeds the paired difference racing − full
# with a 95% t-interval.
#
#   bash bench/racing_vs_full.sh [--out DIR (runs/racing-vs-full)] [--seeds "0 1 2 3 4"] [--continue] [-- extra evolve flags]
# --continue: race with --racing-continue (rungs continued from saved states) instead of --racing.
# A seed whose run directory (DIR/seedS-full, DIR/seedS-racing) holds a finished study is
# not run again (a half-finished one resumes), so the summary can be re-printed at no cost.
# Needs a Release build (build/evoopt) and the data (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/racing-vs-full seeds="0 1 2 3 4" racing_flag=--racing
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --continue) racing_flag=--racing-continue; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "racing_vs_full.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
finished() { [[ -f "$1/summary.json" ]] && grep -q '"completed": true' "$1/summary.json"; }
for s in $seeds; do
  for mode in full racing; do
    dir="$out/seed$s-$mode"
    finished "$dir" && continue
    flags=(--seed "$s" --no-compare --no-break-even --out "$dir")
    [[ $mode == racing ]] && flags+=("$racing_flag")
    echo "== seed $s, $mode: build/evoopt evolve ${flags[*]} ${extra[*]}"
    if [[ -f "$dir/checkpoint.json" ]]; then build/evoopt resume "$dir" >/dev/null; else build/evoopt evolve "${flags[@]}" "${extra[@]}" >/dev/null; fi
  done
done
/usr/bin/python3 - "$out" $seeds <<'PY'
import json, math, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
# Two-sided 95% quantiles of Student's t, df 1..10 (beyond: 2.0).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
def load(seed, mode):
    s = json.load(open(f"{out}/seed{seed}-{mode}/summary.json"))
    return s["cost"]["search_training_steps"], s["final_test"]["overall_mean"], s["final_test"]["overall_std"]
print(f"{'seed':>4}  {'search steps full':>17}  {'racing':>7}  {'saved':>6}  {'test fitness full':>18}  {'racing':>16}  {'racing - full':>13}")
diffs, saved = [], []
for seed in seeds:
    (sf, ff, ffs), (sr, fr, frs) = load(seed, "full"), load(seed, "racing")
    diffs.append(fr - ff)
    saved.append(1 - sr / sf)
    print(f"{seed:>4}  {sf:>17,}  {sr:>7,}  {100 * (1 - sr / sf):5.1f}%  {ff:11.4f} ± {ffs:.4f}  {fr:9.4f} ± {frs:.4f}  {fr - ff:+13.4f}")
n = len(diffs)
mean = statistics.fmean(diffs)
if n > 1:
    sd = statistics.stdev(diffs)
    half = (T975[n - 2] if n - 1 <= len(T975) else 2.0) * sd / math.sqrt(n)
    print(f"racing - full over {n} seeds: mean {mean:+.4f}, sd {sd:.4f}, 95% t-interval [{mean - half:+.4f}, {mean + half:+.4f}]; "
          f"steps saved {100 * statistics.fmean(saved):.1f}% on average")
else:
    print(f"racing - full on 1 seed: {mean:+.4f}")
PY
