"""Stage `topk`: one pass over the data for all chosen layers.

For every unit keep its k highest-activating images; for a conv channel the activation of
an image is its spatial maximum, and where it occurred is kept too. Memory grows with
units x k. Each image's per-unit maximum also goes to disk (`maxact.npy`, images x units,
memory-mapped) for the histograms and statistics downstream.

Ties are broken by the lower image id, so the result is a pure function of the data,
whatever the batch size or the number of processes that shared the pass.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atlas.data.loader import make_loader, model_transform
from atlas.models.layers import extractor
from atlas.stages.base import Stage
from atlas.stages.chunks import run_chunks
from atlas.stages.store import fault_point, write_json

VERSION = 3  # 3: nonfinite.npy per layer
CHUNK_BATCHES = 32


def nan_to_low(x: torch.Tensor) -> torch.Tensor:
    """NaN -> -inf, infinities kept (torch.nan_to_num would clamp them to finite values)."""
    return torch.where(torch.isnan(x), torch.full_like(x, -torch.inf), x)


def unit_max(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,C,H,W) -> per-unit max (B,C) and the flat spatial index of its first occurrence;
    (B,C) -> itself and zeros. A NaN is ranked below every number, as -inf (nonfinite.npy
    counts it); +inf stays +inf."""
    locate = locator(act)
    values = unit_max_values(act)
    if locate is None:
        return values, torch.zeros_like(act, dtype=torch.long)
    b, c = values.shape
    rows = torch.arange(b, device=act.device).repeat_interleave(c)
    units = torch.arange(c, device=act.device).repeat(b)
    return values, locate(rows, units).view(b, c)


def unit_max_values(act: torch.Tensor) -> torch.Tensor:
    """The values of `unit_max` alone: a max-reduction without indices, several times
    faster than one that also finds where (which only the few top-k entrants need)."""
    if act.ndim == 2:
        return nan_to_low(act) if torch.isnan(act).any() else act
    values = act.flatten(2).amax(dim=2)
    if torch.isnan(values).any():  # amax lets NaN win: redo with NaN lowest
        values = nan_to_low(act.flatten(2)).amax(dim=2)
    return values


