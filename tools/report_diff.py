#!/usr/bin/env python3
"""Whether two study reports (`blockscope report NAME --out DIR`) say the same: every file of
one is in the other with the same bytes, except that RFC 3339 times (when each study was
declared) are not compared. Used by tools/test-slurm: a study trained on Slurm and the same
study trained locally must give the same report.

Usage: tools/report_diff.py DIR_A DIR_B   (exit 0 if equal; otherwise the differences, exit 1)
"""
import os
import re
import sys

TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def files(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def main():
    a, b = sys.argv[1], sys.argv[2]
    fa, fb = files(a), files(b)
    problems = [f"only in {a}: {p}" for p in sorted(fa - fb)] + [f"only in {b}: {p}" for p in sorted(fb - fa)]
    for p in sorted(fa & fb):
        x = TIME.sub(b"TIME", open(os.path.join(a, p), "rb").read())
        y = TIME.sub(b"TIME", open(os.path.join(b, p), "rb").read())
        if x != y:
            i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
            problems.append(f"{p} differs at byte {i}:\n  {x[max(0, i - 80):i + 80]!r}\n  {y[max(0, i - 80):i + 80]!r}")
    if not fa:
        problems.append(f"{a} holds no files")
    for line in problems[:10]:
        print("report_diff: " + line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
