"""Whole-run wall time of `atlas demo --quick`'s config with 1 and with 2 processes.

    python benchmarks/ranks_speed.py [--repeats 1] [--keep DIR] [--no-pin]

Each measurement is `python -m torch.distributed.run --standalone --nproc-per-node=N -m
atlas demo --quick` into a fresh folder (gloo, CPU, OMP_NUM_THREADS=1, so each process
uses one core), from the first import to the last line; the 1-process and 2-process runs
alternate in the same invocation (with --repeats R: R pairs, medians reported), so the
load of the machine hits both alike. The artifacts of the two are compared (they must be
equal). `speedup` = median 1-process time / median 2-process time (`median_pair_ratio`:
the median of the pairs' ratios, which a load change between pairs moves less). Last line:
one JSON object.

Each run is confined to as many cores as it has processes (CPU affinity of torchrun and
everything under it: cores {0} and {0, 1}), since 2026-11-26 06:55 UTC by default (`--pin`
before; `pinned` in the JSON says which). Why: "one thread each" means one core per
process, and OMP_NUM_THREADS=1 does not keep a 1-process run on one core: the renderer
forks one worker process per core it may use for a site of 4,096 render jobs (one a file)
or more (for every site before 2026-11-26 10:00 UTC, the quick demo's 1,755 jobs
included), and a pass of 128+ images per worker starts DataLoader workers (before 16ceae2
the maps' t-SNE also ran beside UMAP in a thread). On a 2-core machine the 2-process run is
confined to the two cores it has anyway, so pinning changes only the 1-process run, which
then measures one core; on a larger machine it also keeps the 2-process run on two cores. `--no-pin` gives the unconfined measure (the
1-process run may borrow idle cores); notes/ranks.md has both figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def demo(nproc: int, out: Path, pin: bool = True) -> tuple[float, float]:
    """Seconds of one whole `atlas demo --quick` run with `nproc` processes, and the CPU
    seconds (user + sys) it used: torchrun and every process under it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ATLAS_DIST_BACKEND": "gloo",
           "PYTHONPATH": str(ROOT)}
    env.pop("ATLAS_FAULT", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "atlas", "demo", "--quick", "--device", "cpu", "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cores = sorted(os.sched_getaffinity(0))[:nproc]
    pin_to = (lambda: os.sched_setaffinity(0, cores)) if pin else None
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=pin_to)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{nproc}-process demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def shares(out: Path) -> dict[str, list[int]]:
    """Per stage and pass of units or images, the items each rank computed (from the
    summaries); passes of a few unlike jobs (the maps' t-SNE, UMAP, unit maps) are left out."""
    got = {}
    for p in sorted((out / "stages").rglob("summary.json")):
        for tag, rec in json.loads(p.read_text()).get("work", {}).items():
            if rec.get("items") != "jobs":
                got[f"{p.parent.relative_to(out / 'stages').as_posix()}:{tag}"] = rec["per_rank"]
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="pairs of runs (medians are reported)")
    ap.add_argument("--keep", type=Path, help="keep the last runs' folders here")
    ap.add_argument("--pin", dest="pin", action="store_true", default=True,
                    help="confine each run to as many cores as it has processes (the default)")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="let each run use every core (a 1-process run borrows idle ones)")
    args = ap.parse_args()
    from tests.test_resume import artifact_digests
    work = Path(tempfile.mkdtemp(prefix="ranks-speed-"))
    one, two, cpu, load = [], [], {1: [], 2: []}, []
    try:
        for r in range(args.repeats):
            order = (1, 2) if r % 2 == 0 else (2, 1)
            for n in order:
                out = work / f"n{n}"
                shutil.rmtree(out, ignore_errors=True)
                load.append(os.getloadavg()[0])
                seconds, cpu_s = demo(n, out, args.pin)
                (one if n == 1 else two).append(seconds)
                cpu[n].append(cpu_s)
                print(f"{n} process(es): {seconds:.1f} s, {cpu_s:.1f} CPU s (load average {load[-1]:.2f} before)",
                      flush=True)
        load.append(os.getloadavg()[0])
        equal = artifact_digests(work / "n1") == artifact_digests(work / "n2")
        split = shares(work / "n2")
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t1, t2 = statistics.median(one), statistics.median(two)
    lowest = min((min(v) / sum(v) for v in split.values() if sum(v)), default=0.0)
    print(json.dumps({"config": "atlas demo --quick", "backend": "gloo", "device": "cpu", "threads_per_process": 1,
                      "cpus": os.cpu_count(), "pinned": args.pin, "repeats": args.repeats, "seconds_1": round(t1, 1),
                      "seconds_2": round(t2, 1), "runs_1": [round(s, 1) for s in one],
                      "runs_2": [round(s, 1) for s in two], "cpu_seconds_1": [round(s, 1) for s in cpu[1]],
                      "cpu_seconds_2": [round(s, 1) for s in cpu[2]], "load_average": [round(v, 2) for v in load],
                      "pair_ratios": [round(a / b, 3) for a, b in zip(one, two)],
                      "median_pair_ratio": round(statistics.median(a / b for a, b in zip(one, two)), 3),
                      "artifacts_equal": equal,
                      "smallest_rank_share": round(lowest, 3), "speedup": round(t1 / t2, 3)}))


if __name__ == "__main__":
    main()
