#!/usr/bin/env python3
"""The evolved optimizer against tuned baselines over independent searches.

    bench/search_seeds.py run --seeds 0 1 2 3 4 [--out DIR] [--evoopt PATH] -- [evolve flags]
    bench/search_seeds.py read RUN_DIR [RUN_DIR ...]

`run` runs `evoopt evolve --seed S --out DIR/seedS [evolve flags]` for each seed, one after the
other (a finished run directory is kept; an unfinished one is resumed), then reads them.
`read` prints, for finished run directories (each with comparison.json and best_genome.json):
each search's winner and its test fitness, then for every tuned baseline the difference
evolved − baseline (overall test fitness, the search horizon): each search's mean over its
test seeds, their mean over the searches, and a 95% t-interval over the searches; the same
for the per-workload block (quasirandom protocol) and the held-out tasks where every study
has them
(mean ± t(0.975, n−1)·s/√n, s the standard deviation of the per-search means). Each search's
mean already carries its test-seed noise, so the interval covers the variance between
studies (each seed changes the search, the baselines' tuning and the test seeds) and within
them. Each study's own interval (over its test seeds only, from comparison.json) is printed
beside it: it leaves the variance between searches out.
"""
import json
import math
import os
import subprocess
import sys

def load(run_dir):
    with open(os.path.join(run_dir, "comparison.json")) as f:
        comparison = json.load(f)
    with open(os.path.join(run_dir, "best_genome.json")) as f:
        best = json.load(f)
    methods = comparison["horizons"][0]["methods"]
    evolved = next(m for m in methods if m["kind"] == "evolved")
    baselines = {m["name"]: m["overall"]["values"] for m in methods if m["kind"] == "baseline"}
    # The other blocks at the search horizon, where the study has them: each workload tested
    # with its own tuning (quasirandom protocol), and the held-out tasks with the settings
    # chosen on the search tasks.
    blocks = {}
    for block, ms in (("per workload", comparison.get("per_workload", {}).get("methods")),
                      ("held-out tasks", (comparison.get("transfer", {}).get("horizons") or [{}])[0].get("methods"))):
        if not ms:
            continue
        ev = next((m for m in ms if m["kind"] == "evolved"), None)
        if ev is not None:
            blocks[block] = {"evolved": ev["overall"]["values"],
                             "baselines": {m["name"]: m["overall"]["values"] for m in ms if m["kind"] == "baseline"}}
    own = {}
    for m in methods:
        d = m["overall"].get("evolved_minus_this") if m["kind"] == "baseline" else None
        if d and d.get("ci95_low") is not None and d.get("ci95_high") is not None:
            own[m["name"]] = f"[{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}]"
    return {
        "dir": run_dir,
        "formula": best.get("formula", "?"),
        "val": best.get("validation_fitness"),
        "evolved": evolved["overall"]["values"],
        "baselines": baselines,
        "own": own,
        "steps": comparison["horizons"][0]["steps"],
        "blocks": blocks,
    }


def mean(xs):
    return sum(xs) / len(xs)


# Two-sided 95% quantiles of Student's t by degrees of freedom (beyond the table: the next
# smaller tabulated df's value, which errs wide).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def t975(df):
    return T975[max(k for k in T975 if k <= df)]


def paired(search, name):
    a, b = search["evolved"], search["baselines"][name]
    if len(a) != len(b):
        sys.exit(f"search_seeds.py: {search['dir']}: {len(a)} evolved test seeds against {len(b)} for {name}")
    return [x - y for x, y in zip(a, b)]


def t_interval(xs):
    n = len(xs)
    if n < 2:
        return None
    m = mean(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = t975(n - 1) * sd / math.sqrt(n)
    return m - h, m + h


def summarize(searches):
    """Rows per baseline: (name, mean over searches, interval, wins, per-search means)."""
    names = [n for n in searches[0]["baselines"] if all(n in s["baselines"] for s in searches)]
    rows = []
    for name in names:
        diffs = [paired(s, name) for s in searches]
        per_search = [mean(d) for d in diffs]
        rows.append((name, mean(per_search), t_interval(per_search), sum(1 for d in per_search if d > 0), per_search))
    return rows


def show(searches):
    print(f"{len(searches)} searches; test fitness at {searches[0]['steps']} steps, mean over each search's test seeds\n")
    print("| search | winner | validation | test (evolved) |")
    print("|---|---|---|---|")
    for s in searches:
        val = f"{s['val']:.4f}" if isinstance(s["val"], (int, float)) else "?"
        print(f"| {os.path.basename(os.path.normpath(s['dir']))} | {s['formula']} | {val} | {mean(s['evolved']):.4f} |")
    print("\n| baseline | evolved − baseline, mean over searches | 95% t-interval over searches | searches won | per search |")
    print("|---|---|---|---|---|")
    for name, m, ci, wins, per_search in summarize(searches):
        cell = f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "(one search: none)"
        print(f"| {name} | {m:+.4f} | {cell} | {wins} of {len(per_search)} | {', '.join(f'{d:+.4f}' for d in per_search)} |")
    for block in searches[0]["blocks"]:
        if not all(block in s["blocks"] for s in searches):
            continue
        print(f"\n{block[0].upper()}{block[1:]}: evolved − baseline, mean over searches, 95% t-interval over searches, searches won")
        print("\n| baseline | mean | 95% t-interval | searches won |")
        print("|---|---|---|---|")
        views = [dict(s, evolved=s["blocks"][block]["evolved"], baselines=s["blocks"][block]["baselines"]) for s in searches]
        for name, m, ci, wins, per_search in summarize(views):
            cell = f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "(one search: none)"
            print(f"| {name} | {m:+.4f} | {cell} | {wins} of {len(per_search)} |")
    print("\nEach study alone (its own interval, over its test seeds only):")
    for s in searches:
        cells = [f"{name} {mean(paired(s, name)):+.4f} {s['own'].get(name, '')}".rstrip() for name in s["baselines"]]
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
