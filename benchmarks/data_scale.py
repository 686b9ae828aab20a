"""What memory, disk, site and time cost per image: the same atlas at N and 10 x N images.

Two full `atlas run`s (listing, top-k pass with streamed statistics, evidence, maps,
thumbnails, figures, render) over generated WebDataset shards of world images (32 px;
the N run reads the first shard, the 10 N run all ten), with a wide world-sized network
(benchmarks/widenet.py: conv5, fc6, fc7, fc8, 5,194 units, so anything of size images x
units shows, at about 10 M multiply-adds per image), `map_images` below N, k = 9, no
feature visualizations or fc heatmaps, figures for 1 unit per layer. Each run is its own
process; its peak memory covers every process of the job: the larger of (a) the kernel's
ru_maxrss of the waited-for children (the largest single process: the run, a DataLoader
worker or a forked render worker, whose RSS also counts the pages it shares with the run)
and (b) the process tree sampled every 50 ms: the run's RSS plus each descendant's private
memory (USS: Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, so pages a forked
worker shares with the run are counted once). The peak after each stage comes from the
run's own log (`stages/base.peak_rss_mib`), disk and site bytes from the run folder. From the
difference:

    rss_bytes_per_image   (peak memory of the job at 10N - at N) / (9 N)
    disk_bytes_per_image  (run folder at 10N - at N) / (9 N), site included
    site_bytes_per_image  (site at 10N - at N) / (9 N)
    time_ratio            seconds per image at 10N / at N
    extrapolated_gb       peak RSS for AlexNet's 10,344 units at 1.28M images: the fixed part
                          (the N run's peak less N x rss_bytes_per_image), scaled by
                          10,344 / (the run's units) as if all of it grew with units (an upper
                          bound: the model, torch and the libraries do not), plus 1.28M x
                          rss_bytes_per_image

Also printed: the render's own peak (`render_peak_mib`: `atlas run` renders in a fresh
image of its process, pipeline.hand_off_render, whose peak the site line prints) and its
growth per extra paged image (`render_bytes_per_paged_image`); the paged images (top-k, map
sample, neighbours: what gets a page and a thumbnail) of each run, and each stage's peak. While units x k exceeds N, the paged images
still grow with N, so site and disk per image include pages that stop growing once N is
well past units x k (notes/data.md).

Goals: rss_bytes_per_image <= 512, disk_bytes_per_image <= 8192, site_bytes_per_image <=
2048, time_ratio <= 1.2, extrapolated_gb <= 8. The last line printed is one JSON object.

    python benchmarks/data_scale.py [--n 4000] [--map-images 1000] [--topk 9] [--out DIR] [--workers 2]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_TRAIN = 1_281_167
ALEXNET_UNITS = 10344              # conv1..fc8
MODEL = "benchmarks/widenet.py:make"
LAYERS = ["conv5", "fc6", "fc7", "fc8"]
SITE_PEAK = re.compile(r"^site: .*this process's peak memory ([0-9.]+) MiB$", re.M)
STAGE_PEAK = re.compile(r"^\[(\S+)\] done in [0-9.]+ s \(peak RSS so far ([0-9.]+) MiB\)", re.M)


def write_shards(folder: Path, per_shard: int, shards: int, seed: int = 2) -> None:
    """`shards` WebDataset tar shards of `per_shard` world images each (PNG + cls), and
    classes.txt; kept between runs (a marker file records what was written)."""
    marker = folder / "done.json"
    want = {"per_shard": per_shard, "shards": shards, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return
    from PIL import Image
    from atlas.data import world
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(world.SHAPES) + "\n")
    for s in range(shards):
        with tarfile.open(folder / f"shard-{s:06d}.tar", "w") as tar:
            for i in range(s * per_shard, (s + 1) * per_shard):
                pixels, _, label = world.render(seed, i, 32)
                buf = io.BytesIO()
                Image.fromarray(pixels).save(buf, format="PNG")
                for ext, data in (("png", buf.getvalue()), ("cls", str(label).encode())):
                    info = tarfile.TarInfo(f"w{i:07d}.{ext}")
                    info.size, info.mtime = len(data), 0
                    tar.addfile(info, io.BytesIO(data))
    marker.write_text(json.dumps(want))


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (apparent sizes; hard links counted once)."""
    seen, total = set(), 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children of any of its threads, recursively)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _kib(path: str, keys: tuple[str, ...]) -> int:
    """Sum of the `keys` lines (kB) of a /proc status-like file; 0 once the process is gone."""
    total = 0
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in keys:
                    total += int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return total


