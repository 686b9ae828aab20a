"""Stage `topk`: one pass over the data for all chosen layers.

For every unit keep its k highest-activating images; for a conv channel the activation of
an image is its spatial maximum, and where it occurred is kept too. Memory grows with
units x k. The unit statistics downstream (mean, std, histogram, class selectivity, ...)
are accumulated during the same pass (`stats/`, evidence/streamstats.py), so nothing of
size images x units is kept in memory or on disk. The chunks of images form a few
fixed groups, each folded into one running state saved after every chunk (resumable;
artifacts/chunks.fold_chunks); the ranks share the groups and rank 0 merges the groups'
states one at a time, in order, so any number of processes gives the same bits.

The pass is each image's first decode (the dataset stage only lists): a file that cannot
be decoded is left out of everything and recorded with its reason in the group's state;
rank 0 writes them all, in source order, to `unusable.json`.

Ties are broken by the lower image id, so the result is a pure function of the data,
whatever the batch size or the number of processes that shared the pass.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atlas.data.loader import make_checked_loader, model_transform
from atlas.data.sources import DataError
from atlas.evidence.streamstats import UnitStats
from atlas.models.layers import shared_extractor
from atlas.stages.base import Stage
from atlas.artifacts import chunks
from atlas.artifacts import topk as artifact
from atlas.artifacts.store import fault_point, load_chunk

VERSION = 5  # 3: nonfinite.npy per layer; 4: stats/ streamed, no maxact.npy; 5: finds unusable files
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


class PassState:
    """Everything the pass accumulates, per layer: running top-k, streamed statistics and
    non-finite counts, and the images that could not be decoded (`bad`: (id, reason), few).
    Memory and disk grow with units (x k, x fine bins, x classes), never with images. Saved
    after every chunk, so a killed pass resumes from its last chunk."""

    def __init__(self, ctx, k: int, classes: int):
        self.tops = {layer.name: RunningTopK(layer.units, k, ctx.device) for layer in ctx.layers}
        self.stats = {layer.name: UnitStats(layer.units, classes) for layer in ctx.layers}
        self.nonfinite = {layer.name: torch.zeros(layer.units, dtype=torch.long, device=ctx.device)
                          for layer in ctx.layers}
        self.chunks: list[int] = []
        self.bad: list[tuple[int, str]] = []

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"chunks": np.array(self.chunks, np.int64), "bad_ids": np.array([i for i, _ in self.bad], np.int64),
               "bad_reasons": np.array([r for _, r in self.bad], dtype=str).reshape(-1)}
        for name, top in self.tops.items():
            out[f"{name}/values"] = top.values.cpu().numpy()
            out[f"{name}/ids"] = top.ids.cpu().numpy()
            out[f"{name}/where"] = top.where.cpu().numpy()
            out[f"{name}/nonfinite"] = self.nonfinite[name].cpu().numpy()
            out.update(self.stats[name].arrays(f"{name}/stats/"))
        return out

    def restore(self, z, device: torch.device) -> None:
        self.chunks = [int(i) for i in z["chunks"]]
        self.bad = [(int(i), str(r)) for i, r in zip(z["bad_ids"], z["bad_reasons"])]
        for name, top in self.tops.items():
            top.values = torch.from_numpy(z[f"{name}/values"]).to(device)
            top.ids = torch.from_numpy(z[f"{name}/ids"]).to(device)
            top.where = torch.from_numpy(z[f"{name}/where"]).to(device)
            self.nonfinite[name] = torch.from_numpy(z[f"{name}/nonfinite"]).to(device)
            self.stats[name] = UnitStats.from_arrays(z, f"{name}/stats/")


def scan(ctx, ids: np.ndarray, state: PassState, labels: np.ndarray, bar: tqdm | None = None) -> None:
    """The pass itself over images `ids` (ascending), folded into `state`: running top-k,
    streamed unit statistics and non-finite counts for every layer. This is each image's
    first decode: one that fails is recorded in `state.bad` with its reason and left out."""
    net = shared_extractor(ctx.model, [layer.name for layer in ctx.layers])
    # on a GPU: NHWC convolutions (tensor cores); values stay float32 so the ranking is exact
    fmt = torch.channels_last if ctx.device.type == "cuda" else torch.contiguous_format
    net = net.to(memory_format=fmt)
    loader = make_checked_loader(ctx.source, model_transform(ctx.spec), ctx.cfg.batch_size, ctx.cfg.workers,
                                 ids=ids, pin_memory=ctx.device.type == "cuda")
    with torch.inference_mode():
        for x, batch_ids, bad in loader:
            state.bad += bad
            if x is None:  # every image of the batch was unusable
                if bar is not None:
                    bar.update(len(bad))
                continue
            x = x.to(ctx.device, non_blocking=True).contiguous(memory_format=fmt)
            batch_labels = labels[batch_ids.numpy()]
            batch_ids = batch_ids.to(ctx.device)
            acts = net(x)
            for name, top in state.tops.items():
                values = unit_max_values(acts[name])
                top.update(values, batch_ids, locator(acts[name]))
                state.stats[name].update(values.float().cpu().numpy(), batch_labels)
                state.nonfinite[name] += count_nonfinite(acts[name])
            fault_point("topk:batch")
            if bar is not None:
                bar.update(len(x) + len(bad))


def chunk_size(ctx) -> int:
    """Images per chunk: at most CHUNK_BATCHES batches, fewer when that leaves ranks
    without a share. The chunks (and so the batches inside them) are the same for any
    number of ranks."""
    return chunks.chunk_size(len(ctx.source), ctx.cfg.batch_size * CHUNK_BATCHES)


def run(ctx, out: Path, key: str) -> dict:
    n = len(ctx.source)
    size = chunk_size(ctx)
    n_chunks = -(-n // size)
    mine = sum(min(n, (i + 1) * size) - i * size for i in range(ctx.rank, n_chunks, ctx.world_size))
    k = min(ctx.cfg.topk, n)
    labels = np.asarray(ctx.source.labels, dtype=np.int64)
    classes = len(ctx.source.class_names)
    t0 = time.time()
    with tqdm(total=mine, desc="top-k pass", unit="img", disable=ctx.rank != 0) as bar:
        def fold(state: PassState, start: int, stop: int) -> None:
            scan(ctx, np.arange(start, stop), state, labels, bar)
        paths = chunks.fold_chunks(ctx, "topk", key, n, size, lambda: PassState(ctx, k, classes), fold,
                                   items="images")
    if ctx.rank != 0:
        return {}
    rate = mine / max(time.time() - t0, 1e-9)
    unusable = []
    for p in paths:
        z = load_chunk(p, prefix="bad_")
        unusable += [{"id": int(i), "path": ctx.source.descriptions[int(i)], "reason": str(r)}
                     for i, r in zip(z["bad_ids"], z["bad_reasons"])]
    if len(unusable) == n:
        first = f"; first: {unusable[0]['path']}: {unusable[0]['reason']}" if unusable else ""
        raise DataError(f"no usable image in {ctx.cfg.data} ({len(unusable) + len(ctx.source.skipped)} "
                        f"skipped{first})")
    artifact.write_unusable(out, unusable)
    bad = 0
    for layer in ctx.layers:  # one rank's state at a time, one layer at a time
        name = layer.name
        parts, stats, nonfinite = [], None, np.zeros(layer.units, np.int64)
        for p in paths:
            z = load_chunk(p, prefix=f"{name}/")
            parts.append((z[f"{name}/values"].T, z[f"{name}/ids"].T, z[f"{name}/where"].T))
            st = UnitStats.from_arrays(z, f"{name}/stats/")
            nonfinite += z[f"{name}/nonfinite"]
            if stats is None:
                stats = st
            else:
                stats.merge(st)
        values, ids, where = merge_topk(parts, k)
        artifact.write_layer(out, name, values, ids, grid_positions(layer, where), nonfinite, stats.arrays())
        bad += int((nonfinite > 0).sum())
    artifact.write_layers(out, [artifact.LayerEntry(layer.name, layer.alias, layer.kind, tuple(layer.shape),
                                                    layer.units) for layer in ctx.layers])
    units = sum(layer.units for layer in ctx.layers)
    print(f"top-k pass: {n - len(unusable)} images, {units} units, {rate:.0f} images/s on this rank")
    if unusable:
        print(f"top-k pass: {len(unusable)} unusable files skipped (stages/topk/unusable.json)")
    if bad:
        print(f"top-k pass: {bad} units had NaN or infinite activations (nonfinite.npy; marked on their pages)")
    return {"images": n - len(unusable), "unusable": len(unusable), "units": units, "k": k, "chunks": n_chunks,
            "nonfinite_units": bad}


def grid_positions(layer, where: np.ndarray) -> np.ndarray:
    """Flat spatial indices (C, k) -> (C, k, 2) int32 (y, x) in the layer's map ((0, 0) for fc)."""
    width = layer.shape[2] if layer.kind == "conv" else 1
    return np.stack([where // width, where % width], axis=-1).astype(np.int32)
