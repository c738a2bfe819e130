#!/usr/bin/env python3
"""bench/search_seeds.py on hand-made run directories: the t-interval over searches, each
study's own interval printed beside it, one search without an interval, and mismatched seed
counts as an error. Run by ctest (label unit)."""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "search_seeds.py")


def make_run(root, name, evolved, adam, formula, own=None, per_workload=None):
    d = os.path.join(root, name)
    os.makedirs(d)
    adam_overall = {"values": adam}
    if own:
        adam_overall["evolved_minus_this"] = {"mean": 0, "ci95_low": own[0], "ci95_high": own[1], "significant": True}
    methods = [
        {"name": "evolved", "kind": "evolved", "overall": {"values": evolved}},
        {"name": "adam (tuned)", "kind": "baseline", "overall": adam_overall},
    ]
    comparison = {"horizons": [{"steps": 100, "methods": methods}]}
    if per_workload:  # (evolved, adam) values of the per-workload block
        comparison["per_workload"] = {"methods": [
            {"name": "evolved (tuned)", "kind": "evolved", "overall": {"values": per_workload[0]}},
            {"name": "adam (tuned)", "kind": "baseline", "overall": {"values": per_workload[1]}},
        ]}
    with open(os.path.join(d, "comparison.json"), "w") as f:
        json.dump(comparison, f)
    with open(os.path.join(d, "best_genome.json"), "w") as f:
        json.dump({"formula": formula, "validation_fitness": 0.7}, f)
    return d


def read(dirs):
    p = subprocess.run([sys.executable, SCRIPT, "read"] + dirs, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def row(out, name, after=""):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after)) if after else 0
    return [c.strip() for c in next(line for line in lines[start:] if line.startswith(f"| {name} |")).split("|")[1:-1]]


def main():
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as root:
        # Three searches whose per-search mean differences are +0.01, +0.02, +0.03 (seed spread
        # inside each): mean +0.02, s = 0.01, t(0.975, 2) = 4.303: +0.02 ± 0.0248.
        spread = (-0.02, 0.0, 0.02, 0.0)
        # Per workload the evolved genome loses by 0.01, 0.02, 0.03: mean −0.02, no search won.
        dirs = [
            make_run(root, f"seed{i}", [0.70 + d + e for e in spread], [0.70] * 4, f"winner {i}", own=(d - 0.01, d + 0.01),
                     per_workload=([0.80 - d] * 4, [0.80] * 4))
            for i, d in enumerate([0.01, 0.02, 0.03])
        ]
        code, out, err = read(dirs)
        check(code == 0, f"read failed: {err}")
        cells = row(out, "adam (tuned)")
        check(cells[1] == "+0.0200", f"mean over searches: {cells[1]}")
        check(cells[2] == "[-0.0048, +0.0448]", f"t-interval: {cells[2]}")
        check(cells[3] == "3 of 3", f"wins: {cells[3]}")
        check(cells[4] == "+0.0100, +0.0200, +0.0300", f"per search: {cells[4]}")
        check("seed1: adam (tuned) +0.0200 [+0.0100, +0.0300]" in out, "each study's own interval, from comparison.json")
        check("| seed2 | winner 2 | 0.7000 | 0.7300 |" in out, "winner table")
        per = row(out, "adam (tuned)", after="Per workload")
        check(per[1] == "-0.0200" and per[2] == "[-0.0448, +0.0048]" and per[3] == "0 of 3", f"per workload: {per}")
        check("Held-out tasks" not in out, "no held-out block where the studies have none")
        # One search: no interval over searches.
        _, one, _ = read(dirs[:1])
        check(row(one, "adam (tuned)")[2] == "(one search: none)", "one search has no interval")
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