def locator(act: torch.Tensor):
    """For a conv map, `locate(rows, units)` -> the flat spatial index of the first maximum
    of each (image row, unit) pair, NaN lowest; None for a vector layer (always 0)."""
    if act.ndim == 2:
        return None

    def locate(rows: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        maps = act[rows, units].flatten(1)
        if torch.isnan(maps).any():
            maps = nan_to_low(maps)
        return maps.argmax(dim=1)
    return locate


def count_nonfinite(act: torch.Tensor) -> torch.Tensor:
    """(B,C,...) -> (C,) int64: images whose activation of the unit has a NaN or an infinity
    anywhere. One cheap reduction decides the common case (all finite) first."""
    if bool(torch.isfinite(act.sum())):
        return torch.zeros(act.shape[1], dtype=torch.long, device=act.device)
    bad = ~torch.isfinite(act.reshape(act.shape[0], act.shape[1], -1))
    return bad.any(dim=2).sum(dim=0)


class RunningTopK:
    """Top-k over a stream of (values (B,C), ids (B,), where (B,C)) batches, on any device."""

    def __init__(self, units: int, k: int, device: torch.device):
        self.k = k
        self.values = torch.full((0, units), -torch.inf, device=device)
        self.ids = torch.zeros((0, units), dtype=torch.long, device=device)
        self.where = torch.zeros((0, units), dtype=torch.long, device=device)

    def update(self, values: torch.Tensor, ids: torch.Tensor, where) -> None:
        """`where`: (B,C) positions, or `locate(rows, units)` (see `locator`), called only
        for the (image, unit) pairs that enter the top k, or None for vector layers."""
        v = nan_to_low(values.float())
        rows = torch.arange(len(v), device=v.device)
        if self.values.shape[0] == self.k:
            # only rows beating some unit's current k-th value can enter (a tie goes to the
            # lower id, already kept); most batches of a long pass have few or none
            enter = (v > self.values[-1]).any(dim=1)
            if not bool(enter.any()):
                return
            v, ids, rows = v[enter], ids[enter], rows[enter]
        old = self.values.shape[0]
        cat_v = torch.cat([self.values, v])
        cat_i = torch.cat([self.ids, ids.view(-1, 1).expand_as(v)])
        # stable: among equal values the earlier row (lower id, ids arrive ascending) stays first
        order = torch.sort(cat_v, dim=0, descending=True, stable=True).indices[:self.k]
        self.values = cat_v.gather(0, order)
        self.ids = cat_i.gather(0, order)
        if isinstance(where, torch.Tensor):
            self.where = torch.cat([self.where, where[rows]]).gather(0, order)
            return
        new_where = torch.zeros_like(order)
        kept = order < old
        if old:
            new_where[kept] = self.where.gather(0, order.clamp(max=old - 1))[kept]
        if where is not None:
            slot, unit = torch.nonzero(~kept, as_tuple=True)
            new_where[slot, unit] = where(rows[order[slot, unit] - old], unit)
        self.where = new_where

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, ids, where), each (C, k)."""
        return (self.values.T.cpu().numpy(), self.ids.T.cpu().numpy(), self.where.T.cpu().numpy())


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int):
    """Exact merge of per-shard top-k lists: value descending, then id ascending."""
    values = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    where = np.concatenate([p[2] for p in parts], axis=1)
    out_v, out_i, out_w = (np.empty((values.shape[0], min(k, values.shape[1])), a.dtype)
                           for a in (values, ids, where))
    for u in range(values.shape[0]):
        order = np.lexsort((ids[u], -values[u].astype(np.float64)))[:out_v.shape[1]]
        out_v[u], out_i[u], out_w[u] = values[u, order], ids[u, order], where[u, order]
    return out_v, out_i, out_w


def make(ctx) -> Stage:
    params = {**ctx.model_params(), "layers": ctx.layer_names(), "k": ctx.cfg.topk}
    return Stage("topk", VERSION, params, run, deps=("dataset",), sharded=True)


def scan(ctx, ids: np.ndarray, bar: tqdm | None = None,
         nonfinite: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, RunningTopK], dict[str, np.ndarray]]:
    """The pass itself over images `ids` (ascending): running top-k for every layer and the
    per-image unit maxima (len(ids), C); `nonfinite` accumulates count_nonfinite per layer."""
    layers = ctx.layers
    net = extractor(ctx.model, [layer.name for layer in layers])
    # on a GPU: NHWC convolutions (tensor cores); values stay float32 so the ranking is exact
    fmt = torch.channels_last if ctx.device.type == "cuda" else torch.contiguous_format
    net = net.to(memory_format=fmt)
    loader = make_loader(ctx.source, model_transform(ctx.spec), ctx.cfg.batch_size, ctx.cfg.workers,
                         ids=ids, pin_memory=ctx.device.type == "cuda")
    k = min(ctx.cfg.topk, len(ctx.source))
    tops = {layer.name: RunningTopK(layer.units, k, ctx.device) for layer in layers}
    maxact = {layer.name: np.empty((len(ids), layer.units), np.float32) for layer in layers}
    row = 0
    with torch.inference_mode():
        for x, batch_ids in loader:
            x = x.to(ctx.device, non_blocking=True).contiguous(memory_format=fmt)
            batch_ids = batch_ids.to(ctx.device)
            acts = net(x)
            for name, top in tops.items():
                values = unit_max_values(acts[name])
                top.update(values, batch_ids, locator(acts[name]))
                maxact[name][row:row + len(x)] = values.float().cpu().numpy()
                if nonfinite is not None:
                    nonfinite[name] += count_nonfinite(acts[name])
            row += len(x)
            fault_point("topk:batch")
            if bar is not None:
                bar.update(len(x))
    return tops, maxact


def chunk_size(ctx) -> int:
    """Images per chunk: whole batches, so every batch is the same for any number of ranks."""
    return ctx.cfg.batch_size * CHUNK_BATCHES


def run(ctx, out: Path, key: str) -> dict:
    n = len(ctx.source)
    size = chunk_size(ctx)
    n_chunks = -(-n // size)
    mine = sum(min(n, (i + 1) * size) - i * size for i in range(ctx.rank, n_chunks, ctx.world_size))
    t0 = time.time()
    with tqdm(total=mine, desc="top-k pass", unit="img", disable=ctx.rank != 0) as bar:
        def compute(i: int) -> dict[str, np.ndarray]:
            nonfinite = {layer.name: torch.zeros(layer.units, dtype=torch.long, device=ctx.device)
                         for layer in ctx.layers}
            tops, maxact = scan(ctx, np.arange(i * size, min(n, (i + 1) * size)), bar, nonfinite)
            arrays = {}
            for layer in ctx.layers:
                values, ids, where = tops[layer.name].result()
                arrays.update({f"{layer.name}/values": values, f"{layer.name}/ids": ids,
                               f"{layer.name}/where": where, f"{layer.name}/maxact": maxact[layer.name],
                               f"{layer.name}/nonfinite": nonfinite[layer.name].cpu().numpy()})
            return arrays
        paths = run_chunks(ctx, "topk", key, n_chunks, compute)
    if ctx.rank != 0:
        return {}
    rate = mine / max(time.time() - t0, 1e-9)
    chunks = [np.load(p) for p in paths]
    k = min(ctx.cfg.topk, n)
    bad = 0
    for layer in ctx.layers:
        folder = out / layer.name
        folder.mkdir()
        parts = [(c[f"{layer.name}/values"], c[f"{layer.name}/ids"], c[f"{layer.name}/where"]) for c in chunks]
        save_topk(folder, layer, *merge_topk(parts, k))
        np.save(folder / "maxact.npy", np.concatenate([c[f"{layer.name}/maxact"] for c in chunks]))
        nonfinite = np.sum([c[f"{layer.name}/nonfinite"] for c in chunks], axis=0).astype(np.int64)
        np.save(folder / "nonfinite.npy", nonfinite)
        bad += int((nonfinite > 0).sum())
    write_json(out / "layers.json", [{"name": layer.name, "alias": layer.alias, "shape": list(layer.shape),
                                      "units": layer.units, "kind": layer.kind} for layer in ctx.layers])
    units = sum(layer.units for layer in ctx.layers)
    print(f"top-k pass: {n} images, {units} units, {rate:.0f} images/s on this rank")
    if bad:
        print(f"top-k pass: {bad} units had NaN or infinite activations (nonfinite.npy; marked on their pages)")
    return {"images": n, "units": units, "k": k, "chunks": n_chunks, "nonfinite_units": bad}


def save_topk(folder: Path, layer, values: np.ndarray, ids: np.ndarray, where: np.ndarray) -> None:
    """values (C,k) float32, ids (C,k) int64, pos (C,k,2) int32 as (y, x) in the layer's map."""
    np.save(folder / "values.npy", values.astype(np.float32))
    np.save(folder / "ids.npy", ids.astype(np.int64))
    width = layer.shape[2] if layer.kind == "conv" else 1
    pos = np.stack([where // width, where % width], axis=-1).astype(np.int32)
    np.save(folder / "pos.npy", pos)