class TreeMemory(threading.Thread):
    """Samples a process tree's memory every `every` seconds until stopped: the root's RSS plus
    every descendant's private memory (USS), so pages shared with the root count once. Keeps
    the largest total (`peak_kib`) and how many processes were alive then."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_kib, self.peak_processes, self.samples = 0, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            kids = _descendants(self.pid)
            total = _kib(f"/proc/{self.pid}/status", ("VmRSS",)) + sum(
                _kib(f"/proc/{k}/smaps_rollup", ("Private_Clean", "Private_Dirty")) for k in kids)
            self.samples += 1
            if total > self.peak_kib:
                self.peak_kib, self.peak_processes = total, 1 + len(kids)
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join()


def one_run(out: Path, data: str, n: int, map_images: int, workers: int, topk: int = 9) -> dict:
    """One `atlas run` in a child process, from an empty run folder (a finished run left in
    `out` by an earlier call would be resumed, its stages skipped): its seconds, peak RSS
    (and after each stage), run folder and site bytes, paged images."""
    shutil.rmtree(out, ignore_errors=True)
    args = [sys.executable, "-m", "atlas", "run", "--model", MODEL, "--data", data, "--layers", *LAYERS,
            "--out", str(out), "--set", f"map_images={map_images}", "priors=[]", "units_limit=1", f"topk={topk}",
            f"workers={workers}", "batch_size=64", "fc_heatmaps=none"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=err, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        tree = TreeMemory(proc.pid)
        tree.start()
        returncode = proc.wait()
        tree.stop()
        log.seek(0)
        err.seek(0)
        stdout, stderr = log.read(), err.read()
    seconds = time.perf_counter() - t0
    largest_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if returncode != 0:
        raise SystemExit(f"atlas run failed at N={n}:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    if largest_kb <= before:
        print(f"warning: the N={n} run's peak RSS did not exceed an earlier child's; the figure is a lower bound",
              file=sys.stderr)
    summary = json.loads((out / "stages" / "topk" / "summary.json").read_text())
    if summary["images"] != n:
        raise SystemExit(f"the N={n} run used {summary['images']} images")
    paged = json.loads((out / "stages" / "thumbs" / "summary.json").read_text())["images"]
    return {"images": n, "units": summary["units"], "seconds": seconds,
            "rss_bytes": max(largest_kb, tree.peak_kib) * 1024, "largest_process_bytes": largest_kb * 1024,
            "tree_bytes": tree.peak_kib * 1024, "tree_processes": tree.peak_processes, "tree_samples": tree.samples,
            "load": [round(load, 2), round(os.getloadavg()[0], 2)],
            "disk_bytes": folder_bytes(out), "site_bytes": folder_bytes(out / "site"), "paged": paged,
            "stage_peak_mib": {m[0]: float(m[1]) for m in STAGE_PEAK.findall(stdout)},
            "render_peak_mib": float(m.group(1)) if (m := SITE_PEAK.search(stdout)) else None,
            "log_tail": stdout.strip().splitlines()[-12:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="images of the small run (the large one has 10x)")
    ap.add_argument("--map-images", type=int, default=1000, help="map sample size (below N)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--topk", type=int, default=9, help="k: with units x k well below N the paged set stops growing")
    ap.add_argument("--out", help="keep the generated shards (reused) and the last runs (redone) here "
                                  "(default: a temporary folder)")
    args = ap.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="atlas-data-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    shards = base / f"shards-{args.n}"
    t0 = time.perf_counter()
    write_shards(shards, args.n, 10)
    print(f"shards: {10 * args.n} world images in {shards} ({time.perf_counter() - t0:.0f} s)", flush=True)
    data = {args.n: str(shards / "shard-000000.tar"), 10 * args.n: str(shards)}
    # the large run first: ru_maxrss of RUSAGE_CHILDREN is a running maximum over children,
    # so the small run is measured in a fresh child of its own below
    runs = {}
    for n in (10 * args.n, args.n):
        if n == args.n:  # a fresh parent so the small run's maximum is its own
            res = subprocess.run([sys.executable, __file__, "--_one", str(base / f"n{n}-k{args.topk}"), data[n], str(n),
                                  str(args.map_images), str(args.workers), str(args.topk)], capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(res.stdout[-3000:] + res.stderr[-3000:])
            runs[n] = json.loads(res.stdout.strip().splitlines()[-1])
        else:
            runs[n] = one_run(base / f"n{n}-k{args.topk}", data[n], n, args.map_images, args.workers, args.topk)
        print(f"N={n}: {runs[n]['seconds']:.1f} s, peak memory {runs[n]['rss_bytes'] / 2**20:.0f} MiB "
              f"(largest process {runs[n]['largest_process_bytes'] / 2**20:.0f}, tree {runs[n]['tree_bytes'] / 2**20:.0f} "
              f"with {runs[n]['tree_processes']} processes), load {runs[n]['load']}, "
              f"run folder {runs[n]['disk_bytes'] / 2**20:.1f} MiB, site {runs[n]['site_bytes'] / 2**20:.1f} MiB, "
              f"{runs[n]['paged']} paged images", flush=True)
        print(f"  peak RSS after each stage (MiB): {runs[n]['stage_peak_mib']}", flush=True)
    small, large = runs[args.n], runs[10 * args.n]
    extra = 9 * args.n
    per_image = {key: (large[f"{key}_bytes"] - small[f"{key}_bytes"]) / extra for key in ("rss", "disk", "site")}
    fixed = small["rss_bytes"] - args.n * per_image["rss"]
    result = {
        "n": args.n, "map_images": args.map_images, "units": small["units"], "topk": args.topk,
        "rss_bytes_per_image": round(per_image["rss"], 1),
        "disk_bytes_per_image": round(per_image["disk"], 1),
        "site_bytes_per_image": round(per_image["site"], 1),
        "time_ratio": round((large["seconds"] / large["images"]) / (small["seconds"] / small["images"]), 3),
        "extrapolated_gb": round((fixed * max(1.0, ALEXNET_UNITS / small["units"]) + IMAGENET_TRAIN * max(per_image["rss"], 0.0)) / 1e9, 2),
        "seconds": {str(k): round(v["seconds"], 1) for k, v in runs.items()},
        "peak_rss_mib": {str(k): round(v["rss_bytes"] / 2**20, 1) for k, v in runs.items()},
        "largest_process_mib": {str(k): round(v["largest_process_bytes"] / 2**20, 1) for k, v in runs.items()},
        "tree_mib": {str(k): round(v["tree_bytes"] / 2**20, 1) for k, v in runs.items()},
        "load": {str(k): v["load"] for k, v in runs.items()},
        "disk_mib": {str(k): round(v["disk_bytes"] / 2**20, 2) for k, v in runs.items()},
        "site_mib": {str(k): round(v["site_bytes"] / 2**20, 2) for k, v in runs.items()},
        "paged": {str(k): v["paged"] for k, v in runs.items()},
        "render_peak_mib": {str(k): v.get("render_peak_mib") for k, v in runs.items()},
        "render_bytes_per_paged_image": (
            round((large["render_peak_mib"] - small["render_peak_mib"]) * 2**20 / (large["paged"] - small["paged"]), 1)
            if large.get("render_peak_mib") and small.get("render_peak_mib") and large["paged"] > small["paged"] else None),
        "stage_peak_rss_bytes_per_image": {
            stage: round((large["stage_peak_mib"][stage] - small["stage_peak_mib"].get(stage, 0.0)) * 2**20 / extra, 1)
            for stage in large["stage_peak_mib"]},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "--_one":
        out, data, n, m, w, k = Path(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:8])
        print(json.dumps(one_run(out, data, n, m, w, k)))
        sys.exit(0)
    sys.exit(main())
