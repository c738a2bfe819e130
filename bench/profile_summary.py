#!/usr/bin/python3
"""Sums a libtorch profiler trace (evoopt bench train --profile PREFIX) per operator.

  /usr/bin/python3 bench/profile_summary.py PREFIX.mnist.paper.channels_last.json [--top 25]

Prints each operator's total time, its self time (total minus the operators it called),
call count and share of the traced time. Self times add up to the traced time.
"""
import argparse
import collections
import json


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    events = json.load(open(a.trace))
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    spans = sorted(((e["ts"], e["ts"] + e["dur"], e["name"], e.get("tid", 0)) for e in events if e.get("ph") == "X"),
                   key=lambda s: (s[3], s[0], -s[1]))
    total = collections.Counter()
    self_time = collections.Counter()
    calls = collections.Counter()
    stack = []  # per thread: enclosing spans
    for start, end, name, tid in spans:
        while stack and (stack[-1][3] != tid or stack[-1][1] <= start):
            stack.pop()
        total[name] += end - start
        self_time[name] += end - start
        calls[name] += 1
        if stack:
            self_time[stack[-1][2]] -= end - start
        stack.append((start, end, name, tid))
    traced = sum(self_time.values())
    print(f"{'operator':<44} {'self ms':>9} {'share':>6} {'total ms':>9} {'calls':>7}")
    for name, s in self_time.most_common(a.top):
        print(f"{name[:44]:<44} {s / 1000:9.1f} {100 * s / traced:5.1f}% {total[name] / 1000:9.1f} {calls[name]:7d}")
    print(f"traced: {traced / 1000:.1f} ms")


if __name__ == "__main__":
    main()
