"""Stage `featvis/<layer>`: each unit's preferred input under each chosen prior.

For every unit of the layer (the first `units_limit`), `seeds` images per prior. The
priors are plug-ins (atlas/priors/registry.py: DGN-AM through the model's generator,
pixel-space ascent with Yosinski et al.'s regularizers, Lucid's decorrelated Fourier
parameterization, ...); this stage knows none of them by name. Units are worked in
contiguous chunks of at most `featvis_batch` optimizations (and at least MIN_CHUNKS = 2
chunks, so two ranks can share a small layer: more chunks would cut a small layer's
batched optimization into pieces, twice as slow on one process for the quick demo), one
batched optimization per chunk and prior, through the
chunk runner (artifacts/chunks.py): every rank of a torchrun job works its share of the
chunks, each finished chunk is kept in the stage's partial folder (an interrupted run
resumes where it stopped), and rank 0 merges them.

Conv units are optimized at the centre neuron of their channel (act_max.py), or the
channel mean (`dgn_conv_objective = "mean"`); with the centre neuron the stored images are
cropped to that neuron's receptive field, measured as the bounding box of the input
pixels its gradient reaches. `<prior>_act.npy` holds the objective for each stored
(uint8, uncropped) image: what the atlas shows is what was measured; `meta.json` carries
each prior's title, so the renderer and the figures need no table of names. A prior that
reads the data set (`needs_data`) makes the stage depend on the dataset stage. The pictures
the site shows (lossless PNG sprite sheets of the units' strips) are encoded here, by the
artifact writer.
"""
from __future__ import annotations

import time
import zlib
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atlas.distributed import broadcast
from atlas.priors import registry
from atlas.priors.batching import featvis_batch
from atlas.priors.objectives import center_of, diversity, unit_objective
from atlas.priors.plugins.dgn import generator_file  # noqa: F401  (kept importable from here)
from atlas.priors.registry import Problem, Result, SkipPrior
from atlas.priors.target import NetTarget, compute_dtype, to_uint8
from atlas.stages.base import Stage
from atlas.artifacts.chunks import Pass, chunk_size, run_passes
from atlas.artifacts import featvis as artifact

MIN_CHUNKS = 2  # a layer smaller than two batches is split in two, not in chunks.MIN_CHUNKS

VERSION = 4  # 2: the site's PNG strips encoded here, not by the renderer; 3: as sprite sheets (sheets/);
#             4: batch norms folded into convolutions, `featvis_dtype` (bfloat16 steps on CPU)


def prior_settings(cfg, names: list[str] | None = None) -> dict:
    """The settings of each prior (all registered ones, or `names`), from the config."""
    all_ = registry.priors()
    return {p: all_[p].settings_from(cfg) for p in (names if names is not None else all_)}


def make(ctx) -> list[Stage]:
    cfg = ctx.cfg
    settings = prior_settings(cfg, list(cfg.priors))
    priors, identity = [], {}
    for name in cfg.priors:
        prior = registry.get(name)
        try:
            identity[name] = prior.identity(ctx, settings[name]) if prior.identity else {}
        except SkipPrior as exc:
            print(f"note: {exc}")
            continue
        priors.append(name)
    settings = {p: settings[p] for p in priors}
    deps = ("dataset",) if any(registry.get(p).needs_data for p in priors) else ()
    common = {**ctx.model_params(), "priors": priors, "seeds": cfg.seeds, "seed": cfg.seed,
              "conv_objective": cfg.dgn_conv_objective, "diversity": cfg.featvis_diversity,
              # the resolved precision ("auto" differs between machines, and so do the pixels)
              "dtype": str(compute_dtype(cfg.featvis_dtype, ctx.device) or torch.float32).removeprefix("torch."),
              "settings": {p: vars(settings[p]) for p in priors},
              # each prior's inputs beyond the network (the generator's checksum, ...)
              **{k: v for p in priors for k, v in identity[p].items()}}
    if "generator" not in common:
        common["generator"] = None
    stages = []
    for layer in ctx.layers:
        chosen = ctx.units_of(layer)  # `units` (e.g. fc8:0-99), else the first `units_limit`
        units = len(chosen) if chosen == list(range(len(chosen))) else chosen
        params = {**common, "layer": layer.name, "units": units}
        fn = partial(run, layer=layer, units=units, priors=priors, settings=settings)
        stages.append(Stage(artifact.stage(layer.name), VERSION, params, fn, deps=deps, sharded=True))
    return stages


