#!/usr/bin/env python3
"""The study ETA against the time that actually remained.

    bench/eta_check.py run -- build/evoopt evolve --out DIR   # runs it, stamps each output line
    bench/eta_check.py read LOG                              # reads a stamped log again

`run` writes LOG (default eta.log; --log to choose) with each line of the command's output
prefixed by the seconds since the command started, then prints the check. The check takes
the first "study ETA" after the study's first line and after each "<Phase> finished" line
(a stage boundary), and compares it with the time the command still took from that line on.
The study must run to its end (the last line's time is the end).
"""
import re
import subprocess
import sys
import time

ETA = re.compile(r"study ETA (\d+ h \d+ min|\d+ min \d+ s|\d+ min|\d+ s)")


def seconds(text):
    if m := re.fullmatch(r"(\d+) h (\d+) min", text):
        return 3600 * int(m[1]) + 60 * int(m[2])
    if m := re.fullmatch(r"(\d+) min (\d+) s", text):
        return 60 * int(m[1]) + int(m[2])
    if m := re.fullmatch(r"(\d+) min", text):
        return 60 * int(m[1])
    return int(re.fullmatch(r"(\d+) s", text)[1])


def check(lines):
    """lines: (t, text). Returns rows (boundary, t, eta, actual, error)."""
    end = lines[-1][0]
    rows, boundary = [], "study started"
    for t, text in lines:
        if " finished: " in text:
            boundary = text.split(" finished:")[0] + " finished"
            continue
        m = ETA.search(text)
        if m and boundary:
            eta, actual = seconds(m[1]), end - t
            rows.append((boundary, t, eta, actual, (eta - actual) / actual if actual > 0 else float("nan")))
            boundary = None
    return rows


def show(rows, end):
    print(f"study took {end:.0f} s")
    print("| boundary | at (s) | study ETA (s) | remained (s) | error |")
    print("|---|---|---|---|---|")
    for b, t, eta, actual, err in rows:
        print(f"| {b} | {t:.0f} | {eta} | {actual:.0f} | {err:+.0%} |")
    worst = max((abs(r[4]) for r in rows), default=float("nan"))
    print(f"largest error: {worst:.0%}")


def read_log(path):
    lines = []
    for raw in open(path, encoding="utf-8", errors="replace"):
        t, _, text = raw.rstrip("\n").partition(" ")
        lines.append((float(t), text))
    return lines


def main(argv):
    if len(argv) >= 2 and argv[0] == "read":
        lines = read_log(argv[1])
        show(check(lines), lines[-1][0])
        return 0
    if argv and argv[0] == "run":
        log = "eta.log"
        rest = argv[1:]
        if rest[:1] == ["--log"]:
            log, rest = rest[1], rest[2:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            sys.exit("eta_check.py run: give the command after --")
        t0 = time.monotonic()
        lines = []
        with subprocess.Popen(rest, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as p, open(log, "w") as out:
            for text in p.stdout:
                t = time.monotonic() - t0
                lines.append((t, text.rstrip("\n")))
                out.write(f"{t:.1f} {text}")
                out.flush()
        if p.returncode != 0:
            sys.exit(f"eta_check.py: the command exited with {p.returncode} (log: {log})")
        lines.append((time.monotonic() - t0, ""))
        with open(log, "a") as out:
            out.write(f"{lines[-1][0]:.1f} \n")
        show(check(lines), lines[-1][0])
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
