"""Stage `topk`: one pass over the data for all chosen layers.

For every unit keep its k highest-activating images; for a conv channel the activation of
an image is its spatial maximum, and where it occurred is kept too. Memory grows with
units x k. Each image's per-unit maximum also goes to disk (`maxact.npy`, images x units,
memory-mapped) for the histograms and statistics downstream.

Ties are broken by the lower image id, so the result is a pure function of the data,
whatever the batch size or the number of processes that shared the pass.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from atlas.data.loader import make_loader, model_transform
from atlas.models.layers import extractor
from atlas.stages.base import Stage
from atlas.stages.store import fault_point, write_json

CHECKPOINT_ENV = "ATLAS_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 30.0

VERSION = 2  # 2: nonfinite.npy per layer


def nan_to_low(x: torch.Tensor) -> torch.Tensor:
    """NaN -> -inf, infinities kept (torch.nan_to_num would clamp them to finite values)."""
    return torch.where(torch.isnan(x), torch.full_like(x, -torch.inf), x)


def unit_max(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,C,H,W) -> per-unit max (B,C) and the flat spatial index of its first occurrence;
    (B,C) -> itself and zeros."""
    if act.ndim == 2:
        return act, torch.zeros_like(act, dtype=torch.long)
    # NaN would win torch.max; rank it below everything instead (it is counted separately)
    values, where = nan_to_low(act.flatten(2)).max(dim=2)
    return values, where


