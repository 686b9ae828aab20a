"""How fast the renderer builds a large site, from scratch and again with nothing changed.

Writes a synthetic run (AlexNet-shaped layers, every artifact of the contract) with
`tests/synthetic.py`, renders it from scratch, renders it again unchanged, then
changes one unit's label and renders again. The last line printed is one JSON object:

    {"pages_per_s": P, "units": N, "pages": ..., "scratch_s": ..., "rerender_s": ..., ...}

pages_per_s = HTML pages / wall time of the from-scratch render, everything included
(gathering artifacts, linking the pictures the stages encoded, writing every file; the
renderer encodes no image). Pictures are encoded where they are made: the featvis stage's
lossless PNG strips (one per unit), the evidence stage's views at the model's resolution
(`--view 224`: each top image's view, patches cut from it with a `--patch`-px window) and
sprite strips, the thumbs stage's thumbnails of the paged images; the synthetic stages
time that encoding (`encode_s`, per stage in `encode_s_by_stage`), and `stage_plus_render_s_per_unit` = (encode_s + scratch_s) / units
is what compares with the render time per unit of the renderer that encoded everything
(`--before-render-s-per-unit`, measured on the same machine before the change). On a shared machine the wall
time depends on the other jobs; scratch_cpu_s (user + system time of the render and its
workers; scratch_sys_s its kernel part) and load_avg_1m say how much of the machine the
render had, and create_us_before (the time to create a file in the run's folder just before
the render, see create_probe) says what state the disk was in.

The disk's state matters on ext4 without a journal (this machine's root file system): for a
minute or more after files are deleted, creating a file makes the kernel skip every inode
freed in that time (`recently_deleted` in its inode search), so a render that follows a mass
deletion pays up to 0.5 ms of kernel time per page, the same pages. This benchmark deletes
its own scratch (about 30,000 files) at its end, so it deletes it in a way that does not
land on the next run's measurement: `os.sync()` after the deletion and a time stamp; a later
run syncs and waits (`settle_wait_s`) until that deletion is SETTLE_S old before its timed
render. 360 s, not 60: the kernel counts an inode as recently deleted for 60 s while its
inode-table block is clean but for 360 s once the block is dirty again, and the next run's
own new files dirty those blocks (measured: 75 s after a synced deletion a render still paid
3.3-5.7 s in the kernel against 1.5 settled). What a
user's render pays right after deleting a site is measured, not hidden, with
`--after-deletion N` (N small files created and deleted just before the timed render, no
sync, no wait; `deleted_before` in the JSON).

    python benchmarks/site_speed.py [--units 10240] [--images 2000] [--workers N] [--out DIR]
                                    [--after-deletion 60000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.render.build import render_site  # noqa: E402
from atlas.render.jobs import default_workers  # noqa: E402
from tests.synthetic import SyntheticSpec, alexnet_like, write_synthetic_run  # noqa: E402
from atlas.artifacts.store import RunStore, read_json, write_json  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def sys_seconds() -> float:
    """The system (kernel) part of cpu_seconds: mostly creating files."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime


def create_probe(folder: Path, n: int = 200) -> float:
    """Microseconds to create one small file in `folder` (n new files, removed after the
    timed render: deleting them before it would make its files dearer). On ext4 without a
    journal (this machine's disk) a new inode skips every inode deleted in the last minute or
    more (`recently_deleted` in the kernel's inode search), so after a mass deletion this
    rises from about 50 us to 500 us and more: the state of the disk, not the renderer."""
    folder.mkdir(parents=True, exist_ok=True)
    blob = b"x" * 12000
    t = time.perf_counter()
    for i in range(n):
        fd = os.open(folder / f"{i}.html", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.write(fd, blob)
        os.close(fd)
    return (time.perf_counter() - t) / n * 1e6


SETTLE_S = 360.0
STAMP = Path(tempfile.gettempdir()) / "atlas-site-speed.deleted"


def delete_scratch(*paths: Path) -> None:
    """Delete the benchmark's scratch, sync (the freed inodes' tables written) and stamp the
    time for the next run's `settle`."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()
    try:
        STAMP.write_text(f"{time.time():.3f}\n")
    except OSError:
        pass  # no stamp: the next run does not wait


def settle() -> float:
    """Before a timed render: sync, then wait until this benchmark's last deletion (`STAMP`)
    is SETTLE_S old. Returns the seconds waited (0 when no earlier run deleted lately)."""
    os.sync()
    try:
        age = time.time() - float(STAMP.read_text())
    except (OSError, ValueError):
        return 0.0
    wait = min(SETTLE_S, max(0.0, SETTLE_S - age))
    if wait > 0:
        print(f"waiting {wait:.0f} s: a previous run deleted its scratch {age:.0f} s ago", flush=True)
        time.sleep(wait)
    return wait


def churn(folder: Path, n: int) -> float:
    """Create n small files in `folder` and delete them (no sync): the disk a user's render
    meets right after deleting an old site and run folder. Returns the seconds it took."""
    t = time.perf_counter()
    blob = b"x" * 12000
    for i in range(n):
        if i % 1000 == 0:
            sub = folder / f"{i // 1000}"
            sub.mkdir(parents=True)
        fd = os.open(sub / f"{i}.html", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.write(fd, blob)
        os.close(fd)
    shutil.rmtree(folder)
    return time.perf_counter() - t


def relabel_one(run: Path, layer: str, unit: int) -> None:
    """Rewrite one layer's evidence stage with one unit's label changed (a real new stage)."""
    store = RunStore(run)
    name = f"evidence/{layer}"
    old = store.stage_dir(name)
    man = store.manifest(name)
    with store.writing(name, man["key"] + "-relabel", {k: man[k] for k in ("version", "params", "deps")}) as out:
        for f in old.iterdir():
            if f.is_dir():   # views/, sheets/: the stage's encoded pictures
                shutil.copytree(f, Path(out) / f.name, copy_function=os.link)
            elif f.name not in ("manifest.json", "labels.json"):
                os.link(f, Path(out) / f.name)  # same bytes, no copy
        labels = read_json(old / "labels.json")
        text = "texture:relabelled-b" if labels[unit].get("label") == "texture:relabelled-a" else "texture:relabelled-a"
        labels[unit] = {"unit": unit, "label": text, "score": 0.5, "method": "iou"}
        write_json(Path(out) / "labels.json", labels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=10_240)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--thumb", type=int, default=32)
    ap.add_argument("--featvis-size", type=int, default=64)
    ap.add_argument("--patch", type=int, default=163, help="conv patch window in px (AlexNet conv5: 163)")
    ap.add_argument("--view", type=int, default=224, help="top images' side (the model's input size)")
    ap.add_argument("--before-render-s-per-unit", type=float, default=None,
                    help="render s per unit of the renderer before evidence moved into the stages, for the ratio")
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--workers", type=int, default=0, help="render processes (default: one per CPU)")
    ap.add_argument("--out", help="keep the run here (default: a temporary folder, removed)")
    ap.add_argument("--after-deletion", type=int, default=0, metavar="N",
                    help="create and delete N small files just before the timed render (what a render right "
                         "after deleting an old site pays on this disk); default 0: a settled disk")
    args = ap.parse_args()
    workers = args.workers or default_workers()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="atlas-site-speed-"))
    run = base / "run"
    spec = SyntheticSpec(layers=alexnet_like(args.units), images=args.images, thumb=args.thumb,
                         featvis_size=args.featvis_size, patch=args.patch, view=args.view, k=args.k, classes=100,
                         neighbors=10, figure_units=4)
    try:
        t = time.perf_counter()
        if not (run / "stages" / "topk" / "manifest.json").is_file():
            write_synthetic_run(run, spec)
        print(f"synthetic run: {time.perf_counter() - t:.1f} s -> {run}", flush=True)
        # a site left by an earlier run is moved aside and deleted after the timing: deleting
        # tens of thousands of files just before creating as many makes ext4 search for
        # inodes that were not freed a moment ago, which is not what a first build meets
        old = base / f"old-site-{time.time_ns()}"
        if (run / "site").exists():
            (run / "site").rename(old)

        waited = settle()
        churn_s = churn(base / f"churn-{time.time_ns()}", args.after_deletion) if args.after_deletion else 0.0
        probe = base / f"probe-{time.time_ns()}"
        create_us = create_probe(probe)
        t, cpu0, sys0 = time.perf_counter(), cpu_seconds(), sys_seconds()
        first = render_site(run, workers=workers)
        scratch, scratch_cpu, scratch_sys = time.perf_counter() - t, cpu_seconds() - cpu0, sys_seconds() - sys0
        delete_scratch(old, probe)
        print(first.line(), {k: round(v, 2) for k, v in first.seconds.items()}, flush=True)

        t = time.perf_counter()
        again = render_site(run, workers=workers)
        rerender = time.perf_counter() - t
        print(again.line(), {k: round(v, 2) for k, v in again.seconds.items()}, flush=True)

        layer = spec.layers[-1][0]
        relabel_one(run, layer, 5)
        t = time.perf_counter()
        one = render_site(run, workers=workers)
        one_s = time.perf_counter() - t
        print(one.line(), {k: round(v, 2) for k, v in one.seconds.items()}, flush=True)

        encode_s = {kind: sum(read_json(f).get("encode_s", 0.0) for f in (run / "stages").glob(f"{kind}*/**/summary.json"))
                    for kind in ("featvis", "evidence", "thumbs")}
        produced = lambda rep: sum(sum(v.values()) - v["cached"] for v in rep.counts.values())  # noqa: E731
        units = sum(s[0] for _, _, s in spec.layers)
        result = {
            "pages_per_s": round(first.pages / scratch, 1), "units": units, "pages": first.pages,
            "files": first.files, "images": args.images, "scratch_s": round(scratch, 2),
            "scratch_cpu_s": round(scratch_cpu, 2), "scratch_sys_s": round(scratch_sys, 2),
            "create_us_before": round(create_us, 1), "pages_per_cpu_s": round(first.pages / scratch_cpu, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2), "settle_wait_s": round(waited, 1),
            "deleted_before": args.after_deletion, "churn_s": round(churn_s, 1),
            "images_encoded": first.counts.get("image", {}).get("written", 0),   # by the renderer (none since the thumbs stage encodes thumbnails)
            "images_linked": first.counts.get("linked", {}).get("written", 0),   # encoded by the stages
            "phases_s": {k: round(v, 2) for k, v in first.seconds.items()},
            "rerender_s": round(rerender, 2), "rerender_produced": produced(again),
            "one_label_changed_s": round(one_s, 2), "one_label_changed_produced": produced(one),
            "workers": workers, "cpus": os.cpu_count(), "machine": platform.machine(),
            "encode_s": round(sum(encode_s.values()), 2), "encode_s_by_stage": {k: round(v, 2) for k, v in encode_s.items()},
            "encode_s_per_unit": round(sum(encode_s.values()) / units, 6),
            "render_s_per_unit": round(scratch / units, 6),
            "stage_plus_render_s_per_unit": round((sum(encode_s.values()) + scratch) / units, 6),
            "before_render_s_per_unit": args.before_render_s_per_unit,
            "stage_plus_render_vs_before": round((sum(encode_s.values()) + scratch) / units / args.before_render_s_per_unit, 3)
            if args.before_render_s_per_unit else None,
            "sizes": {"view": args.view, "thumb": args.thumb, "featvis": args.featvis_size, "patch": args.patch, "k": args.k,
                      "priors": len(spec.priors), "seeds": spec.seeds},
        }
    finally:
        if not args.out:
            delete_scratch(base)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
