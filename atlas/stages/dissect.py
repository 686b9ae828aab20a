"""Stage `dissect`: NetDissect IoU of every conv unit with every concept (Bau et al. 2017).

All conv layers share two passes over the data: the first finds each unit's threshold (the
top `dissect_quantile` of its activation values over all images and positions), the second
sums intersections and unions with the concept masks of the `concepts` stage. Past
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
from atlas.models.layers import extractor
from atlas.stages import concepts
from atlas.stages.base import Stage

VERSION = 1
MAX_THRESHOLD_VALUES = 200_000


def conv_layers(ctx) -> list:
    return [layer for layer in ctx.layers if layer.kind == "conv"]


def make(ctx) -> list[Stage]:
    if not concepts.available(ctx) or not conv_layers(ctx):
        return []
    params = {**ctx.model_params(), "layers": [layer.name for layer in conv_layers(ctx)],
              "quantile": ctx.cfg.dissect_quantile, "max_threshold_values": MAX_THRESHOLD_VALUES}
    return [Stage("dissect", VERSION, params, run, deps=("dataset", "concepts"))]


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
    net = extractor(ctx.model, [layer.name for layer in layers])
    chosen = {layer.name: threshold_images(n, layer.shape[1] * layer.shape[2], q) for layer in layers}
    running = {layer.name: RunningTopValues(layer.units, values_to_keep(len(chosen[layer.name]),
                                            layer.shape[1] * layer.shape[2], q), ctx.device) for layer in layers}

    def passes(desc: str):
        with torch.inference_mode():
            for batch_ids, images in tqdm(display_batches(ctx, np.arange(n), bs), total=-(-n // bs),
                                          desc=desc, unit="batch", mininterval=2):
                yield batch_ids, net(model_input(ctx.spec, images, ctx.device))

    for batch_ids, acts in passes("dissect: thresholds"):
        for layer in layers:
            rows = np.isin(batch_ids, chosen[layer.name])
            if rows.any():
                running[layer.name].update(acts[layer.name][torch.from_numpy(rows).to(ctx.device)])
    counters = {layer.name: IoUCounter(running[layer.name].thresholds(), sum(sizes)) for layer in layers}
    area = torch.zeros(sum(sizes), dtype=torch.float64)
    size = masks.shape[-1]
    for batch_ids, acts in passes("dissect: IoU"):
        onehot = concept_onehot(torch.from_numpy(np.asarray(masks[batch_ids])), sizes).to(ctx.device)
        area += onehot[..., :-1].sum(dim=(0, 1)).double().cpu()
        for layer in layers:
            counters[layer.name].update(acts[layer.name], onehot)
    info = {}
    for layer in layers:
        write_dissect_layer(out, layer.name, counters[layer.name].iou(area), counters[layer.name].thr.cpu().numpy())
        info[layer.name] = {"threshold_images": int(len(chosen[layer.name])),
                            "exact_threshold": bool(len(chosen[layer.name]) == n)}
    write_dissect_meta(out, {"concepts": spec["concepts"], "quantile": q, "mask_size": size,
                                   "min_iou": ctx.cfg.dissect_iou, "layers": info})
    return {"layers": len(layers), "images": n}
