"""2-D maps of feature vectors: t-SNE (openTSNE), UMAP (umap-learn), PCA for small sets.

All are seeded and single-threaded, so a seed gives the same map on every run. Both
t-SNE and UMAP take their neighbour graph from the FAISS neighbours the maps stage has
already computed (exact up to a million images), which also spares UMAP most of its
numba compilation.
"""
from __future__ import annotations

import warnings

import numpy as np

PCA_BELOW = 24  # fewer points than this get a PCA map (t-SNE needs a neighbourhood)
SMALL_SCHEDULE = {"early_exaggeration_iter": 125, "n_iter": 375}  # enough for a few thousand points


def enable_umap_cache() -> int:
    """Let numba keep umap-learn's compiled functions on disk.

    umap-learn compiles its fuzzy-graph and layout functions on every new process (about
    10-20 s on two cores, longer than the embedding of a few thousand points itself) because
    most of them are not declared `cache=True`. Turning numba's cache on for them makes that
    a one-time cost per installation. Returns how many functions were switched.
    """
    import umap.layouts
    import umap.umap_
    from numba.core.registry import CPUDispatcher
    switched = 0
    for module in (umap.umap_, umap.layouts):
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and type(getattr(obj, "_cache", None)).__name__ == "NullCache":
                try:
                    obj.enable_caching()
                    switched += 1
                except Exception:  # noqa: BLE001 - no writable cache location: compile as usual
                    pass
    return switched


# Up to this many rows or columns the PCA takes a dense SVD (cheap there); past it, the two leading
# axes come from Lanczos iterations (ARPACK) on the smaller Gram matrix, never formed: a dense SVD
# of the 2,560 x 2,560 unit codes of a wide layer took ~490 MB of workspace and 30 s, this takes a
# few MB and well under a second.
DENSE_PCA_MAX = 256


