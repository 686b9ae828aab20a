"""Stage `maps`: the data set in the map layer (fc7 by default).

- `features.npy` float32 (N, D): every image's map-layer code (conv layers: spatial mean)
- `neighbors.npy` int64 (N, K), `distances.npy` float32 (N, K): FAISS L2 neighbours, self excluded
- `tsne.npy`, `umap.npy` float32 (N, 2): openTSNE and umap-learn maps, seeded
- `units_<layer>.npy` float32 (C, 2) for every analysed layer: a map of the layer's units,
  each unit placed by the mean map-layer code of its top-k images (its preferred images as
  the data set shows them; the top-1 image alone makes units that share it coincide), reduced
  to 2-D with t-SNE (PCA below 24 units). Units close on it like the same images.
- `meta.json`: what was computed, how, and how long each part took.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from atlas.evidence.images import display_batches, model_input
from atlas.maps.embed import PCA_BELOW, small_map, tsne_2d, tsne_perplexity, umap_2d
from atlas.maps.neighbors import nearest_neighbors
from atlas.models.layers import extractor, node_names
from atlas.stages.base import Stage
from atlas.stages.store import read_json, write_json

VERSION = 1


def map_layer(ctx) -> str:
    """The configured map layer's node name (default: the model's penultimate layer)."""
    wanted = ctx.cfg.map_layer or ctx.spec.penultimate
    if not wanted:
        raise ValueError(f"model {ctx.spec.name!r} names no penultimate layer; set map_layer")
    node = ctx.spec.resolve_layer(wanted)
    if node not in node_names(ctx.model):
        raise ValueError(f"map_layer {wanted!r} is not a layer of {ctx.spec.name!r}; "
                         f"run `atlas layers {ctx.spec.name}` for the node names")
    return node


def make(ctx) -> list[Stage]:
    cfg = ctx.cfg
    if not cfg.maps:
        return []
    params = {**ctx.model_params(), "layer": map_layer(ctx), "neighbors": cfg.neighbors,
              "perplexity": cfg.tsne_perplexity, "seed": cfg.seed, "umap_neighbors": cfg.umap_neighbors,
              "exact_max": cfg.exact_neighbors_max, "unit_layers": ctx.layer_names()}
    return [Stage("maps", VERSION, params, run, deps=("dataset", "topk"))]


def features(ctx, layer: str) -> np.ndarray:
    """(N, D) float32 codes of every image at `layer` (conv maps averaged over space)."""
    n = read_json(ctx.store.stage_dir("dataset") / "images.json")["count"]
    net = extractor(ctx.model, [layer])
    out = None
    with torch.inference_mode():
        for ids, images in display_batches(ctx, np.arange(n), ctx.cfg.batch_size):
            act = net(model_input(ctx.spec, images, ctx.device))[layer].float()
            if act.ndim > 2:
                act = act.flatten(2).mean(dim=2)
            if out is None:
                out = np.empty((n, act.shape[1]), np.float32)
            out[ids] = act.cpu().numpy()
    return out


def unit_codes(feats: np.ndarray, top_ids: np.ndarray) -> np.ndarray:
    """(C, D): the mean code of each unit's top-k images."""
    return feats[top_ids].mean(axis=1)


def _timed(fn, *args):
    t0 = time.time()
    return fn(*args), time.time() - t0


def run(ctx, out: Path, key: str) -> dict:
    cfg, seconds = ctx.cfg, {}
    layer = map_layer(ctx)
    t0 = time.time()
    feats = features(ctx, layer)
    np.save(out / "features.npy", feats)
    seconds["features"] = time.time() - t0
    n = len(feats)
    nonfinite = int((~np.isfinite(feats)).any(axis=1).sum())
    clean = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)

    t0 = time.time()
    k_graph = max(cfg.neighbors, int(3 * tsne_perplexity(n, cfg.tsne_perplexity)), cfg.umap_neighbors)
    graph = nearest_neighbors(clean, k_graph, exact_max=cfg.exact_neighbors_max)
    k = min(cfg.neighbors, graph.ids.shape[1])
    np.save(out / "neighbors.npy", np.ascontiguousarray(graph.ids[:, :k]))
    np.save(out / "distances.npy", np.ascontiguousarray(graph.distances[:, :k]))
    seconds["neighbors"] = time.time() - t0
    knn = (graph.ids, graph.distances)

    # t-SNE (compiled code) in a worker thread while UMAP runs here: UMAP's first call in a
    # process is mostly numba compiling, which leaves the other core free. Both are seeded
    # and single-threaded, so the maps are the same as run one after the other.
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=1) as pool:
        tsne_job = pool.submit(_timed, tsne_2d, clean, cfg.tsne_perplexity, cfg.seed, knn)
        umap_map, seconds["umap"] = _timed(umap_2d, clean, cfg.umap_neighbors, cfg.seed, knn)
        tsne_map, seconds["tsne"] = tsne_job.result()
    seconds["tsne_and_umap_wall"] = time.time() - t0
    np.save(out / "tsne.npy", tsne_map)
    np.save(out / "umap.npy", umap_map)

    t0 = time.time()
    units = {}
    for info in read_json(ctx.store.stage_dir("topk") / "layers.json"):
        top_ids = np.load(ctx.store.stage_dir("topk") / info["name"] / "ids.npy")
        codes = unit_codes(clean, top_ids)
        fname = f"units_{info['name']}.npy"
        np.save(out / fname, small_map(codes, cfg.seed, cfg.tsne_perplexity))
        units[info["name"]] = {"file": fname, "units": int(len(codes)),
                               "method": "pca" if len(codes) < PCA_BELOW else "tsne"}
    seconds["units"] = time.time() - t0
    small = n < PCA_BELOW
    write_json(out / "meta.json", {
        "layer": layer, "count": n, "dim": int(feats.shape[1]), "nonfinite_rows": nonfinite,
        "neighbors": {"k": int(k), "index": graph.index, "metric": "euclidean", "self_excluded": True},
        "tsne": {"method": "pca" if small else "openTSNE", "perplexity": tsne_perplexity(n, cfg.tsne_perplexity),
                 "seed": cfg.seed, "affinities": "FAISS neighbours"},
        "umap": {"method": "pca" if small else "umap-learn", "n_neighbors": min(cfg.umap_neighbors, max(n - 1, 2)),
                 "n_epochs": 200, "seed": cfg.seed, "knn": "FAISS neighbours"},
        "units": units, "unit_code": "mean map-layer code of the unit's top-k images"})  # timings go to summary.json: artifacts stay deterministic
    return {"images": n, "dim": int(feats.shape[1]), "index": graph.index,
            **{f"{key_}_s": round(v, 1) for key_, v in seconds.items()}}
