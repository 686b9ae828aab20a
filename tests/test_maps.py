"""FAISS neighbours against NumPy brute force, seeded maps, and the maps stage."""
from __future__ import annotations

import numpy as np
import pytest

from atlas.config import Config
from atlas.context import Context
from atlas.maps.embed import pca_2d, small_map, tsne_2d, umap_2d
from atlas.maps.neighbors import brute_force, drop_self, nearest_neighbors
from atlas.stages import dataset, maps, topk
from atlas.pipeline import run_stages
from atlas.artifacts.store import RunStore, read_json


def _data(n=400, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(4, d))
    return (centers[rng.integers(4, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_faiss_equals_numpy_brute_force():
    x = _data()
    got = nearest_neighbors(x, 10)
    ids, dist = brute_force(x, 10)
    assert got.index == "IndexFlatL2"
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_allclose(got.distances, dist, rtol=1e-4, atol=1e-4)
    assert not (got.ids == np.arange(len(x))[:, None]).any()


def test_self_is_dropped_even_among_duplicates():
    x = _data(50)
    x[10] = x[11] = x[12]                    # three identical images
    got = nearest_neighbors(x, 3)
    for i in (10, 11, 12):
        assert i not in got.ids[i] and set(got.ids[i, :2]) == {10, 11, 12} - {i}
        assert got.distances[i, 0] == pytest.approx(0, abs=1e-3)
    ids, dist = drop_self(np.array([[5, 1, 2]]), np.array([[0., 1, 2]]), 2, start=0)  # self absent
    np.testing.assert_array_equal(ids, [[5, 1]])


def test_approximate_index_past_the_limit():
    x = _data(600)
    got = nearest_neighbors(x, 10, exact_max=100)
    ids, _ = brute_force(x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.ids, ids)])
    assert got.index.startswith("IndexHNSWFlat") and recall > 0.95


def test_maps_are_deterministic_for_a_seed():
    x = _data(150, 8)
    nb = nearest_neighbors(x, 45)
    knn = (nb.ids, nb.distances)
    a, b = tsne_2d(x, 15, seed=3, knn=knn), tsne_2d(x, 15, seed=3, knn=knn)
    np.testing.assert_array_equal(a, b)   # (t-SNE starts from PCA, so its seed barely matters)
    u, v = umap_2d(x, 10, seed=3, knn=knn), umap_2d(x, 10, seed=3, knn=knn)
    np.testing.assert_array_equal(u, v)
    assert u.shape == (150, 2) and np.isfinite(u).all()
    assert not np.array_equal(u, umap_2d(x, 10, seed=4, knn=knn))
    np.testing.assert_array_equal(small_map(x[:40], 1), small_map(x[:40], 1))


def test_small_map_is_openTSNE_exact_without_loading_pynndescent():
    """The unit maps build openTSNE's exact index themselves: the same map as openTSNE's own
    `method="exact"`, and pynndescent (numba), which openTSNE's method lookup imports only
    to see that it is installed, stays unloaded (about 1 s on a rank that runs no UMAP)."""
    import subprocess
    import sys
    code = ("import sys, numpy as np; from atlas.maps.embed import small_map; "
            "small_map(np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32), 0); "
            "print('pynndescent' in sys.modules, 'numba' in sys.modules)")
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    from openTSNE import TSNE, affinity
    from atlas.maps.embed import SMALL_SCHEDULE, _pca_init
    x = np.random.default_rng(1).standard_normal((60, 16)).astype(np.float32)
    aff = affinity.PerplexityBasedNN(x, perplexity=19.0, method="exact", random_state=3, n_jobs=1)
    ref = TSNE(n_jobs=1, random_state=3, negative_gradient_method="bh", **SMALL_SCHEDULE).fit(
        affinities=aff, initialization=_pca_init(x))
    np.testing.assert_array_equal(small_map(x, 3, perplexity=19.0), np.asarray(ref, dtype=np.float32))


def test_pca_map_of_few_points():
    """Points on a plane keep all their distances in the PCA map."""
    x = np.array([[0, 0, 1], [2, 0, 1], [4, 3, 1], [0, 1, 1], [1, 5, 1]], np.float32)
    p = pca_2d(x)
    pair = lambda a: np.linalg.norm(a[:, None] - a[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(pair(p), pair(x), atol=1e-4)
    np.testing.assert_array_equal(small_map(x, 0), p)


@pytest.mark.parametrize("shape", [(300, 40), (40, 300)])
def test_pca_by_lanczos_equals_the_svd(monkeypatch, shape):
    """Past DENSE_PCA_MAX the two axes come from ARPACK on the smaller Gram matrix (both sides
    tried): the same projection as the dense SVD, the same bits on a rerun."""
    from atlas.maps import embed
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(shape[0], 6)) * [9, 5, 3, 2, 1, 1]) @ rng.normal(size=(6, shape[1]))
    x = (x + 0.01 * rng.normal(size=shape)).astype(np.float32)
    dense = pca_2d(x)
    monkeypatch.setattr(embed, "DENSE_PCA_MAX", 8)
    lanczos = pca_2d(x)
    np.testing.assert_allclose(lanczos, dense, rtol=1e-4, atol=1e-4 * np.abs(dense).max())
    np.testing.assert_array_equal(lanczos, pca_2d(x))


def test_maps_stage(tmp_path):
    cfg = Config(world_count=60, topk=3, layers=["conv5", "fc8"], out=str(tmp_path), workers=0,
                 batch_size=32, neighbors=5, tsne_perplexity=10.0)
    ctx = Context(cfg, RunStore(tmp_path))
    run_stages(ctx, (dataset.make, topk.make, maps.make))
    d = ctx.store.stage_dir("maps")
    feats = np.load(d / "features.npy")
    assert feats.shape == (60, 128) and feats.dtype == np.float32   # fc7 of the world network
    ids, dist = brute_force(feats, 5)
    np.testing.assert_array_equal(np.load(d / "neighbors.npy"), ids)
    np.testing.assert_allclose(np.load(d / "distances.npy"), dist, rtol=1e-3, atol=1e-3)
    for name in ("tsne.npy", "umap.npy"):
        assert np.load(d / name).shape == (60, 2) and np.isfinite(np.load(d / name)).all()
    assert np.load(d / "units_features.conv5.npy").shape == (32, 2)
    assert np.load(d / "units_classifier.fc8.npy").shape == (10, 2)
    meta = read_json(d / "meta.json")
    assert meta["layer"] == "classifier.fc7" and meta["neighbors"]["index"] == "IndexFlatL2"
    with pytest.raises(ValueError, match="map_layer"):
        maps.map_layer(Context(Config(map_layer="nope", out=str(tmp_path / "x")), RunStore(tmp_path / "x")))


def test_map_sample_is_seeded_class_balanced_and_bounded():
    labels = np.array([0] * 500 + [1] * 60 + [2] * 5 + [-1] * 35)
    s = maps.map_sample(labels, 100, seed=0)
    assert len(s) == 100 and (np.diff(s) > 0).all()
    counts = {c: int((labels[s] == c).sum()) for c in (0, 1, 2, -1)}
    assert counts[2] == 5                                  # a small class gives all it has
    assert {counts[0], counts[1], counts[-1]} <= {31, 32}  # the rest share the remaining turns
    np.testing.assert_array_equal(s, maps.map_sample(labels, 100, seed=0))
    assert not np.array_equal(s, maps.map_sample(labels, 100, seed=1))
    np.testing.assert_array_equal(maps.map_sample(labels, 1000, seed=0), np.arange(600))


def test_maps_stage_on_a_sample(tmp_path):
    """With map_images below the data set: the sample's codes only, neighbours within it."""
    cfg = Config(world_count=60, topk=3, layers=["fc8"], out=str(tmp_path), workers=0,
                 batch_size=32, neighbors=4, tsne_perplexity=5.0, map_images=25)
    ctx = Context(cfg, RunStore(tmp_path))
    run_stages(ctx, (dataset.make, topk.make, maps.make))
    d = ctx.store.stage_dir("maps")
    sample = np.load(d / "sample.npy")
    np.testing.assert_array_equal(sample, maps.map_sample(np.asarray(ctx.source.labels), 25, 0))
    feats = np.load(d / "features.npy")
    assert feats.shape == (25, 128)
    ids, dist = brute_force(feats, 4)
    np.testing.assert_array_equal(np.load(d / "neighbors.npy"), sample[ids])  # image ids, within the sample
    assert np.load(d / "tsne.npy").shape == (25, 2)
    # unit codes from every top image, sampled or not: the mean code of the unit's top 3
    top = np.load(ctx.store.stage_dir("topk") / "classifier.fc8" / "ids.npy")
    every = maps.features(ctx, "classifier.fc7", np.arange(60))
    np.testing.assert_allclose(maps.unit_codes(ctx, "classifier.fc7", {"x": top})["x"],
                               every[top].mean(axis=1), rtol=1e-5, atol=1e-6)
    # a top image in the sample takes the sample's code (rows of `known`), the others the model's
    known = maps.unit_codes(ctx, "classifier.fc7", {"x": top}, known=(sample, feats))["x"]
    np.testing.assert_allclose(known, every[top].mean(axis=1), rtol=1e-5, atol=1e-6)
    shifted = maps.unit_codes(ctx, "classifier.fc7", {"x": top}, known=(sample, feats + 1.0))["x"]
    in_sample = np.isin(top, sample)
    assert 0 < in_sample.sum() < top.size  # both kinds of top image occur
    np.testing.assert_allclose(shifted - known, np.repeat(in_sample.mean(axis=1)[:, None], feats.shape[1], axis=1),
                               rtol=1e-5, atol=1e-5)


def test_map_jobs_dealt_by_cost():
    from atlas.artifacts.chunks import deal_by_cost
    from atlas.stages.maps import JOB_SETUP, job_costs, map_jobs
    units = [16, 32, 48, 48, 32, 128, 128, 10]  # the quick demo's layers
    jobs = map_jobs({f"layer{i}": np.zeros((u, 6), np.int64) for i, u in enumerate(units)})
    costs, needs = job_costs(jobs, 400, units)
    assert needs[jobs.index("umap")] == ("sklearn", "umap") and needs[jobs.index("units_7")] == ()
    assert costs[jobs.index("tsne")] > costs[jobs.index("umap")] > costs[jobs.index("units_5")] > costs[jobs.index("units_7")]
    owner = dict(zip(jobs, deal_by_cost(costs, needs, JOB_SETUP, 2)))
    # UMAP alone on rank 0 (which merges), t-SNE and every unit map on rank 1: each library loaded once
    assert owner["umap"] == 0 and {o for j, o in owner.items() if j != "umap"} == {1}
    assert set(deal_by_cost(costs, needs, JOB_SETUP, 1)) == {0}
