#!/usr/bin/env python3
"""The evolved optimizer against tuned baselines over independent searches.

    bench/search_seeds.py run --seeds 0 1 2 3 4 [--out DIR] [--evoopt PATH] -- [evolve flags]
    bench/search_seeds.py read RUN_DIR [RUN_DIR ...]

`run` runs `evoopt evolve --seed S --out DIR/seedS [evolve flags]` for each seed, one after the
other (a finished run directory is kept; an unfinished one is resumed), then reads them.
`read` prints, for finished run directories (each with comparison.json and best_genome.json):
each search's winner and its test fitness, then for every tuned baseline the difference
evolved − baseline (overall test fitness, the search horizon) averaged over searches, with a
95% interval from a hierarchical paired bootstrap: resample the searches with replacement,
then within each drawn search resample its test seeds with replacement (the same seeds for
both methods, so the pairing is kept), average per search and then over searches;
10,000 draws, percentile interval, a fixed RNG seed (the output is reproducible). The
interval therefore includes the variance between searches, which a one-search interval (over
test seeds only, also printed) leaves out.
"""
import json
import os
import random
import subprocess
import sys

DRAWS = 10000


def load(run_dir):
    with open(os.path.join(run_dir, "comparison.json")) as f:
        comparison = json.load(f)
    with open(os.path.join(run_dir, "best_genome.json")) as f:
        best = json.load(f)
    methods = comparison["horizons"][0]["methods"]
    evolved = next(m for m in methods if m["kind"] == "evolved")
    baselines = {m["name"]: m["overall"]["values"] for m in methods if m["kind"] == "baseline"}
    return {
        "dir": run_dir,
        "formula": best.get("formula", "?"),
        "val": best.get("validation_fitness"),
        "evolved": evolved["overall"]["values"],
        "baselines": baselines,
        "steps": comparison["horizons"][0]["steps"],
    }


def mean(xs):
    return sum(xs) / len(xs)


def percentile(sorted_xs, q):
    k = (len(sorted_xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (k - lo)


def paired(search, name):
    a, b = search["evolved"], search["baselines"][name]
    if len(a) != len(b):
        sys.exit(f"search_seeds.py: {search['dir']}: {len(a)} evolved test seeds against {len(b)} for {name}")
    return [x - y for x, y in zip(a, b)]


def hierarchical_interval(diffs_per_search, rng):
    """diffs_per_search: per search, the paired differences per test seed."""
    n = len(diffs_per_search)
    draws = []
    for _ in range(DRAWS):
        total = 0.0
        for _ in range(n):
            d = diffs_per_search[rng.randrange(n)]
            total += mean([d[rng.randrange(len(d))] for _ in range(len(d))])
        draws.append(total / n)
    draws.sort()
    return percentile(draws, 0.025), percentile(draws, 0.975)


def seed_interval(diffs, rng):
    draws = sorted(mean([diffs[rng.randrange(len(diffs))] for _ in range(len(diffs))]) for _ in range(DRAWS))
    return percentile(draws, 0.025), percentile(draws, 0.975)


def summarize(searches):
    """Rows per baseline: (name, mean over searches, interval, wins, per-search means)."""
    names = [n for n in searches[0]["baselines"] if all(n in s["baselines"] for s in searches)]
    rows = []
    for name in names:
        diffs = [paired(s, name) for s in searches]
        per_search = [mean(d) for d in diffs]
        lo, hi = hierarchical_interval(diffs, random.Random(2026))
        rows.append((name, mean(per_search), (lo, hi), sum(1 for d in per_search if d > 0), per_search))
    return rows


def show(searches):
    print(f"{len(searches)} searches; test fitness at {searches[0]['steps']} steps, mean over each search's test seeds\n")
    print("| search | winner | validation | test (evolved) |")
    print("|---|---|---|---|")
    for s in searches:
        val = f"{s['val']:.4f}" if isinstance(s["val"], (int, float)) else "?"
        print(f"| {os.path.basename(os.path.normpath(s['dir']))} | {s['formula']} | {val} | {mean(s['evolved']):.4f} |")
    print("\n| baseline | evolved − baseline, mean over searches | 95% CI (searches and seeds) | searches won | per search |")
    print("|---|---|---|---|---|")
    for name, m, (lo, hi), wins, per_search in summarize(searches):
        print(f"| {name} | {m:+.4f} | [{lo:+.4f}, {hi:+.4f}] | {wins} of {len(per_search)} | {', '.join(f'{d:+.4f}' for d in per_search)} |")
    print("\nOne search alone (interval over its test seeds only):")
    for s in searches:
        cells = []
        for name in s["baselines"]:
            d = paired(s, name)
            lo, hi = seed_interval(d, random.Random(2026))
            cells.append(f"{name} {mean(d):+.4f} [{lo:+.4f}, {hi:+.4f}]")
        print(f"  {os.path.basename(os.path.normpath(s['dir']))}: " + "; ".join(cells))


def main(argv):
    if argv[:1] == ["read"] and len(argv) >= 2:
        show([load(d) for d in argv[1:]])
        return 0
    if argv[:1] == ["run"]:
        rest = argv[1:]
        extra = []
        if "--" in rest:
            i = rest.index("--")
            rest, extra = rest[:i], rest[i + 1:]
        seeds, out, evoopt, i = [], "runs/search-seeds", "build/evoopt", 0
        while i < len(rest):
            if rest[i] == "--seeds":
                i += 1
                while i < len(rest) and not rest[i].startswith("--"):
                    seeds.append(int(rest[i]))
                    i += 1
            elif rest[i] == "--out" and i + 1 < len(rest):
                out, i = rest[i + 1], i + 2
            elif rest[i] == "--evoopt" and i + 1 < len(rest):
                evoopt, i = rest[i + 1], i + 2
            else:
                sys.exit(f"search_seeds.py run: unknown argument '{rest[i]}'")
        if len(seeds) < 2:
            sys.exit("search_seeds.py run: give at least two --seeds")
        dirs = []
        for s in seeds:
            d = os.path.join(out, f"seed{s}")
            dirs.append(d)
            if os.path.exists(os.path.join(d, "summary.json")):
                continue
            cmd = [evoopt, "resume", d] if os.path.exists(os.path.join(d, "config.json")) else [evoopt, "evolve", "--seed", str(s), "--out", d] + extra
            if subprocess.call(cmd) != 0:
                sys.exit(f"search_seeds.py: {' '.join(cmd)} failed")
        show([load(d) for d in dirs])
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
