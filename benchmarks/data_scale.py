"""What memory, disk, site and time cost per image: the same atlas at N and 10 x N images.

Two full `atlas run`s (data-set pass, top-k pass with streamed statistics, evidence, maps,
render) of torchvision AlexNet with random weights over the generated world source, layers
fc6, fc7, fc8 (9,192 units, so anything of size images x units shows; the conv layers'
per-unit evidence would only add fixed time on this 2-core machine), `map_images` below
N, no feature visualizations or fc heatmaps, figures for 1 unit per layer. Each run
is its own process; its peak resident memory is read from the kernel (ru_maxrss of the
waited-for child), its disk and site bytes from the run folder. From the difference:

    rss_bytes_per_image   (peak RSS at 10N - at N) / (9 N)
    disk_bytes_per_image  (run folder at 10N - at N) / (9 N), site included
    site_bytes_per_image  (site at 10N - at N) / (9 N)
    time_ratio            seconds per image at 10N / at N
    extrapolated_gb       peak RSS for AlexNet's 10,344 units at 1.28M images: the fixed part
                          (the N run's peak less N x rss_bytes_per_image), scaled by
                          10,344 / (the run's units) as if all of it grew with units (an upper
                          bound: the model, torch and the libraries do not), plus 1.28M x
                          rss_bytes_per_image

Goals: rss_bytes_per_image <= 512, disk_bytes_per_image <= 8192, site_bytes_per_image <=
2048, time_ratio <= 1.2, extrapolated_gb <= 8. The last line printed is one JSON object.

    python benchmarks/data_scale.py [--n 200] [--map-images 100] [--out DIR] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGENET_TRAIN = 1_281_167
LAYERS = ["fc6", "fc7", "fc8"]     # 9,192 units
ALEXNET_UNITS = 10344              # conv1..fc8


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


def one_run(out: Path, n: int, map_images: int, workers: int, layers: list[str]) -> dict:
    """One `atlas run` in a child process: its seconds, peak RSS, run folder and site bytes."""
    args = [sys.executable, "-m", "atlas", "run", "--model", "alexnet", "--weights", "random", "--data", "world",
            "--layers", *layers, "--out", str(out), "--set", f"world_count={n}", f"map_images={map_images}",
            "priors=[]", "units_limit=1", "topk=9", f"workers={workers}", "batch_size=64", "fc_heatmaps=none"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    res = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if res.returncode != 0:
        raise SystemExit(f"atlas run failed at N={n}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    if peak_kb <= before:
        print(f"warning: the N={n} run's peak RSS did not exceed an earlier child's; the figure is a lower bound",
              file=sys.stderr)
    units = json.loads((out / "stages" / "topk" / "summary.json").read_text())["units"]
    return {"images": n, "units": units, "seconds": seconds, "rss_bytes": peak_kb * 1024, "disk_bytes": folder_bytes(out),
            "site_bytes": folder_bytes(out / "site"), "log_tail": res.stdout.strip().splitlines()[-12:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images of the small run (the large one has 10x)")
    ap.add_argument("--map-images", type=int, default=100, help="map sample size (below N)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--layers", nargs="+", default=LAYERS, help="AlexNet layers (default fc6 fc7 fc8: 9,192 units)")
    ap.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="atlas-data-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    # the large run first: ru_maxrss of RUSAGE_CHILDREN is a running maximum over children,
    # so the small run is measured in a fresh child of its own below
    runs = {}
    for n in (10 * args.n, args.n):
        if n == args.n:  # a fresh parent so the small run's maximum is its own
            res = subprocess.run([sys.executable, __file__, "--_one", str(base / f"n{n}"), str(n),
                                  str(args.map_images), str(args.workers), *args.layers], capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(res.stdout[-3000:] + res.stderr[-3000:])
            runs[n] = json.loads(res.stdout.strip().splitlines()[-1])
        else:
            runs[n] = one_run(base / f"n{n}", n, args.map_images, args.workers, args.layers)
        print(f"N={n}: {runs[n]['seconds']:.1f} s, peak RSS {runs[n]['rss_bytes'] / 2**20:.0f} MiB, "
              f"run folder {runs[n]['disk_bytes'] / 2**20:.1f} MiB, site {runs[n]['site_bytes'] / 2**20:.1f} MiB",
              flush=True)
    small, large = runs[args.n], runs[10 * args.n]
    extra = 9 * args.n
    per_image = {key: (large[f"{key}_bytes"] - small[f"{key}_bytes"]) / extra for key in ("rss", "disk", "site")}
    fixed = small["rss_bytes"] - args.n * per_image["rss"]
    result = {
        "n": args.n, "map_images": args.map_images, "units": small["units"],
        "rss_bytes_per_image": round(per_image["rss"], 1),
        "disk_bytes_per_image": round(per_image["disk"], 1),
        "site_bytes_per_image": round(per_image["site"], 1),
        "time_ratio": round((large["seconds"] / large["images"]) / (small["seconds"] / small["images"]), 3),
        "extrapolated_gb": round((fixed * max(1.0, ALEXNET_UNITS / small["units"]) + IMAGENET_TRAIN * max(per_image["rss"], 0.0)) / 1e9, 2),
        "seconds": {str(k): round(v["seconds"], 1) for k, v in runs.items()},
        "peak_rss_mib": {str(k): round(v["rss_bytes"] / 2**20, 1) for k, v in runs.items()},
        "disk_mib": {str(k): round(v["disk_bytes"] / 2**20, 2) for k, v in runs.items()},
        "site_mib": {str(k): round(v["site_bytes"] / 2**20, 2) for k, v in runs.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 7 and sys.argv[1] == "--_one":
        out, n, m, w = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        r = one_run(out, n, m, w, sys.argv[6:])
        print(json.dumps(r))
        sys.exit(0)
    sys.exit(main())
