"""k nearest neighbours of every image in feature space (L2), with FAISS.

Exact (`IndexFlatL2`) up to `exact_max` images, on the GPU when FAISS sees one; past that
an approximate index: HNSW on the CPU, IVF-Flat on a GPU. Each image's own entry is
removed from its list (by id, so duplicate images cannot push it out of place).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class Neighbors:
    ids: np.ndarray        # int64 (N, k), nearest first, self excluded
    distances: np.ndarray  # float32 (N, k), Euclidean
    index: str             # which FAISS index answered


def make_index(dim: int, count: int, exact_max: int, gpu: bool | None = None):
    """(index, name). `gpu=None`: use a GPU when FAISS has one."""
    use_gpu = faiss.get_num_gpus() > 0 if gpu is None else gpu
    if count <= exact_max:
        index, name = faiss.IndexFlatL2(dim), "IndexFlatL2"
    elif use_gpu:
        nlist = int(4 * math.sqrt(count))
        index, name = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist), f"IndexIVFFlat(nlist={nlist})"
        index.nprobe = 32
    else:
        index, name = faiss.IndexHNSWFlat(dim, 32), "IndexHNSWFlat(M=32)"
        index.hnsw.efConstruction, index.hnsw.efSearch = 80, 128
    if use_gpu:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, 0, index)
        index.referenced_resources = resources  # keep them alive with the index
        name = "Gpu" + name
    return index, name


def drop_self(ids: np.ndarray, dist: np.ndarray, k: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(B, k+1) results for queries start..start+B-1 -> (B, k) without each query's own id
    (or without the last entry when the query is not in its own list)."""
    n = ids.shape[0]
    keep = ids != (start + np.arange(n))[:, None]
    keep[keep.all(axis=1), -1] = False
    return ids[keep].reshape(n, k), dist[keep].reshape(n, k)


def nearest_neighbors(features: np.ndarray, k: int, exact_max: int = 1_000_000, gpu: bool | None = None,
                      batch: int = 16384) -> Neighbors:
    """The k nearest other images of every image."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    n, dim = x.shape
    k = min(k, n - 1)
    if k <= 0:
        return Neighbors(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), "none")
    index, name = make_index(dim, n, exact_max, gpu)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        index.train(x[rng.choice(n, size=min(n, 256 * int(4 * math.sqrt(n))), replace=False)])
    index.add(x)
    ids = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    for start in range(0, n, batch):
        d, i = index.search(x[start:start + batch], k + 1)
        ids[start:start + batch], dist[start:start + batch] = drop_self(i, d, k, start)
    return Neighbors(ids, np.sqrt(np.maximum(dist, 0)).astype(np.float32), name)


def brute_force(features: np.ndarray, k: int, batch: int = 2048,
                dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference: exact k nearest other images (ids, Euclidean distances), computed in
    `dtype` (float64: the ground truth; float32: the fair speed baseline)."""
    x = np.asarray(features, dtype=dtype)
    n = len(x)
    k = min(k, n - 1)
    sq = (x * x).sum(axis=1)
    ids = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float64)
    for start in range(0, n, batch):
        q = x[start:start + batch]
        d = sq[start:start + batch, None] + sq[None, :] - 2 * q @ x.T
        d[np.arange(len(q)), start + np.arange(len(q))] = np.inf
        part = np.argpartition(d, k, axis=1)[:, :k]
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1, kind="stable")
        ids[start:start + batch] = np.take_along_axis(part, order, axis=1)
        dist[start:start + batch] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0))
    return ids, dist