def principal_axes(c: np.ndarray, count: int = 2) -> np.ndarray:
    """(D, count) leading principal axes of centred rows `c` (n, D), float64, columns by
    decreasing variance. Exact to float64 rounding either way; the Lanczos start vector is
    fixed, so the same input gives the same bits."""
    n, d = c.shape
    if min(n, d) <= max(DENSE_PCA_MAX, count + 1):
        return np.linalg.svd(c, full_matrices=False)[2][:count].T
    from scipy.sparse.linalg import LinearOperator, eigsh
    m = min(n, d)
    # eigenvectors of c^T c (d <= n) or of c c^T (n < d), applied as two products
    matvec = (lambda v: c.T @ (c @ v)) if d <= n else (lambda v: c @ (c.T @ v))
    op = LinearOperator((m, m), matvec=matvec, matmat=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(m)
    values, vectors = eigsh(op, k=count, which="LA", v0=v0, tol=0.0)
    vectors = vectors[:, np.argsort(values)[::-1]]
    if d > n:  # axes in the code space: c^T u / |c^T u|
        vectors = c.T @ vectors
        vectors /= np.maximum(np.linalg.norm(vectors, axis=0), 1e-300)
    return vectors


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the first two principal axes, each axis' sign fixed (largest |value| > 0)."""
    out = np.zeros((len(x), 2), np.float32)
    if len(x) < 2:
        return out
    c = np.array(x, dtype=np.float64)
    c -= c.mean(axis=0)
    proj = c @ principal_axes(c, min(2, *c.shape))
    for j in range(proj.shape[1]):
        if proj[np.argmax(np.abs(proj[:, j])), j] < 0:
            proj[:, j] = -proj[:, j]
    out[:, :proj.shape[1]] = proj
    return out


def tsne_perplexity(n: int, wanted: float) -> float:
    """openTSNE needs about 3 * perplexity neighbours."""
    return float(max(1.0, min(wanted, (n - 1) / 3)))


def tsne_2d(x: np.ndarray, perplexity: float, seed: int, knn: tuple[np.ndarray, np.ndarray] | None = None,
            schedule: dict | None = None) -> np.ndarray:
    """openTSNE map. `knn`: (ids, distances) of at least 3*perplexity neighbours, self excluded.
    `schedule`: iteration counts (default openTSNE's 250 exaggerated + 500)."""
    from openTSNE import TSNE, affinity
    from openTSNE.nearest_neighbors import PrecomputedNeighbors
    n = len(x)
    if n < PCA_BELOW:
        return pca_2d(x)
    p = tsne_perplexity(n, perplexity)
    k = min(n - 1, int(3 * p))
    x = np.ascontiguousarray(x, dtype=np.float32)
    if knn is not None and knn[0].shape[1] >= k:
        aff = affinity.PerplexityBasedNN(perplexity=p, random_state=seed, n_jobs=1,
                                         knn_index=PrecomputedNeighbors(knn[0][:, :k], knn[1][:, :k].astype(np.float64)))
    else:  # the index openTSNE's method "exact" / "annoy" would build, built here (see _knn_index)
        aff = affinity.PerplexityBasedNN(perplexity=p, random_state=seed, n_jobs=1, knn_index=_knn_index(x, k, seed))
    method = "bh" if n < 10_000 else "fft"
    emb = TSNE(n_jobs=1, random_state=seed, negative_gradient_method=method, **(schedule or {})).fit(
        affinities=aff, initialization=_pca_init(x))
    return np.asarray(emb, dtype=np.float32)


def _knn_index(x: np.ndarray, k: int, seed: int):
    """openTSNE's exact (scikit-learn, below 2,000 points) or Annoy index of `k` euclidean
    neighbours, with the arguments its `PerplexityBasedNN(x, method=...)` passes, so the map is
    the same bits. Given ready, the index spares openTSNE's method lookup, which imports
    pynndescent (and numba) only to test that it is installed: about 1 s on a process that
    runs no UMAP, such as the second rank of a torchrun job."""
    from openTSNE import nearest_neighbors
    kind = nearest_neighbors.Sklearn if len(x) < 2000 else nearest_neighbors.Annoy
    return kind(x, k, metric="euclidean", metric_params=None, n_jobs=1, random_state=seed, verbose=False,
                knn_kwargs=None)


def _pca_init(x: np.ndarray) -> np.ndarray:
    """openTSNE's recommended initialization: PCA scaled to a standard deviation of 1e-4."""
    init = pca_2d(x).astype(np.float64)
    return init / max(float(np.std(init[:, 0])), 1e-12) * 1e-4


def umap_2d(x: np.ndarray, n_neighbors: int, seed: int, knn: tuple[np.ndarray, np.ndarray] | None = None,
            n_epochs: int = 200) -> np.ndarray:
    """UMAP map. `knn`: (ids, distances) of at least n_neighbors - 1 neighbours, self excluded."""
    n = len(x)
    if n < PCA_BELOW:
        return pca_2d(x)
    nn_ = max(2, min(n_neighbors, n - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and numba notices
        import umap
        enable_umap_cache()
        kwargs = {}
        if knn is not None and knn[0].shape[1] >= nn_ - 1:
            ids = np.concatenate([np.arange(n)[:, None], knn[0][:, :nn_ - 1]], axis=1)
            dist = np.concatenate([np.zeros((n, 1), np.float32), knn[1][:, :nn_ - 1]], axis=1)
            kwargs["precomputed_knn"] = (ids, dist)
        model = umap.UMAP(n_components=2, n_neighbors=nn_, random_state=seed, n_epochs=n_epochs,
                          init="spectral" if n > nn_ + 2 else "random", **kwargs)
        return np.asarray(model.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)


def small_map(x: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """A map of a few hundred points (e.g. the units of a layer): PCA below 24, else t-SNE
    with a shorter schedule."""
    return pca_2d(x) if len(x) < PCA_BELOW else tsne_2d(x, perplexity, seed, schedule=SMALL_SCHEDULE)
