#!/usr/bin/env python3
"""bench/search_seeds.py on hand-made run directories: the hierarchical bootstrap's interval
covers the spread between searches, a search whose seeds all agree adds no seed-level
spread, and mismatched seed counts are an error. Run by ctest (label unit)."""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "search_seeds.py")


def make_run(root, name, evolved, adam, formula):
    d = os.path.join(root, name)
    os.makedirs(d)
    methods = [
        {"name": "evolved", "kind": "evolved", "overall": {"values": evolved}},
        {"name": "adam (tuned)", "kind": "baseline", "overall": {"values": adam}},
    ]
    with open(os.path.join(d, "comparison.json"), "w") as f:
        json.dump({"horizons": [{"steps": 100, "methods": methods}]}, f)
    with open(os.path.join(d, "best_genome.json"), "w") as f:
        json.dump({"formula": formula, "validation_fitness": 0.7}, f)
    return d


def read(dirs):
    p = subprocess.run([sys.executable, SCRIPT, "read"] + dirs, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def row(out, name):
    return next(line for line in out.splitlines() if line.startswith(f"| {name} |"))


def main():
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as root:
        # Three searches, each with the same difference at every test seed: +0.01, +0.02, +0.03.
        dirs = [make_run(root, f"seed{i}", [0.70 + d] * 4, [0.70] * 4, f"winner {i}") for i, d in enumerate([0.01, 0.02, 0.03])]
        code, out, err = read(dirs)
        check(code == 0, f"read failed: {err}")
        cells = [c.strip() for c in row(out, "adam (tuned)").split("|")[1:-1]]
        check(cells[1] == "+0.0200", f"mean over searches: {cells[1]}")
        lo, hi = (float(x) for x in cells[2].strip("[]").split(","))
        # Only the searches vary: the interval lies within their range and around the mean.
        check(0.01 - 1e-9 <= lo < 0.02 < hi <= 0.03 + 1e-9, f"interval {lo}, {hi}")
        check(cells[3] == "3 of 3", f"wins: {cells[3]}")
        check("seed1: adam (tuned) +0.0200 [+0.0200, +0.0200]" in out, "a search whose seeds agree has a point interval")
        check("| seed2 | winner 2 | 0.7000 | 0.7300 |" in out, "winner table")
        # The same searches with spread between seeds too: the interval widens.
        spread = [make_run(root, f"spread{i}", [0.70 + d + e for e in (-0.02, 0.0, 0.02, 0.0)], [0.70] * 4, "w") for i, d in enumerate([0.01, 0.02, 0.03])]
        _, out2, _ = read(spread)
        lo2, hi2 = (float(x) for x in row(out2, "adam (tuned)").split("|")[3].strip(" []").split(","))
        check(hi2 - lo2 > hi - lo, f"seed spread widens the interval: {lo2}, {hi2} against {lo}, {hi}")
        # Reproducible: a fixed RNG seed.
        check(read(dirs)[1] == out, "same output twice")
        # Mismatched test seeds: one line, non-zero exit.
        bad = make_run(root, "bad", [0.7] * 3, [0.7] * 4, "w")
        code, _, err = read([dirs[0], bad])
        check(code != 0 and "3 evolved test seeds against 4" in err, f"mismatch: {code} {err}")

    for f in failures:
        print("FAILED:", f)
    print("search_seeds: ok" if not failures else f"search_seeds: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
