"""Stage `maps`: the data set in the map layer (fc7 by default), on a bounded sample.

The image map shows at most `map_images` images: a seeded, class-balanced sample
(`map_sample`), or every image when there are fewer. Only the sample's codes are kept, so
memory, time and disk stay flat as the data set grows.
- `sample.npy` int64 (M,): the sampled image ids, ascending; row r of the arrays below is
  image `sample[r]`
- `features.npy` float32 (M, D): the sample's map-layer codes (conv layers: spatial mean)
- `neighbors.npy` int64 (M, K) image ids, `distances.npy` float32 (M, K): FAISS L2
  neighbours within the sample, self excluded
- `tsne.npy`, `umap.npy` float32 (M, 2): openTSNE and umap-learn maps, seeded
- `units_<layer>.npy` float32 (C, 2) for every analysed layer: a map of the layer's units,
  each unit placed by the mean map-layer code of its top-k images (its preferred images as
  the data set shows them; the top-1 image alone makes units that share it coincide), reduced
  to 2-D with t-SNE (PCA below 24 units). Units close on it like the same images. The codes
  are summed per unit over the top-k images in one pass (memory: units x D); a top image in
  the sample is not run through the model again (its code is the sample's).
- `meta.json`: what was computed, how, and how long each part took.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from atlas.artifacts import Run
from atlas.artifacts.maps import MapsWriter
from atlas.evidence.images import display_batches, model_input
from atlas.maps.embed import PCA_BELOW, small_map, tsne_2d, tsne_perplexity, umap_2d
from atlas.maps.neighbors import nearest_neighbors
from atlas.models.layers import shared_extractor
from atlas.artifacts.chunks import chunk_size, deal_by_cost, run_chunks
from atlas.stages.base import Stage

VERSION = 4  # 2: a bounded, class-balanced sample of map_images images; 3: PCA (t-SNE start) by Lanczos past 256 rows and columns; 4: unit codes of sampled images taken from the sample's codes
CHUNK_BATCHES = 32  # the most batches of images in one chunk of the sample's feature pass


def map_layer(ctx) -> str:
    """The configured map layer's node name (default: the model's penultimate layer)."""
    wanted = ctx.cfg.map_layer or ctx.penultimate
    if not wanted:
        raise ValueError(f"model {ctx.spec.name!r} has no penultimate layer; set map_layer")
    return ctx.layer(wanted, key="map_layer").name


def make(ctx) -> list[Stage]:
    cfg = ctx.cfg
    if not cfg.maps:
        return []
    params = {**ctx.model_params(), "layer": map_layer(ctx), "neighbors": cfg.neighbors,
              "perplexity": cfg.tsne_perplexity, "seed": cfg.seed, "umap_neighbors": cfg.umap_neighbors,
              "exact_max": cfg.exact_neighbors_max, "unit_layers": ctx.layer_names(),
              "map_images": cfg.map_images}
    return [Stage("maps", VERSION, params, run, deps=("dataset", "topk"), sharded=True)]


def map_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Ascending ids of `size` images (all when there are fewer), class-balanced: classes
    (unlabelled images count as one) take turns giving a random image each, until `size`;
    a class that runs out leaves its turns to the others. Seeded, so reruns agree."""
    labels = np.asarray(labels)
    n = len(labels)
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, 15])
    classes, inverse = np.unique(labels, return_inverse=True)
    # a random rank for every image within its class; image taken when its rank < quota
    order = rng.permutation(n)
    cls = inverse[order]
    sort = np.argsort(cls, kind="stable")
    counts = np.bincount(cls, minlength=len(classes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, np.int64)
    rank[sort] = np.arange(n) - np.repeat(starts, counts)
    # the largest per-class quota q with sum(min(count, q)) <= size, then the rest by a seeded draw
    lo, hi = 0, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(counts, mid).sum() <= size else (lo, mid - 1)
    take = rank < lo
    extra = size - int(take.sum())
    if extra:
        at_quota = np.flatnonzero(rank == lo)  # one more image from `extra` of the classes left
        take[at_quota[rng.permutation(len(at_quota))[:extra]]] = True
    return np.sort(order[take]).astype(np.int64)


def features(ctx, layer: str, ids: np.ndarray) -> np.ndarray:
    """(len(ids), D) float32 codes of images `ids` at `layer` (conv maps averaged over space)."""
    net = shared_extractor(ctx.model, [layer])
    out = None
    row = {int(i): r for r, i in enumerate(ids)}
    with torch.inference_mode():
        for part, images in display_batches(ctx, ids, ctx.cfg.batch_size):
            act = net(model_input(ctx.spec, images, ctx.device))[layer].float()
            if act.ndim > 2:
                act = act.flatten(2).mean(dim=2)
            if out is None:
                out = np.empty((len(ids), act.shape[1]), np.float32)
            out[[row[int(i)] for i in part]] = act.cpu().numpy()
    return out


def shared_features(ctx, layer: str, ids: np.ndarray, key: str) -> np.ndarray:
    """`features` of images `ids`, computed in chunks shared by the ranks of a torchrun job
    (artifacts/chunks.py); the whole array, on every rank (the embeddings are shared too)."""
    def compute(start: int, stop: int, _folder: Path) -> dict[str, np.ndarray]:
        return {"features": features(ctx, layer, ids[start:stop])}

    done = run_chunks(ctx, "maps", key, len(ids), chunk_size(len(ids), ctx.cfg.batch_size * CHUNK_BATCHES),
                      compute, tag="features", items="images")
    return np.concatenate([c.arrays()["features"] for c in done])


# Unique top images whose codes are held at once while summing unit codes: 1024 x 4096 float32
# is 16 MiB, so the stage's peak memory hardly depends on how many unique top images there are.
UNIT_CODE_BATCH = 1024


def unit_codes(ctx, layer: str, top_ids: dict[str, np.ndarray],
               known: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per analysed layer, (C, D): the mean map-layer code of each unit's top-k images
    (non-finite codes as 0), accumulated batch by batch over the unique top images.

    `known`: (ascending image ids, their cleaned codes), the map sample's codes, already
    computed by the stage's shared feature pass; a top image among them is not run through
    the model again (when the sample is every image, as in the quick demo, none is). The
    codes of an image are the same function of the image either way; which batch computed
    them can move the last bits, so a run's unit maps do not depend on it as long as the
    sample does not change (it is seeded).

    Sums are added one top-k slot at a time: a unit holds an image at most once per slot, so
    a plain indexed add needs no `np.add.at` and its temporary is one code per unit at most
    (not one per (unit, slot) hit); per unit the additions keep the order batch, then slot."""
    unique = np.unique(np.concatenate([ids[ids >= 0].ravel() for ids in top_ids.values()]))
    sums = {name: None for name in top_ids}
    for start in range(0, len(unique), UNIT_CODE_BATCH):
        part = unique[start:start + UNIT_CODE_BATCH]
        feats = batch_codes(ctx, layer, part, known)
        for name, ids in top_ids.items():
            if sums[name] is None:
                sums[name] = np.zeros((ids.shape[0], feats.shape[1]), np.float64)
            pos = np.searchsorted(part, ids)
            hit = (ids >= 0) & (pos < len(part)) & (part[np.minimum(pos, len(part) - 1)] == ids)
            for slot in range(ids.shape[1]):
                units = np.flatnonzero(hit[:, slot])
                sums[name][units] += feats[pos[units, slot]]
        del feats
    codes = {}
    for name, ids in top_ids.items():  # divided in place, one layer's float64 sums freed at a time
        total = sums.pop(name)
        total /= np.maximum((ids >= 0).sum(axis=1), 1)[:, None]
        codes[name] = total.astype(np.float32)
        del total
    return codes


def batch_codes(ctx, layer: str, ids: np.ndarray, known: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(len(ids), D) cleaned codes of ascending images `ids`: rows of `known` (ids, codes)
    where it has them, the model's for the others."""
    if known is None or not len(known[0]):
        return np.nan_to_num(features(ctx, layer, ids), copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    kids, kcodes = known
    pos = np.minimum(np.searchsorted(kids, ids), len(kids) - 1)
    have = kids[pos] == ids
    out = np.empty((len(ids), kcodes.shape[1]), np.float32)
    out[have] = kcodes[pos[have]]
    if not have.all():
        out[~have] = np.nan_to_num(features(ctx, layer, ids[~have]), copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return out


# The maps of the sample (UMAP, t-SNE) and one map of each layer's units are jobs dealt to the
# ranks (artifacts/chunks.py, one job per chunk) by their estimated cost (`job_costs`,
# `chunks.deal_by_cost`): until 2026-11-26 round-robin, which gave rank 0 UMAP and half the unit
# maps against t-SNE and the other half, each rank loading scikit-learn and openTSNE, and left rank 1
# waiting 0.4-0.85 s for rank 0 in the quick demo. A rank computes the units' codes once, for its
# first unit map (the same batches on every rank), and runs its jobs one after another in the
# order of `map_jobs` (unit maps first, largest layer first, then UMAP and t-SNE), so the stage's peak memory is the same on every
# run: in threads at once, how the jobs' transient arrays overlapped (and what the allocator kept
# of them) moved the peak by 10-80 MiB from run to run; and the codes' float64 sums (units x D)
# are gone before UMAP's numba code and openTSNE are loaded. All are seeded and single-threaded,
# so the maps are the same bits for any number of ranks.
def map_jobs(top_ids: dict[str, np.ndarray]) -> list[str]:
    """The jobs, in the order they are dealt: `units_<i>` (i: the layer's position in `top_ids`)
    from the layer with the most units to the least (ties: in order), then `umap`, `tsne`."""
    units = [len(ids) for ids in top_ids.values()]
    order = sorted(range(len(units)), key=lambda i: -units[i])
    return [*(f"units_{i}" for i in order), "umap", "tsne"]


# What the deal of the jobs to the ranks assumes (seconds on one core of the 2-core test machine,
# measured 2026-11-26 at load 2-3 on random 128-d codes with the stage's own kind of neighbour graph):
# the first job of a process that needs scikit-learn pays 1.0 s for it (openTSNE and umap-learn both
# load it), the first t-SNE 0.2 s more for openTSNE, the first UMAP 1.45 s for umap-learn and its
# numba functions; then t-SNE of n points 2.5e-4 * n * log2(n) s (400: 0.74-1.1 s, 2,000: 6.2 s),
# a unit map's shorter t-SNE 1.6e-4 * n * log2(n) s (128 units: 0.14-0.18 s, 666: 1.0 s), UMAP
# 0.2 s + 3.4e-4 s a point, PCA (below PCA_BELOW points) nothing; each job 0.01 s more, so that jobs
# of no cost still spread over the ranks. Only which rank runs a job depends on these figures,
# never a map: a wrong guess costs time, not bits.
JOB_SETUP = {"sklearn": 1.0, "openTSNE": 0.2, "umap": 1.45}


def job_costs(jobs: list[str], points: int, units: list[int]) -> tuple[list[float], list[tuple[str, ...]]]:
    """Estimated seconds of each job of `map_jobs` and the libraries it loads: `points` images
    in the sample, `units[i]` units in layer i."""
    costs, needs = [], []
    for name in jobs:
        n = points if name in ("umap", "tsne") else units[int(name.split("_")[1])]
        if n < PCA_BELOW:
            cost, libs = 0.0, ()
        elif name == "umap":
            cost, libs = 0.2 + 3.4e-4 * n, ("sklearn", "umap")
        else:
            cost, libs = (2.5e-4 if name == "tsne" else 1.6e-4) * n * np.log2(n), ("sklearn", "openTSNE")
        costs.append(0.01 + float(cost))
        needs.append(libs)
    return costs, needs


def embeddings(ctx, key: str, layer: str, sample: np.ndarray, clean: np.ndarray, knn: tuple[np.ndarray, np.ndarray],
               top_ids: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]] | None:
    """The t-SNE and UMAP maps of the sample's codes `clean` (images `sample`, ascending) and a
    map of each layer's units (keys `tsne`, `umap`, `units_<i>` in `top_ids` order) and seconds
    per job, on rank 0; None on the other ranks."""
    cfg = ctx.cfg
    jobs = map_jobs(top_ids)
    names = list(top_ids)
    codes: dict[str, np.ndarray] = {}
    computed = []

    def unit_code(i: int) -> np.ndarray:
        if not computed:  # once on this rank, by the first of its unit-map jobs
            codes.update(unit_codes(ctx, layer, top_ids, known=(sample, clean)))
            computed.append(True)
        return codes.pop(names[i])  # each layer's codes dropped once its map is made

    def compute(job: int, _stop: int, _folder: Path) -> dict[str, np.ndarray]:
        t0, name = time.time(), jobs[job]
        if name == "umap":
            out = {"umap": umap_2d(clean, cfg.umap_neighbors, cfg.seed, knn)}
        elif name == "tsne":
            out = {"tsne": tsne_2d(clean, cfg.tsne_perplexity, cfg.seed, knn)}
        else:
            out = {name: small_map(unit_code(int(name.split("_")[1])), cfg.seed, cfg.tsne_perplexity)}
        return {**out, "seconds": np.float64(time.time() - t0)}

    costs, needs = job_costs(jobs, len(clean), [len(ids) for ids in top_ids.values()])

    def deal(missing: list, world_size: int) -> list[int]:  # by cost, not round-robin: see job_costs
        index = [c.start for c in missing]
        return deal_by_cost([costs[i] for i in index], [needs[i] for i in index], JOB_SETUP, world_size)

    done = run_chunks(ctx, "maps", key, len(jobs), 1, compute, tag="embed", items="jobs", deal=deal)
    if ctx.rank != 0:
        return None
    maps, seconds = {}, {}
    for name, chunk in zip(jobs, done):
        arrays = chunk.arrays()
        seconds[name] = float(arrays.pop("seconds"))
        maps.update(arrays)
    return maps, seconds


def run(ctx, out: Path, key: str) -> dict:
    from atlas.distributed import broadcast
    from atlas.memory import own_mappings
    # the model's batch loops are over (maps, thumbs and figures come last): from here on a
    # large transient array is mapped on its own and freed at once, so the stage's peak does
    # not depend on how the heap was left (memory.own_mappings)
    own_mappings()
    cfg, seconds = ctx.cfg, {}
    layer = map_layer(ctx)
    t0 = time.time()
    run_in = Run(ctx.store.root)
    ds = run_in.dataset
    usable = np.flatnonzero(ds.usable)  # files the top-k pass could not decode are not mapped
    labels = np.asarray(ds.labels)[usable]
    sample = usable[map_sample(labels, cfg.map_images, cfg.seed)]
    feats = shared_features(ctx, layer, sample, key)
    seconds["features"] = time.time() - t0
    n = len(feats)
    clean = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)

    t0 = time.time()
    k_graph = max(cfg.neighbors, int(3 * tsne_perplexity(n, cfg.tsne_perplexity)), cfg.umap_neighbors)
    # rank 0's graph for all (an approximate index may differ between processes)
    graph = broadcast(nearest_neighbors(clean, k_graph, exact_max=cfg.exact_neighbors_max) if ctx.rank == 0
                      else None, ctx.world_size)
    seconds["neighbors"] = time.time() - t0

    t0 = time.time()
    top_ids = {e.name: run_in.topk.layer(e.name).ids for e in run_in.topk.layers}
    made = embeddings(ctx, key, layer, sample, clean, (graph.ids, graph.distances), top_ids)
    if made is None:  # ranks other than 0: their share is done
        return {}
    maps, job_seconds = made
    seconds["embed_wall"] = time.time() - t0
    seconds.update(job_seconds)

    writer = MapsWriter(out)
    writer.sample(sample)
    writer.features(feats)
    k = min(cfg.neighbors, graph.ids.shape[1])
    writer.neighbors(np.where(graph.ids[:, :k] >= 0, sample[np.maximum(graph.ids[:, :k], 0)], -1),
                     graph.distances[:, :k])
    writer.coords("tsne", maps["tsne"])
    writer.coords("umap", maps["umap"])
    units = {}
    for i, (name, ids) in enumerate(top_ids.items()):
        fname = writer.unit_map(name, maps[f"units_{i}"])
        units[name] = {"file": fname, "units": int(len(ids)), "method": "pca" if len(ids) < PCA_BELOW else "tsne"}
    nonfinite = int((~np.isfinite(feats)).any(axis=1).sum())
    small = n < PCA_BELOW
    writer.meta({
        "layer": layer, "count": n, "images": len(labels), "sample": "all images" if n == len(labels) else
        f"{n} of {len(labels)}, class-balanced, seed {cfg.seed}", "dim": int(feats.shape[1]), "nonfinite_rows": nonfinite,
        "neighbors": {"k": int(k), "index": graph.index, "metric": "euclidean", "self_excluded": True},
        "tsne": {"method": "pca" if small else "openTSNE", "perplexity": tsne_perplexity(n, cfg.tsne_perplexity),
                 "seed": cfg.seed, "affinities": "FAISS neighbours"},
        "umap": {"method": "pca" if small else "umap-learn", "n_neighbors": min(cfg.umap_neighbors, max(n - 1, 2)),
                 "n_epochs": 200, "seed": cfg.seed, "knn": "FAISS neighbours"},
        "units": units, "unit_code": "mean map-layer code of the unit's top-k images"})  # timings go to summary.json: artifacts stay deterministic
    return {"images": n, "dim": int(feats.shape[1]), "index": graph.index,
            **{f"{key_}_s": round(v, 1) for key_, v in seconds.items()}}
