"""Throughput of the top-k pass against a plain forward pass of the same model and batch.

    python benchmarks/topk_speed.py [--model worldnet] [--images 4096] [--batch 256] [--device auto]

Both are timed in the same run, in back-to-back pairs (alternating which goes first);
`topk_vs_forward` is the median of the pairs' ratios. `topk_vs_forward` uses
batches already in memory (the pass's own overhead: extraction of every chosen layer, the
running top-k, the per-image maxima written out). With the CIFAR-10 folder present,
`topk_vs_forward_jpeg` times the whole pass from JPEG files (decode, workers, pinned memory)
against the forward pass on the same images. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from atlas.context import pick_device
from atlas.data.loader import make_loader, model_transform
from atlas.data.sources import FolderSource, WorldSource
from atlas.models import get_spec, load_model
from atlas.models.layers import extractor, resolve_layers
from atlas.stages.topk import RunningTopK, locator, unit_max_values

CIFAR_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "test"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_pass(model, batches, device) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in batches:
            model(x.to(device, non_blocking=True))
    sync(device)
    return time.perf_counter() - t0


def topk_pass(net, layers, batches, device, k: int) -> float:
    t0 = time.perf_counter()
    tops = {l.name: RunningTopK(l.units, k, device) for l in layers}
    n = sum(len(x) for x in batches)
    maxact = {l.name: np.empty((n, l.units), np.float32) for l in layers}
    start = 0
    with torch.inference_mode():
        for x in batches:
            ids = torch.arange(start, start + len(x), device=device)
            acts = net(x.to(device, non_blocking=True))
            for l in layers:
                v = unit_max_values(acts[l.name])
                tops[l.name].update(v, ids, locator(acts[l.name]))
                maxact[l.name][start:start + len(x)] = v.float().cpu().numpy()
            start += len(x)
    for t in tops.values():
        t.result()
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="worldnet")
    ap.add_argument("--weights", default=None, help="default: shipped weights (worldnet) or random")
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    device = pick_device(args.device)
    spec = get_spec(args.model)
    weights = args.weights or (None if args.model in ("worldnet",) else "random")
    model = load_model(spec, weights).to(device)
    layers = resolve_layers(model, spec, None)
    net = extractor(model, [l.name for l in layers])
    gen = torch.Generator().manual_seed(0)
    if spec.input_size == 32:
        src = WorldSource(seed=2, count=args.images)
        xs = torch.stack([model_transform(spec)(src.load(i)) for i in range(args.images)])
    else:
        xs = torch.randn(args.images, 3, spec.input_size, spec.input_size, generator=gen)
    batches = list(xs.split(args.batch))
    if device.type == "cuda":
        batches = [b.pin_memory() for b in batches]

    forward_pass(model, batches[:2], device)  # warm-up
    topk_pass(net, layers, batches[:2], device, args.k)
    # pairs run back to back, alternating which goes first; the ratio is the median over pairs
    # (the shared VM's speed drifts by up to 1.5x between seconds, so best-of-each is noisy)
    t_fwd, t_top = [], []
    for r in range(args.repeats):
        if r % 2:
            t_top.append(topk_pass(net, layers, batches, device, args.k))
            t_fwd.append(forward_pass(model, batches, device))
        else:
            t_fwd.append(forward_pass(model, batches, device))
            t_top.append(topk_pass(net, layers, batches, device, args.k))
    fwd_rate, top_rate = args.images / min(t_fwd), args.images / min(t_top)
    paired = float(np.median([f / t for f, t in zip(t_fwd, t_top)]))
    result = {"topk_vs_forward": round(paired, 3), "best_of_ratio": round(top_rate / fwd_rate, 3),
              "pair_ratios": [round(f / t, 3) for f, t in zip(t_fwd, t_top)],
              "forward_images_per_s": round(fwd_rate, 1),
              "topk_images_per_s": round(top_rate, 1), "model": args.model, "batch": args.batch,
              "images": args.images, "units": sum(l.units for l in layers), "layers": len(layers),
              "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
              "threads": torch.get_num_threads()}

    if CIFAR_TEST.is_dir():
        src = FolderSource(CIFAR_TEST, limit=args.images)
        loader = make_loader(src, model_transform(spec), args.batch, args.workers,
                             pin_memory=device.type == "cuda")
        t0 = time.perf_counter()
        decoded = [x for x, _ in loader]
        t_decode = time.perf_counter() - t0
        fwd = min(forward_pass(model, decoded, device) for _ in range(args.repeats))
        t0 = time.perf_counter()
        tops = {l.name: RunningTopK(l.units, args.k, device) for l in layers}
        with torch.inference_mode():
            for x, ids in loader:  # the real pass: decode in workers while the model runs
                acts = net(x.to(device, non_blocking=True))
                for l in layers:
                    v = unit_max_values(acts[l.name])
                    tops[l.name].update(v, ids.to(device), locator(acts[l.name]))
        sync(device)
        t_jpeg = time.perf_counter() - t0
        result.update({"topk_vs_forward_jpeg": round(fwd / t_jpeg, 3), "jpeg_images": len(src),
                       "jpeg_decode_images_per_s": round(len(src) / t_decode, 1),
                       "jpeg_topk_images_per_s": round(len(src) / t_jpeg, 1)})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