def element_seed(base: int, layer: str, unit: int, seed: int) -> int:
    """A seed for (unit, seed index) that does not depend on the chunking."""
    return int(np.random.SeedSequence([base, zlib.crc32(layer.encode()), unit, seed]).generate_state(1)[0])


def center_receptive_field(target: NetTarget, node: str, seed: int = 0, probes: int = 16) -> list[int]:
    """[y0, x0, y1, x1) of the input pixels that the centre neuron of `node` depends on:
    the bounding box of its nonzero input gradient, over random probe images and all
    channels (so max-pool routing and dead ReLUs of one probe do not shrink it)."""
    s = target.input_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(probes, 3, s, s, generator=g).to(target.device, target.dtype).requires_grad_(True)
    act = target.net_for([node])(x)[node]
    cy, cx = center_of(act.shape)
    grad, = torch.autograd.grad(act[:, :, cy, cx].sum(), x)
    mask = grad.abs().sum((0, 1)) > 0
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        return [0, 0, s, s]
    return [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]


def optimize(prior: str, target: NetTarget, objective, seeds: list[int], settings, resource=None,
             progress=None, plain=None) -> Result:
    """One batched optimization under `prior`: images (B, 3, S, S) in 0..1 and the arrays
    the prior stores. `objective` may carry a diversity term; `plain` is the unit alone."""
    return registry.get(prior).visualize(Problem(target, objective, plain if plain is not None else objective,
                                                 seeds, settings, resource, progress))


def _crop(images: np.ndarray, crop: list[int]) -> np.ndarray:
    y0, x0, y1, x1 = crop
    return images[:, :, y0:y1, x0:x1]


@contextmanager
def cpu_threads(n: int, device: torch.device):
    """Run with n torch CPU threads (n = 0 or a GPU device: unchanged), then restore."""
    if n <= 0 or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(ctx, out: Path, key: str, layer, units: int | list[int], priors: list[str], settings: dict) -> dict:
    with cpu_threads(ctx.cfg.featvis_threads, ctx.device):
        return _run(ctx, out, key, layer, units, priors, settings)


