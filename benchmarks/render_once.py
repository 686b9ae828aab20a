"""Render one run folder from scratch into a new folder and print wall time, CPU time and load.

For side-by-side comparisons of two versions of the renderer on a shared machine: run it
in turn from two checkouts (each renders with its own code), several times, and compare the
pairs; a single timing says more about the other jobs than about the code.

    python benchmarks/render_once.py RUN OUT [--workers 2]

The last line printed is one JSON object: {"pages_per_s", "wall_s", "cpu_s", "sys_s" (its kernel part), "load_before",
"load_after", "pages", "files", "phases_s"}.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.render.build import render_site  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def sys_seconds() -> float:
    """The system (kernel) part of cpu_seconds: mostly creating files."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished run folder")
    ap.add_argument("out", help="a new, empty site folder (a render from scratch)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty: a from-scratch render needs a new folder", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    t, cpu, kernel = time.perf_counter(), cpu_seconds(), sys_seconds()
    report = render_site(Path(args.run), out, workers=args.workers)
    wall, cpu, kernel = time.perf_counter() - t, cpu_seconds() - cpu, sys_seconds() - kernel
    print(json.dumps({"pages_per_s": round(report.pages / wall, 1), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "sys_s": round(kernel, 2),
                      "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
                      "pages": report.pages, "files": report.files,
                      "phases_s": {k: round(v, 2) for k, v in report.seconds.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
