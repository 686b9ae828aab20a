"""Where each rank of `atlas demo --quick` spends its time, with 1 and with 2 processes.

    python benchmarks/ranks_timeline.py [--nproc 1 2] [--keep DIR] [--no-pin]

Runs the quick demo under torchrun (gloo, CPU, OMP_NUM_THREADS=1, as benchmarks/ranks_speed.py
does) with each process count in turn, confined as ranks_speed's runs are (as many cores as
processes; `--no-pin`: every core), each process started through this file (`--worker`),
which times, per rank: the torch import, the rest of the start (atlas imports, model,
preflight), every stage and the render (wall seconds, CPU seconds of the process and of its
finished children), and every collective call (barrier, broadcast, gather) as the time that
rank waited for the others. When rank 0 hands the render to a fresh image of its process
(atlas.pipeline.hand_off_render, as `python -m atlas` does), its record is saved first and
the render's row is the time from the hand-off to the job's end (its CPU seconds are in
the run's total only). It prints one table per run: per stage, the wall time, each
rank's CPU seconds and each rank's wait, then the totals, and last one JSON object
(`runs`: per process count, per rank, `cpu_s`, `wait_s`, `end_s`; `cpu_extra_s`: CPU
seconds of all ranks of the largest run minus those of the 1-process run, when both ran).

What it answers: which stages make a rank wait (rank 0's merges, stages on rank 0 alone),
and how many CPU seconds more N processes spend than one. Wall times depend on the load of
the machine; CPU seconds and waits much less. Timing costs a few microseconds a call.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def worker(argv: list[str]) -> int:
    """One rank: the atlas command line `argv`, timed; the record goes to $TIMELINE_OUT."""
    t_zero = float(os.environ["TIMELINE_T0"])
    events: list[dict] = []
    stack: list[str] = []

    def record(kind: str, name: str, t0: float, c0: tuple[float, float] | None = None) -> None:
        c1 = _cpu() if c0 else None
        events.append({"kind": kind, "name": name, "start": round(t0 - t_zero, 3),
                       "seconds": round(time.time() - t0, 3),
                       "cpu": round(c1[0] - c0[0], 3) if c0 else None,
                       "child_cpu": round(c1[1] - c0[1], 3) if c0 else None})

    t0, c0 = time.time(), _cpu()
    import torch  # noqa: F401
    record("start", "import torch", t0, c0)
    t0, c0 = time.time(), _cpu()
    sys.path.insert(0, str(ROOT))
    import atlas.artifacts.chunks  # noqa: F401 (imports the collectives it calls)
    import atlas.distributed as dist
    import atlas.pipeline as pipeline
    import atlas.stages.base as base
    from atlas.cli import main

    def timed_collective(fn):
        def call(*args, **kwargs):
            t = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                record("wait", stack[-1] if stack else "(outside stages: the lock, the last barrier)", t)
        return call

    def timed_step(fn, label):
        def call(*args, **kwargs):
            name = label(*args)
            stack.append(name)
            t, c = time.time(), _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                record("step", name, t, c)
                stack.pop()
        return call

    for name in ("barrier", "broadcast", "gather"):  # also where a module imported the function itself
        original = getattr(dist, name)
        wrapped = timed_collective(original)
        for module in [m for n, m in sys.modules.items() if n == "atlas" or n.startswith("atlas.")]:
            if getattr(module, name, None) is original:
                setattr(module, name, wrapped)
    rank = int(os.environ.get("RANK", 0))

    def save(**extra) -> None:
        total = _cpu()
        Path(os.environ["TIMELINE_OUT"], f"rank-{rank}.json").write_text(json.dumps(
            {"rank": rank, "end_s": round(time.time() - t_zero, 3), "cpu_s": round(total[0], 2),
             "child_cpu_s": round(total[1], 2), "events": events, **extra}))

    def timed_hand_off(fn):
        def call(*args, **kwargs):  # the process becomes `atlas render`: the record is saved first
            save(handed_off_s=round(time.time() - t_zero, 3))
            return fn(*args, **kwargs)
        return call

    pipeline.run_stage = timed_step(base.run_stage, lambda ctx, stage: stage.name)
    pipeline.render = timed_step(pipeline.render, lambda *a: "render")
    pipeline.preflight = timed_step(pipeline.preflight, lambda *a: "preflight")
    pipeline.hand_off_render = timed_hand_off(pipeline.hand_off_render)
    record("start", "atlas imports", t0, c0)
    t0, c0 = time.time(), _cpu()
    sys.argv = [sys.argv[0], *argv]
    code = main()  # as the whole process, like `python -m atlas`: rank 0 may hand the render off
    record("start", "run", t0, c0)
    save()
    return code


def run(nproc: int, work: Path, pin: bool = True) -> tuple[list[dict], float, float]:
    """One quick demo with `nproc` processes: each rank's record, the wall seconds of the
    whole torchrun and its CPU seconds (torchrun and every process under it)."""
    out = work / f"n{nproc}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ATLAS_DIST_BACKEND": "gloo",
           "PYTHONPATH": str(ROOT), "TIMELINE_OUT": str(out), "TIMELINE_T0": repr(time.time())}
    env.pop("ATLAS_FAULT", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           str(Path(__file__).resolve()), "--worker", "demo", "--quick", "--device", "cpu", "--out", str(out / "run")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    cores = sorted(os.sched_getaffinity(0))[:nproc]
    pin_to = (lambda: os.sched_setaffinity(0, cores)) if pin else None
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=pin_to)
    seconds = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{nproc}-process demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(nproc)]
    for r in ranks:
        if "handed_off_s" in r:  # the site rendered by a fresh process image (pipeline.hand_off_render)
            r["events"].append({"kind": "step", "name": "render (fresh process, to the job's end)",
                                "start": r["handed_off_s"], "seconds": round(seconds - r["handed_off_s"], 3),
                                "cpu": 0.0, "child_cpu": 0.0})
    return ranks, seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def table(ranks: list[dict]) -> str:
    """Per step (start parts, stages, render): wall seconds, then CPU and wait per rank."""
    rows: dict[str, dict] = {}
    for r in ranks:
        for e in r["events"]:
            if e["kind"] == "wait":
                continue
            row = rows.setdefault(e["name"], {"wall": 0.0, "cpu": [0.0] * len(ranks), "wait": [0.0] * len(ranks)})
            row["wall"] = max(row["wall"], e["seconds"])
            row["cpu"][r["rank"]] += e["cpu"] + e["child_cpu"]
        for e in r["events"]:
            if e["kind"] == "wait":
                rows.setdefault(e["name"], {"wall": 0.0, "cpu": [0.0] * len(ranks),
                                            "wait": [0.0] * len(ranks)})["wait"][r["rank"]] += e["seconds"]
    n = len(ranks)
    head = f"{'step':44} {'wall':>6} " + " ".join(f"{f'cpu{i}':>6}" for i in range(n)) + " " + \
        " ".join(f"{f'wait{i}':>6}" for i in range(n))
    lines = [head]
    for name, row in rows.items():
        if name == "run":
            continue
        lines.append(f"{name:44} {row['wall']:6.2f} " + " ".join(f"{c:6.2f}" for c in row["cpu"]) + " " +
                     " ".join(f"{w:6.2f}" for w in row["wait"]))
    lines.append(f"{'total (to the last end or hand-off)':44} {max(r['end_s'] for r in ranks):6.2f} " +
                 " ".join(f"{r['cpu_s'] + r['child_cpu_s']:6.2f}" for r in ranks) + " " +
                 " ".join(f"{sum(e['seconds'] for e in r['events'] if e['kind'] == 'wait'):6.2f}" for r in ranks))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts, run in this order")
    ap.add_argument("--keep", type=Path, help="keep the runs and the per-rank records here")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="let each run use every core (default: as many cores as processes, as ranks_speed)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ranks-timeline-"))
    result: dict = {"config": "atlas demo --quick", "backend": "gloo", "device": "cpu", "cpus": os.cpu_count(),
                    "pinned": args.pin, "runs": {}}
    try:
        for n in args.nproc:
            load = os.getloadavg()[0]
            ranks, seconds, cpu = run(n, work, args.pin)
            print(f"\n{n} process(es): {seconds:.1f} s, {cpu:.1f} CPU s (torchrun and all processes), "
                  f"load average {load:.2f} before")
            print(table(ranks), flush=True)
            result["runs"][str(n)] = {"seconds": round(seconds, 1), "cpu_s": round(cpu, 1), "load_average": round(load, 2),
                                      "ranks": [{"rank": r["rank"], "cpu_s": round(r["cpu_s"] + r["child_cpu_s"], 2),
                                                 "wait_s": round(sum(e["seconds"] for e in r["events"]
                                                                     if e["kind"] == "wait"), 2),
                                                 "end_s": r["end_s"]} for r in ranks]}
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = sorted(int(n) for n in result["runs"])
    if 1 in counts and len(counts) > 1:
        result["cpu_extra_s"] = round(sum(r["cpu_s"] for r in result["runs"][str(counts[-1])]["ranks"]) -
                                      sum(r["cpu_s"] for r in result["runs"]["1"]["ranks"]), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        code = worker(sys.argv[2:])
        from atlas.cli import end_process
        end_process(code)  # as `python -m atlas` ends
    main()
