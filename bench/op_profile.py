#!/usr/bin/env python3
"""Sums a libtorch operator trace (MIXQ_OP_PROFILE=<dir> mixq quantize ... --method brecq) per op.

Self time = an event's duration minus that of the events nested in it on the same thread, so
aten::conv2d -> aten::convolution -> aten::mkldnn_convolution is counted once. Prints the ops with
the largest self time, per iteration when --iters is given.

    python3 bench/op_profile.py <dir>/weights-_layers_layers.0.trace.json [--iters 400] [--top 25]
"""
import argparse
import collections
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    ev = json.load(open(args.trace))
    ev = ev["traceEvents"] if isinstance(ev, dict) else ev
    ev = [e for e in ev if e.get("ph") == "X" and "dur" in e]
    by_tid = collections.defaultdict(list)
    for e in ev:
        by_tid[e.get("tid")].append(e)
    self_t = collections.Counter()
    calls = collections.Counter()
    for es in by_tid.values():
        es.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack = []  # [end, event, child time]
        for e in es:
            ts, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1][0] <= ts:
                end, pe, child = stack.pop()
                self_t[pe["name"]] += float(pe["dur"]) - child
                if stack:
                    stack[-1][2] += float(pe["dur"])
            stack.append([ts + dur, e, 0.0])
            calls[e["name"]] += 1
        while stack:
            end, pe, child = stack.pop()
            self_t[pe["name"]] += float(pe["dur"]) - child
            if stack:
                stack[-1][2] += float(pe["dur"])
    total = sum(self_t.values())
    per = 1.0 / args.iters if args.iters else 1.0
    unit = "us/iter" if args.iters else "us"
    print(f"| op | self {unit} | share | calls{'/iter' if args.iters else ''} |")
    print("|---|---|---|---|")
    for name, t in self_t.most_common(args.top):
        print(f"| {name} | {t * per:.1f} | {100 * t / total:.1f}% | {calls[name] * per:.1f} |")
    print(f"| **total** | **{total * per:.1f}** | | |")


if __name__ == "__main__":
    main()