def _run(ctx, out: Path, key: str, layer, units: int | list[int], priors: list[str], settings: dict) -> dict:
    """`units`: a count (the first units) or the unit ids chosen; arrays are stored in that
    order (row i is unit ids[i]); meta.json's `units` lists the ids when they are not 0..n-1."""
    cfg = ctx.cfg
    ids = list(range(units)) if isinstance(units, int) else list(units)
    units = len(ids)
    S = cfg.seeds
    entries = {p: registry.get(p) for p in priors}
    target = NetTarget(ctx.model, ctx.spec, ctx.device, channels_last=True,
                       compute_dtype=compute_dtype(cfg.featvis_dtype, ctx.device))
    resources = {p: e.prepare(ctx, settings[p]) if e.prepare else None for p, e in entries.items()}
    # on a GPU the batch is sized by a probe step through a generator when a prior has one
    bundle = next((r for r in resources.values() if hasattr(r, "code_dim") and hasattr(r, "net")), None)
    where = cfg.dgn_conv_objective if layer.kind == "conv" else "unit"
    # the crop is applied by rank 0's merge alone: the other ranks skip the probe (about 0.1 s
    # a process for the quick demo's five conv layers)
    crop = center_receptive_field(target, layer.name, cfg.seed) if where == "center" and ctx.rank == 0 else None
    batch = featvis_batch(cfg.featvis_batch, target, bundle,
                          lambda n: unit_objective(layer.name, torch.zeros(n, dtype=torch.long),
                                                   "center" if where == "unit" else where))
    # rank 0's size for all: an automatic batch may differ between GPUs, the chunks may not
    per_chunk = broadcast(chunk_size(units, max(1, batch // S), MIN_CHUNKS), ctx.world_size)
    total = sum(settings[p].iters for p in priors) * units * S
    seconds = {p: 0.0 for p in priors}
    bar = tqdm(total=total, desc=f"featvis {layer.name}", unit="unit-it", unit_scale=True,
               disable=ctx.rank != 0)

    def compute(prior: str, u0: int, u1: int, _folder: Path) -> dict[str, np.ndarray]:
        """Rows u0..u1-1 (units ids[u0:u1]) under one prior."""
        unit_ids = torch.tensor(ids[u0:u1], dtype=torch.long).repeat_interleave(S)
        seeds = [element_seed(cfg.seed, layer.name, u, s) for u in ids[u0:u1] for s in range(S)]
        objective = unit_objective(layer.name, unit_ids, "center" if where == "unit" else where)
        diverse = objective + cfg.featvis_diversity * diversity(layer.name, unit_ids) \
            if cfg.featvis_diversity > 0 and S > 1 else objective
        t0 = time.time()
        res = optimize(prior, target, diverse if entries[prior].uses_diversity else objective, seeds,
                       settings[prior], resources[prior], lambda k, n=len(seeds): bar.update(k * n), objective)
        stored = to_uint8(res.images)
        acts = target.activations_of_uint8(stored, objective).cpu().numpy()
        seconds[prior] += time.time() - t0
        arrays = {"images": stored.numpy().reshape(u1 - u0, S, *stored.shape[1:]),
                  "acts": acts.reshape(u1 - u0, S).astype(np.float32)}
        for name in entries[prior].stores_for(settings[prior]):
            a = res.arrays[name]
            a = to_uint8(a).numpy() if name.startswith("images") or a.ndim == 4 else np.asarray(a.cpu())
            arrays[f"x_{name}"] = a.reshape(u1 - u0, S, *a.shape[1:])
        return arrays

    # one deal and one wait for all the priors' chunks (artifacts/chunks.run_passes), not one per prior
    passes = [Pass(prior, units, per_chunk, partial(compute, prior), "units") for prior in priors]
    done = dict(zip(priors, run_passes(ctx, artifact.stage(layer.name), key, passes)))
    bar.close()
    if ctx.rank != 0:
        return {}
    summary: dict = {"units": units, "seeds": S}
    for prior in priors:
        stores = entries[prior].stores_for(settings[prior])
        loaded = [c.arrays() for c in done[prior]]
        imgs, acts = [z["images"] for z in loaded], [z["acts"] for z in loaded]
        extra = {name: [z[f"x_{name}"] for z in loaded] for name in stores}
        images = np.concatenate(imgs)
        if crop is not None:
            images = _crop(images, crop)
        stored = {}
        for name in stores:
            a = np.concatenate(extra[name])
            if crop is not None and a.ndim == 5 and a.dtype == np.uint8:
                a = _crop(a, crop)
            stored[name] = a
        act = np.concatenate(acts).astype(np.float32)
        artifact.write_prior(out, prior, np.ascontiguousarray(images), act, stored)
        summary[f"{prior}_act_mean"] = round(float(act.mean()), 4)
        if seconds[prior] > 0:
            summary[f"{prior}_seconds"] = round(seconds[prior], 1)
    meta = {"layer": layer.name, "kind": layer.kind, "priors": priors, "seeds": S, "units": units,
            "iterations": {p: settings[p].iters for p in priors}, "crop": crop,
            "objective": where, "center": list(center_of(layer.shape)) if layer.kind == "conv" else None,
            "input_size": ctx.spec.input_size, "seed": cfg.seed, "diversity": cfg.featvis_diversity,
            "settings": {p: vars(settings[p]) for p in priors},
            "labels": registry.labels(priors),
            "stores": {p: list(entries[p].stores_for(settings[p])) for p in priors}, "generator": None}
    for p in priors:
        if entries[p].describe is not None:
            meta.update(entries[p].describe(resources[p]))
    if ids != list(range(units)):
        meta["units"] = ids  # row i of every array is unit ids[i] (figures and the site read this)
    if layer.tokens:
        meta["layout"] = layer.layout
    # timings go to summary.json: artifacts stay deterministic
    summary["encode_s"] = round(artifact.write_meta(out, meta), 3)  # the sheets the site shows
    return summary
