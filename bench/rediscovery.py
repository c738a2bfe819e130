#!/usr/bin/env python3
"""Did a program search started from SGD alone reach a target validation fitness, and when?

    bench/rediscovery.py [--target F | --baseline NAME --baseline-run DIR ...] RUN_DIR ...

RUN_DIR: finished or unfinished program searches (`evoopt evolve --space programs --seed-presets
sgd --fill mutants ...`). The target is a fitness F, or a tuned baseline's validation fitness
(its `chosen.val_fitness` in comparison.json) from the studies given by --baseline-run (once
per RUN_DIR), paired with the RUN_DIRs in order (the same seed's study, so the same tasks and budget). For
each search it prints: the generations done, the best validation fitness, the seed's own
fitness (SGD as a program), the first individual to reach the target (counted in distinct
genomes trained, in the order the search created them, and its generation) and the best
program in its canonical (simplified) form.
"""
import argparse
import json
import os


def load_json(path):
    with open(path) as f:
        return json.load(f)


def baseline_fitness(study_dir, name):
    comparison = load_json(os.path.join(study_dir, "comparison.json"))
    for b in comparison["baselines"]:
        if b["name"] == name:
            return b["chosen"]["val_fitness"]
    raise SystemExit(f"{study_dir}: no baseline {name} in comparison.json")


def summarise(run_dir, target):
    lineage = load_json(os.path.join(run_dir, "lineage.json"))["individuals"]
    trained = [i for i in lineage if i.get("fitness") is not None and not i.get("raced_out_at")]
    if not trained:
        return None
    seen, reached = set(), None
    for i in sorted(trained, key=lambda i: i["id"]):
        seen.add(i["hash"])
        if reached is None and target is not None and i["fitness"] >= target:
            reached = (len(seen), i["generation"])
    best = max(trained, key=lambda i: (i["fitness"], -i["id"]))
    seed = next((i for i in trained if i["origin"].startswith("seed:")), None)
    return {
        "generations": 1 + max(i["generation"] for i in trained),
        "best": best["fitness"],
        "seed": seed["fitness"] if seed else None,
        "reached": reached,
        "distinct": len(seen),
        "formula": best["formula"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float)
    parser.add_argument("--baseline")
    parser.add_argument("--baseline-run", action="append", default=[])
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    if args.baseline and len(args.baseline_run) != len(args.runs):
        raise SystemExit("--baseline-run must name one study for each RUN_DIR")
    print("| search | generations | best validation | SGD seed | target | reached at (distinct genomes, generation) | best program |")
    print("|---|---|---|---|---|---|---|")
    for k, run in enumerate(args.runs):
        target = baseline_fitness(args.baseline_run[k], args.baseline) if args.baseline else args.target
        s = summarise(run, target)
        if s is None:
            print(f"| {os.path.basename(run)} | 0 | | | | | |")
            continue
        reached = f"{s['reached'][0]} of {s['distinct']}, generation {s['reached'][1]}" if s["reached"] else f"not reached ({s['distinct']} genomes)"
        seed = f"{s['seed']:.4f}" if s["seed"] is not None else ""
        tgt = f"{target:.4f}" if target is not None else ""
        print(f"| {os.path.basename(run)} | {s['generations']} | {s['best']:.4f} | {seed} | {tgt} | {reached} | {s['formula']} |")


if __name__ == "__main__":
    main()
