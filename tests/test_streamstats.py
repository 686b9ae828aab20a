"""Streamed unit statistics: exact where an exact streaming form exists, the histogram
exact for its own edges and within its stated bound of the two-pass edges."""
import numpy as np
import pytest

from atlas.evidence.stats import stream_statistics, unit_statistics
from atlas.evidence.streamstats import FINE, UnitStats


def values(seed=0, n=900, c=24):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, c)) * rng.uniform(0.01, 100, c) + rng.normal(size=c) * 10).astype(np.float32)
    x[:, 3] = 0.0                    # constant zero (dead)
    x[:, 4] = 2.5                    # constant
    x[600:, 7] *= 1000               # the range grows late in the stream
    x[5, 6], x[7, 6] = np.nan, np.inf
    x[:, 8] = np.nan                 # never finite
    return x, rng.integers(-1, 5, n)


def stream(x, labels, batches):
    st = UnitStats(x.shape[1], 5)
    for a, b in zip(batches[:-1], batches[1:]):
        st.update(x[a:b], labels[a:b])
    return st


def test_streamed_rows_equal_exact():
    x, labels = values()
    st = stream(x, labels, list(range(0, 900, 64)) + [900])
    names = [str(i) for i in range(5)]
    top = np.zeros((x.shape[1], 1), np.int64)
    want, want_hist, want_edges = unit_statistics(x, labels, names, top, 30)
    got, got_hist, got_edges = stream_statistics(st, labels, names, top, 30)
    for w, g in zip(want, got):
        for key in w:
            if isinstance(w[key], float):
                np.testing.assert_allclose(g[key], w[key], rtol=1e-9, atol=1e-6, err_msg=key)
            else:
                assert g[key] == w[key], (key, g, w)
    for u in range(x.shape[1]):
        v = x[:, u].astype(np.float64)
        v = v[np.isfinite(v)]
        assert got_hist[u].sum() == len(v)
        if len(v) and v.max() > v.min():
            e = got_edges[u].astype(np.float64)
            np.testing.assert_array_equal(np.histogram(v, e)[0], got_hist[u])  # exact for its edges
            lo, hi, span = v.min(), v.max(), v.max() - v.min()
            assert e[0] <= lo and e[-1] > hi
            assert lo - e[0] <= 2 * span / FINE + 1e-9          # first edge: under one fine bin low
            assert e[-1] - hi <= 30 / (FINE / 2) * span * 1.01   # last edge: the stated overshoot bound
    np.testing.assert_array_equal(got_hist[4], want_hist[4])  # constant unit: as the exact histogram


@pytest.mark.parametrize("split", [[0, 1, 900], [0, 450, 900], [0, 100, 601, 602, 900]])
def test_merge_of_parts_equals_one_stream(split):
    x, labels = values(1)
    whole = stream(x, labels, [0, 900])
    parts = [stream(x[a:b], labels[a:b], [0, b - a]) for a, b in zip(split[:-1], split[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    for key in ("count", "positive", "class_count", "class_bad", "images"):
        np.testing.assert_array_equal(getattr(merged, key), getattr(whole, key), err_msg=key)
    for key in ("mean", "m2", "min", "max", "class_sum"):
        np.testing.assert_allclose(getattr(merged, key), getattr(whole, key), rtol=1e-10, atol=1e-9, err_msg=key)
    h1, e1 = merged.histogram(30)
    for u in range(x.shape[1]):
        v = x[:, u].astype(np.float64)
        v = v[np.isfinite(v)]
        if len(v) and v.max() > v.min():
            np.testing.assert_array_equal(np.histogram(v, e1[u].astype(np.float64))[0], h1[u])


def test_round_trip_through_arrays(tmp_path):
    x, labels = values(2)
    st = stream(x, labels, [0, 300, 900])
    back = UnitStats.from_arrays(st.arrays())  # what the top-k stage stores (artifacts.topk)
    for key in UnitStats.KEYS:
        np.testing.assert_array_equal(np.asarray(getattr(back, key)), np.asarray(getattr(st, key)))
    with pytest.raises(ValueError, match="cannot merge"):
        back.merge(UnitStats(3, 5))
