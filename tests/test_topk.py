"""The top-k pass against a brute-force computation on a tiny network."""
import numpy as np
import pytest
import torch

from atlas.config import Config
from atlas.pipeline import run
from atlas.evidence.stats import stream_statistics, unit_statistics
from atlas.evidence.streamstats import UnitStats
from atlas.stages.topk import RunningTopK, locator, merge_topk, unit_max, unit_max_values


def brute_force(acts: np.ndarray, k: int):
    """acts: (N, C, H, W) or (N, C). Per unit: top-k images by spatial max, ties by lower id."""
    n, c = acts.shape[:2]
    flat = acts.reshape(n, c, -1)
    vmax = flat.max(axis=2)
    where = flat.argmax(axis=2)
    vals, ids, poss = [], [], []
    for u in range(c):
        order = sorted(range(n), key=lambda i: (-vmax[i, u], i))[:k]
        vals.append(vmax[order, u]); ids.append(order); poss.append(where[order, u])
    return np.array(vals), np.array(ids), np.array(poss)


@pytest.mark.parametrize("lazy", [False, True], ids=["positions", "located"])
@pytest.mark.parametrize("batch", [1, 7, 50])
def test_running_topk_equals_brute_force(batch, lazy):
    """Positions given up front (unit_max) or found only for entrants (the stage's way)."""
    gen = torch.Generator().manual_seed(0)
    acts = torch.randn(50, 6, 3, 4, generator=gen)
    acts[10, 2] = acts[3, 2]  # an exact tie between images 3 and 10 on unit 2
    acts[20, 4, 0, 1] = acts[20, 4, 2, 3] = 9.0  # a tie inside one map: the first position counts
    k = 5
    top = RunningTopK(6, k, torch.device("cpu"))
    for s in range(0, 50, batch):
        a = acts[s:s + batch]
        ids = torch.arange(s, min(s + batch, 50))
        if lazy:
            top.update(unit_max_values(a), ids, locator(a))
        else:
            v, w = unit_max(a)
            top.update(v, ids, w)
    values, ids, where = top.result()
    bv, bi, bw = brute_force(acts.numpy(), k)
    np.testing.assert_array_equal(ids, bi)
    np.testing.assert_allclose(values, bv)
    np.testing.assert_array_equal(where, bw)


def test_merge_of_shards_is_exact():
    gen = torch.Generator().manual_seed(1)
    acts = torch.randint(0, 4, (40, 5), generator=gen).float()  # many ties
    parts = []
    for lo, hi in ((0, 13), (13, 27), (27, 40)):
        top = RunningTopK(5, 6, torch.device("cpu"))
        v, w = unit_max(acts[lo:hi])
        top.update(v, torch.arange(lo, hi), w)
        parts.append(top.result())
    values, ids, _ = merge_topk(parts, 6)
    bv, bi, _ = brute_force(acts.numpy(), 6)
    np.testing.assert_array_equal(ids, bi)
    np.testing.assert_allclose(values, bv)


def test_topk_stage_on_world_network(tmp_path):
    """The stage's artifacts match brute force over the real extractor's activations."""
    from atlas.context import Context
    from atlas.data.loader import make_loader, model_transform
    from atlas.models.layers import extractor
    from atlas.artifacts import Run
    from atlas.artifacts.store import RunStore
    cfg = Config(world_count=60, topk=4, out=str(tmp_path / "run"), layers=["conv2", "fc7"], batch_size=16,
                 workers=0, priors=[], maps=False)
    run(cfg)
    ctx = Context(cfg, RunStore(cfg.out))
    net = extractor(ctx.model, ctx.layer_names())
    acts = {n: [] for n in ctx.layer_names()}
    with torch.no_grad():
        for x, _ in make_loader(ctx.source, model_transform(ctx.spec), 60, 0):
            for n, a in net(x).items():
                acts[n].append(a.numpy())
    for layer in ctx.layers:
        a = np.concatenate(acts[layer.name])
        d = ctx.store.stage_dir("topk") / layer.name
        bv, bi, bw = brute_force(a, 4)
        np.testing.assert_array_equal(np.load(d / "ids.npy"), bi)
        np.testing.assert_allclose(np.load(d / "values.npy"), bv, rtol=1e-5, atol=1e-5)
        assert not (d / "maxact.npy").exists()  # nothing of size images x units is kept
        # the streamed statistics equal the exact ones computed from every image's value
        maxact = a.reshape(60, layer.units, -1).max(axis=2)
        labels = np.asarray(ctx.source.labels)
        want, want_hist, _ = unit_statistics(maxact, labels, ctx.source.class_names, bi, 8)
        got, got_hist, got_edges = stream_statistics(UnitStats.from_arrays(Run(cfg.out).topk.layer(layer.name).stats_arrays()), labels,
                                                     ctx.source.class_names, bi, 8)
        for w, g in zip(want, got):
            assert g.keys() == w.keys()
            for key in ("unit", "nonfinite", "top_classes", "dead", "constant"):
                assert g[key] == w[key], (layer.name, key, g, w)
            for key in ("mean", "std", "max", "min", "positive_share", "selectivity"):
                np.testing.assert_allclose(g[key], w[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got_hist.sum(axis=1), want_hist.sum(axis=1))
        for u in range(layer.units):  # counts exact for the streamed edges
            np.testing.assert_array_equal(np.histogram(maxact[:, u].astype(np.float64), got_edges[u])[0], got_hist[u])
        if layer.kind == "conv":
            pos = np.load(d / "pos.npy")
            np.testing.assert_array_equal(pos[..., 0] * layer.shape[2] + pos[..., 1], bw)