class RunningTopK:
    """Top-k over a stream of (values (B,C), ids (B,), where (B,C)) batches, on any device."""

    def __init__(self, units: int, k: int, device: torch.device):
        self.k = k
        self.values = torch.full((0, units), -torch.inf, device=device)
        self.ids = torch.zeros((0, units), dtype=torch.long, device=device)
        self.where = torch.zeros((0, units), dtype=torch.long, device=device)

    def update(self, values: torch.Tensor, ids: torch.Tensor, where: torch.Tensor) -> None:
        v = nan_to_low(values.float())
        cat_v = torch.cat([self.values, v])
        cat_i = torch.cat([self.ids, ids.view(-1, 1).expand_as(v)])
        cat_w = torch.cat([self.where, where])
        # stable: among equal values the earlier row (lower id, ids arrive ascending) stays first
        order = torch.sort(cat_v, dim=0, descending=True, stable=True).indices[:self.k]
        self.values = cat_v.gather(0, order)
        self.ids = cat_i.gather(0, order)
        self.where = cat_w.gather(0, order)

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The running lists as stored, (rows, C) each, for a checkpoint."""
        return self.values.cpu().numpy(), self.ids.cpu().numpy(), self.where.cpu().numpy()

    @classmethod
    def from_state(cls, state: dict, k: int, device: torch.device) -> "RunningTopK":
        top = cls(state["values"].shape[1], k, device)
        top.values = torch.as_tensor(state["values"], device=device)
        top.ids = torch.as_tensor(state["ids"], device=device)
        top.where = torch.as_tensor(state["where"], device=device)
        return top

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
    return Stage("topk", VERSION, params, run, deps=("dataset",))


def scan(ctx, ids: np.ndarray, maxact_out: dict[str, np.ndarray] | None = None,
         desc: str = "top-k pass", tops: dict[str, RunningTopK] | None = None,
         nonfinite: dict[str, torch.Tensor] | None = None,
         on_batch: Callable[[int], None] | None = None) -> dict[str, RunningTopK]:
    """The pass itself over images `ids`: running top-k for every layer (and per-image maxima).

    `tops` continues running lists (a resumed pass); `nonfinite` accumulates, per unit, the
    number of images whose activation has a NaN or an infinity; `on_batch(done)` is called
    after each batch with the number of `ids` processed so far."""
    layers = ctx.layers
    net = extractor(ctx.model, [layer.name for layer in layers])
    loader = make_loader(ctx.source, model_transform(ctx.spec), ctx.cfg.batch_size, ctx.cfg.workers,
                         ids=ids, pin_memory=ctx.device.type == "cuda")
    k = min(ctx.cfg.topk, len(ctx.source))
    if tops is None:
        tops = {layer.name: RunningTopK(layer.units, k, ctx.device) for layer in layers}
    t0, done = time.time(), 0
    with torch.inference_mode():
        for x, batch_ids in tqdm(loader, desc=desc, unit="batch", total=len(loader)):
            x = x.to(ctx.device, non_blocking=True)
            batch_ids = batch_ids.to(ctx.device)
            acts = net(x)
            for name, top in tops.items():
                act = acts[name]
                values, where = unit_max(act)
                top.update(values, batch_ids, where)
                if nonfinite is not None:
                    bad = ~torch.isfinite(act.reshape(act.shape[0], act.shape[1], -1))
                    nonfinite[name] += bad.any(dim=2).sum(dim=0)
                if maxact_out is not None:
                    maxact_out[name][batch_ids.cpu().numpy()] = act.float().amax(
                        dim=tuple(range(2, act.ndim))).cpu().numpy() if act.ndim > 2 \
                        else act.float().cpu().numpy()
            done += len(batch_ids)
            if on_batch is not None:
                on_batch(done)
    rate = len(ids) / max(time.time() - t0, 1e-9)
    print(f"top-k pass: {len(ids)} images, {sum(layer.units for layer in layers)} units, {rate:.0f} images/s")
    return tops


def checkpoint_seconds() -> float:
    """How often the pass saves its running state (ATLAS_CHECKPOINT_SECONDS, default 30)."""
    return float(os.environ.get(CHECKPOINT_ENV, DEFAULT_CHECKPOINT_SECONDS))


def run(ctx, out: Path, key: str) -> dict:
    """The pass over all usable images, resumable: every `checkpoint_seconds()` the running
    top-k lists and non-finite counts are saved beside the memory-mapped per-image maxima in
    the stage's partial folder, so a killed run continues from its last checkpoint. Batches
    restart on the same boundaries and the merge is exact, so the result is identical."""
    n = len(ctx.source)
    layers = ctx.layers
    k = min(ctx.cfg.topk, n)
    part = ctx.store.partial_dir("topk", key)
    maxact = {layer.name: _open_maxact(part / f"{layer.name}.maxact.npy", n, layer.units) for layer in layers}
    state = _load_state(part, layers, k, n)
    if state is not None:
        start = state["done"]
        tops = {layer.name: RunningTopK.from_state(state[layer.name], k, ctx.device) for layer in layers}
        nonfinite = {layer.name: torch.as_tensor(state[layer.name]["nonfinite"], device=ctx.device)
                     for layer in layers}
        print(f"top-k pass: resuming at image {start} of {n} (saved by an interrupted run)")
    else:
        start = 0
        tops = {layer.name: RunningTopK(layer.units, k, ctx.device) for layer in layers}
        nonfinite = {layer.name: torch.zeros(layer.units, dtype=torch.long, device=ctx.device)
                     for layer in layers}
    every, last = checkpoint_seconds(), time.time()

    def on_batch(done: int) -> None:
        nonlocal last
        if time.time() - last >= every and start + done < n:
            _save_state(part, maxact, tops, nonfinite, start + done)
            last = time.time()
        fault_point("topk:batch")

    if start < n:
        scan(ctx, np.arange(start, n), maxact, tops=tops, nonfinite=nonfinite, on_batch=on_batch)
    (part / STATE).unlink(missing_ok=True)  # the maxima move out below; the state is void
    for layer in layers:
        folder = out / layer.name
        folder.mkdir()
        maxact[layer.name].flush()
        del maxact[layer.name]
        os.replace(part / f"{layer.name}.maxact.npy", folder / "maxact.npy")
        values, ids, where = tops[layer.name].result()
        save_topk(folder, layer, values, ids, where)
        np.save(folder / "nonfinite.npy", nonfinite[layer.name].cpu().numpy().astype(np.int64))
    write_json(out / "layers.json", [{"name": layer.name, "alias": layer.alias, "shape": list(layer.shape),
                                      "units": layer.units, "kind": layer.kind} for layer in layers])
    bad = sum(int((nonfinite[layer.name] > 0).sum()) for layer in layers)
    if bad:
        print(f"top-k pass: {bad} units had NaN or infinite activations (nonfinite.npy; marked on their pages)")
    return {"images": n, "units": sum(layer.units for layer in layers), "k": k, "nonfinite_units": bad}


STATE = "state.npz"


def _open_maxact(path: Path, n: int, units: int) -> np.ndarray:
    """The per-image maxima, memory-mapped; an existing file of the right shape is reused."""
    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r+")
            if arr.shape == (n, units) and arr.dtype == np.float32:
                return arr
        except (OSError, ValueError):
            pass
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, units))


def _save_state(part: Path, maxact: dict, tops: dict[str, RunningTopK],
                nonfinite: dict[str, torch.Tensor], done: int) -> None:
    """Flush the maxima, then atomically write the running state (the maxima come first,
    so a state on disk never claims rows that are not there)."""
    for arr in maxact.values():
        arr.flush()
    arrays: dict[str, np.ndarray] = {"done": np.array(done, dtype=np.int64)}
    for name, top in tops.items():
        values, ids, where = top.state()
        arrays.update({f"{name}/values": values, f"{name}/ids": ids, f"{name}/where": where,
                       f"{name}/nonfinite": nonfinite[name].cpu().numpy()})
    tmp = part / f".{STATE}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, part / STATE)


def _load_state(part: Path, layers, k: int, n: int) -> dict | None:
    """The saved running state if it fits these layers, k and n; None otherwise."""
    path = part / STATE
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            state: dict = {"done": int(z["done"])}
            for layer in layers:
                entry = {f: z[f"{layer.name}/{f}"] for f in ("values", "ids", "where", "nonfinite")}
                if entry["values"].shape[1] != layer.units or entry["values"].shape[0] > k \
                        or entry["nonfinite"].shape != (layer.units,):
                    return None
                state[layer.name] = entry
    except (OSError, ValueError, KeyError):
        return None
    if not 0 < state["done"] <= n or any(not (part / f"{layer.name}.maxact.npy").is_file() for layer in layers):
        return None
    return state


def save_topk(folder: Path, layer, values: np.ndarray, ids: np.ndarray, where: np.ndarray) -> None:
    """values (C,k) float32, ids (C,k) int64, pos (C,k,2) int32 as (y, x) in the layer's map."""
    np.save(folder / "values.npy", values.astype(np.float32))
    np.save(folder / "ids.npy", ids.astype(np.int64))
    width = layer.shape[2] if layer.kind == "conv" else 1
    pos = np.stack([where // width, where % width], axis=-1).astype(np.int32)
    np.save(folder / "pos.npy", pos)
