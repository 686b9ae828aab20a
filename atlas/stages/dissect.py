"""Stage `dissect`: NetDissect IoU of every conv unit with every concept (Bau et al. 2017).

All conv layers share two passes over the data: the first finds each unit's threshold (the
top `dissect_quantile` of its activation values over all images and positions), the second
sums intersections and unions with the concept masks of the `concepts` stage. Both passes
go over chunks of images shared by the ranks (artifacts/chunks.py); the parts merge exactly. Past
MAX_THRESHOLD_VALUES values per unit the threshold comes from an even subsample of images.

`stages/dissect/`: `<layer>/iou.npy` float32 (C, K), `<layer>/thresholds.npy` float32 (C,),
`meta.json` `{concepts, quantile, layers: {layer: {threshold_images, exact_threshold}}}`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atlas.artifacts.concepts import read_concepts, write_dissect_layer, write_dissect_meta
from atlas.evidence.dissect import IoUCounter, RunningTopValues, concept_onehot, values_to_keep
from atlas.evidence.images import display_batches, model_input
from atlas.models.layers import shared_extractor
from atlas.stages import concepts
from atlas.stages.base import Stage
from atlas.artifacts.chunks import chunk_size, run_chunks

VERSION = 1
MAX_THRESHOLD_VALUES = 200_000
CHUNK_BATCHES = 32  # the most batches of images in one chunk of a pass


def conv_layers(ctx) -> list:
    return [layer for layer in ctx.layers if layer.kind == "conv"]


def make(ctx) -> list[Stage]:
    if not concepts.available(ctx) or not conv_layers(ctx):
        return []
    params = {**ctx.model_params(), "layers": [layer.name for layer in conv_layers(ctx)],
              "quantile": ctx.cfg.dissect_quantile, "max_threshold_values": MAX_THRESHOLD_VALUES}
    return [Stage("dissect", VERSION, params, run, deps=("dataset", "concepts"), sharded=True)]


def threshold_images(n: int, positions: int, q: float) -> np.ndarray:
    """Which images count toward a unit's threshold: all, or an even subsample when too many."""
    if values_to_keep(n, positions, q) <= MAX_THRESHOLD_VALUES:
        return np.arange(n)
    m = max(1, math.floor(MAX_THRESHOLD_VALUES / (q * positions)))
    return np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))


def run(ctx, out: Path, key: str) -> dict:
    found = read_concepts(ctx.store)
    masks, spec, sizes = found.masks, found.spec, found.sizes
    layers, q, n, bs = conv_layers(ctx), ctx.cfg.dissect_quantile, masks.shape[0], ctx.cfg.batch_size
    net = shared_extractor(ctx.model, [layer.name for layer in layers])
    chosen = {layer.name: threshold_images(n, layer.shape[1] * layer.shape[2], q) for layer in layers}
    keep = {layer.name: values_to_keep(len(chosen[layer.name]), layer.shape[1] * layer.shape[2], q)
            for layer in layers}
    size = chunk_size(n, bs * CHUNK_BATCHES)

    def passes(start: int, stop: int, desc: str):
        with torch.inference_mode():
            for batch_ids, images in tqdm(display_batches(ctx, np.arange(start, stop), bs),
                                          total=-(-(stop - start) // bs), desc=desc, unit="batch",
                                          mininterval=2, disable=ctx.rank != 0):
                yield batch_ids, net(model_input(ctx.spec, images, ctx.device))

    def top_values(start: int, stop: int, _folder: Path) -> dict[str, np.ndarray]:
        running = {layer.name: RunningTopValues(layer.units, keep[layer.name], ctx.device) for layer in layers}
        for batch_ids, acts in passes(start, stop, "dissect: thresholds"):
            for layer in layers:
                rows = np.isin(batch_ids, chosen[layer.name])
                if rows.any():
                    running[layer.name].update(acts[layer.name][torch.from_numpy(rows).to(ctx.device)])
        return {layer.name: running[layer.name].values.cpu().numpy() for layer in layers}

    # the k largest of a union are the k largest of the parts' k largest: exact in any split
    merged = {layer.name: torch.empty(layer.units, 0, device=ctx.device) for layer in layers}
    for c in run_chunks(ctx, "dissect", key, n, size, top_values, tag="thresholds", items="images"):
        for name, values in c.arrays().items():
            both = torch.cat([merged[name], torch.from_numpy(values).to(ctx.device)], dim=1)
            merged[name] = both.topk(keep[name], dim=1).values if both.shape[1] > keep[name] else both
    thresholds = {name: values.min(dim=1).values for name, values in merged.items()}

    def counts(start: int, stop: int, _folder: Path) -> dict[str, np.ndarray]:
        counters = {layer.name: IoUCounter(thresholds[layer.name], sum(sizes)) for layer in layers}
        area = torch.zeros(sum(sizes), dtype=torch.float64)
        for batch_ids, acts in passes(start, stop, "dissect: IoU"):
            onehot = concept_onehot(torch.from_numpy(np.asarray(masks[batch_ids])), sizes).to(ctx.device)
            area += onehot[..., :-1].sum(dim=(0, 1)).double().cpu()
            for layer in layers:
                counters[layer.name].update(acts[layer.name], onehot)
        return {"area": area.numpy(), **{f"{name}/inter": c.inter.cpu().numpy() for name, c in counters.items()},
                **{f"{name}/act_area": c.act_area.cpu().numpy() for name, c in counters.items()}}

    # intersections and areas are pixel counts: their sums are exact in any order
    done = run_chunks(ctx, "dissect", key, n, size, counts, tag="iou", items="images")
    if ctx.rank != 0:
        return {}
    loaded = [c.arrays() for c in done]
    area = torch.from_numpy(np.sum([z["area"] for z in loaded], axis=0))
    info = {}
    for layer in layers:
        counter = IoUCounter(thresholds[layer.name], sum(sizes))
        counter.inter = torch.from_numpy(np.sum([z[f"{layer.name}/inter"] for z in loaded], axis=0)).to(counter.inter)
        counter.act_area = torch.from_numpy(np.sum([z[f"{layer.name}/act_area"] for z in loaded], axis=0)).to(counter.act_area)
        write_dissect_layer(out, layer.name, counter.iou(area), counter.thr.cpu().numpy())
        info[layer.name] = {"threshold_images": int(len(chosen[layer.name])),
                            "exact_threshold": bool(len(chosen[layer.name]) == n)}
    write_dissect_meta(out, {"concepts": spec["concepts"], "quantile": q, "mask_size": masks.shape[-1],
                                   "min_iou": ctx.cfg.dissect_iou, "layers": info})
    return {"layers": len(layers), "images": n}
