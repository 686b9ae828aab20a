"""Unit statistics over the data set: `stream_statistics` from the top-k pass's streamed
accumulator (what the evidence stage uses), `unit_statistics` exactly from an in-memory
(N, C) array of per-image values (the reference the streamed figures are tested against,
and what synthetic runs use).

For a conv unit the per-image value is its spatial maximum (what the top-k ranks by), for
an fc unit its activation. Non-finite values are counted (`nonfinite`) and left out.

Selectivity is the class selectivity index of Morcos et al. (2018),
`(mu_max - mu_rest) / (mu_max + mu_rest)`, where `mu_max` is the largest class mean and
`mu_rest` the mean of the other class means, computed on the per-image values passed
through a ReLU (negative values never reach the next layer). 0: the unit responds to
every class alike; 1: only to one class. It is None without at least two labelled classes.

A unit is dead when its value is never above zero over the data set (the definition the
unit pages use) or never finite; `constant` marks a unit whose value never changes.
`nonfinite` counts the images with a non-finite value; when the top-k stage has counted
them per position (`nonfinite.npy`), its counts are used instead.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

CHUNK_VALUES = 1 << 25  # floats read from maxact at a time


def top_classes(ids: np.ndarray, labels: np.ndarray, class_names: list[str]) -> list[list]:
    """[[name, share], ...] of the classes among `ids` (labelled images only), by share."""
    known = [int(v) for v in labels[ids] if 0 <= v < len(class_names)]
    if not known:
        return []
    counts = Counter(known)
    return [[class_names[c], round(n / len(ids), 4)]
            for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def selectivity(values: np.ndarray, labels: np.ndarray, n_classes: int) -> float | None:
    """Class selectivity index of one unit (see the module docstring)."""
    ok = np.isfinite(values) & (labels >= 0) & (labels < n_classes)
    if not ok.any():
        return None
    v, lab = np.maximum(values[ok], 0).astype(np.float64), labels[ok]
    sums = np.bincount(lab, weights=v, minlength=n_classes)
    counts = np.bincount(lab, minlength=n_classes)
    present = counts > 0
    if present.sum() < 2:
        return None
    means = sums[present] / counts[present]
    best = int(np.argmax(means))
    rest = float(np.delete(means, best).mean())
    total = means[best] + rest
    return float((means[best] - rest) / total) if total > 0 else 0.0


def dead_units(values: np.ndarray | None, data_max: np.ndarray | None = None) -> np.ndarray:
    """(C,) bool: the unit is dead, its activation never above zero on a finite value over the
    data set. The one definition: stats.json (unit pages), the layer grid and the renderer
    all use it. From the finite per-unit maximum over the data set (`data_max`, NaN: no
    finite value) when known, else from the top-k values (C, k), sorted, so their finite
    maximum is the unit's unless all k are non-finite."""
    if data_max is not None:
        return ~(np.nan_to_num(np.asarray(data_max, dtype=np.float64), nan=-np.inf) > 0)
    c = values.shape[0]
    fin = np.isfinite(values)
    top = np.where(fin, values, -np.inf).max(axis=1) if values.size else np.full(c, -np.inf)
    return ~(top > 0)


def finite_max(st) -> np.ndarray:
    """(C,) the streamed statistics' finite maximum per unit, NaN where no value was finite."""
    return np.where(np.asarray(st.count) > 0, np.asarray(st.max, dtype=np.float64), np.nan)


def unit_statistics(maxact: np.ndarray, labels: np.ndarray, class_names: list[str], top_ids: np.ndarray,
                    bins: int, nonfinite: np.ndarray | None = None) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """stats rows, histogram counts (C, bins) int64 and edges (C, bins + 1) float32.
    `nonfinite`: per-unit counts from the top-k pass, if it kept them."""
    n, units = maxact.shape
    hist = np.zeros((units, bins), dtype=np.int64)
    edges = np.zeros((units, bins + 1), dtype=np.float32)
    rows: list[dict] = []
    step = max(1, CHUNK_VALUES // max(n, 1))
    for start in range(0, units, step):
        block = np.asarray(maxact[:, start:start + step], dtype=np.float32)
        for j in range(block.shape[1]):
            u = start + j
            col = block[:, j]
            finite = np.isfinite(col)
            v = col[finite].astype(np.float64)
            bad = int((~finite).sum()) if nonfinite is None else int(nonfinite[u])
            row = {"unit": u, "nonfinite": bad, "top_classes": top_classes(top_ids[u], labels, class_names),
                   "selectivity": selectivity(col, labels, len(class_names))}
            dead = bool(dead_units(None, np.array([v.max() if len(v) else np.nan]))[0])
            if len(v) == 0:
                row.update(mean=None, std=None, max=None, min=None, dead=dead, constant=True, positive_share=0.0)
                edges[u] = np.arange(bins + 1, dtype=np.float32)
            else:
                lo, hi = float(v.min()), float(v.max())
                row.update(mean=float(v.mean()), std=float(v.std()), max=hi, min=lo, dead=dead,
                           constant=bool(hi - lo <= 1e-6 * max(1.0, abs(hi))),
                           positive_share=float((v > 0).mean()))
                if hi <= lo:
                    lo, hi = lo - 0.5, hi + 0.5
                e = np.linspace(lo, hi, bins + 1)
                hist[u] = np.histogram(v, bins=e)[0]
                edges[u] = e.astype(np.float32)
            if row["selectivity"] is not None:
                row["selectivity"] = round(row["selectivity"], 6)
            rows.append(row)
    return rows, hist, edges


def stream_statistics(st, labels: np.ndarray, class_names: list[str], top_ids: np.ndarray, bins: int,
                      nonfinite: np.ndarray | None = None) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """What `unit_statistics` returns, from the top-k pass's streamed `UnitStats` instead of
    the (N, C) maxima: the same fields, exact except the histogram edges (see
    evidence/streamstats.py for its bound)."""
    hist, edges = st.histogram(bins)
    std = st.std()
    sel = st.selectivity()
    dead = dead_units(None, finite_max(st))
    rows: list[dict] = []
    for u in range(st.units):
        bad = int(st.images[0] - st.count[u]) if nonfinite is None else int(nonfinite[u])
        row = {"unit": u, "nonfinite": bad, "top_classes": top_classes(top_ids[u], labels, class_names),
               "selectivity": None if sel[u] is None else round(sel[u], 6)}
        if st.count[u] == 0:
            row.update(mean=None, std=None, max=None, min=None, dead=bool(dead[u]), constant=True, positive_share=0.0)
        else:
            lo, hi = float(st.min[u]), float(st.max[u])
            row.update(mean=float(st.mean[u]), std=float(std[u]), max=hi, min=lo, dead=bool(dead[u]),
                       constant=bool(hi - lo <= 1e-6 * max(1.0, abs(hi))),
                       positive_share=float(st.positive[u] / st.count[u]))
        rows.append(row)
    return rows, hist, edges
