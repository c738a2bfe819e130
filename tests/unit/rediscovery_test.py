#!/usr/bin/env python3
"""bench/rediscovery.py on hand-made run directories: the first genome to reach the target
counted in distinct genomes in creation order (a repeated genome counts once, a raced-out one
not at all), the target read from a study's tuned baseline, and a target never reached. Run by
ctest (label unit)."""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "rediscovery.py")


def make_search(root, individuals):
    os.makedirs(root)
    rows = []
    for k, (fitness, h, generation, origin, raced) in enumerate(individuals):
        rows.append({"id": k, "fitness": fitness, "hash": h, "generation": generation, "origin": origin, "raced_out_at": raced,
                     "formula": f"program {h}"})
    with open(os.path.join(root, "lineage.json"), "w") as f:
        json.dump({"individuals": rows}, f)


def run(*args):
    out = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return out.stdout


def main():
    with tempfile.TemporaryDirectory() as tmp:
        search = os.path.join(tmp, "seed0")
        make_search(search, [
            (0.60, "a", 0, "seed:sgd", 0),
            (0.75, "b", 0, "mutant", 8),    # raced out: not counted, never the best
            (0.60, "a", 1, "mutation", 0),  # the seed again: one distinct genome
            (0.66, "c", 1, "mutation", 0),
            (0.71, "d", 2, "crossover", 0),
        ])
        study = os.path.join(tmp, "study0")
        os.makedirs(study)
        with open(os.path.join(study, "comparison.json"), "w") as f:
            json.dump({"baselines": [{"name": "adam", "chosen": {"val_fitness": 0.65}}]}, f)
        out = run("--baseline", "adam", "--baseline-run", study, search)
        row = [line for line in out.splitlines() if line.startswith("| seed0")][0]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "3", cells        # generations 0-2
        assert cells[2] == "0.7100", cells   # the best trained to the end
        assert cells[3] == "0.6000", cells   # the SGD seed
        assert cells[4] == "0.6500", cells   # tuned Adam's validation fitness
        assert cells[5] == "2 of 3, generation 1", cells
        assert cells[6] == "program d", cells
        out = run("--target", "0.9", search)
        assert "not reached (3 genomes)" in out, out
        bad = subprocess.run([sys.executable, SCRIPT, "--baseline", "adam", search], capture_output=True, text=True)
        assert bad.returncode != 0 and "--baseline-run" in bad.stderr, bad.stderr
    print("rediscovery: ok")


if __name__ == "__main__":
    main()
