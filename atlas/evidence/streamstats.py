"""Unit statistics accumulated during the top-k pass, in memory that grows with units only.

Per unit, over the per-image values the top-k ranks by (a conv unit's spatial maximum, an
fc unit's activation), finite values only:
- count, mean and the sum of squared deviations (`m2`): exact streaming form (Welford's
  update per batch, Chan et al.'s merge across chunks and ranks), in float64;
- min, max, the number of values above zero: exact;
- class sums of ReLU(value) and class counts (for the Morcos class selectivity): exact sums
  in float64;
- a fine histogram on a dyadic grid: bins `[j * 2^e, (j + 1) * 2^e)` for `FINE` consecutive
  integers j starting at `floor(min / 2^e)`. When a value falls outside, `e` grows until the
  unit's [min, max] fits again and the old counts are added into the coarser bins they
  fall in (a dyadic bin lies inside exactly one coarser bin), so every count stays exact.
  Two accumulators merge the same way, whatever the order.

`histogram(bins)` groups the fine bins into `bins` equal-width bins. Its counts are exact
for the edges it returns; the edges are not `linspace(min, max)` as an exact two-pass
histogram would use: the first edge is at most one fine bin below the minimum and the last
lies above the maximum by less than one output bin. The grid is as fine as a `FINE`-bin
window allows, so the unit's range covers at least `FINE / 2` fine bins (unless the values
are within 2^-50 of their magnitude of each other) and the overshoot is below
`bins / (FINE / 2)` of the range: under 6% at the default 30 bins.
"""
from __future__ import annotations


import numpy as np

FINE = 1024       # fine histogram bins per unit (int32 counts: 4 KiB a unit)
MANT_BITS = 50    # 2^e stays above 2^-50 of the largest |value|, so j fits an int64
MIN_EXP = -1074   # 2^e of a unit whose values are all zero


def _scaled_floor(v: np.ndarray, e: np.ndarray) -> np.ndarray:
    """floor(v / 2^e) as int64 (exact: scaling by a power of two loses nothing)."""
    return np.floor(np.ldexp(v, -e)).astype(np.int64)


def _fit_exponent(lo: np.ndarray, hi: np.ndarray, floor_e: np.ndarray) -> np.ndarray:
    """Smallest e >= floor_e (and >= the magnitude floor) with [lo, hi] in FINE bins of 2^e."""
    mag = np.maximum(np.abs(lo), np.abs(hi))
    e = np.full(lo.shape, MIN_EXP, np.int64)
    pos = mag > 0
    e[pos] = np.frexp(mag[pos])[1].astype(np.int64) - MANT_BITS
    span = hi - lo
    wide = span > 0
    e[wide] = np.maximum(e[wide], np.frexp(span[wide] / (FINE - 2))[1].astype(np.int64) - 1)
    e = np.maximum(e, floor_e)
    while True:
        bad = _scaled_floor(hi, e) - _scaled_floor(lo, e) >= FINE
        if not bad.any():
            return e
        e[bad] += 1


def _rebin(counts: np.ndarray, start: int, e: int, new_start: int, new_e: int) -> np.ndarray:
    """Fine counts on grid (start, e) moved onto the coarser grid (new_start, new_e >= e)."""
    occupied = np.flatnonzero(counts)
    idx = np.right_shift(start + occupied, min(int(new_e - e), 63)) - new_start
    moved = np.zeros(FINE, np.int64)
    np.add.at(moved, idx, counts[occupied])
    return moved.astype(np.int32)


class UnitStats:
    """Streaming statistics of `units` units over labelled images (labels in 0..classes-1,
    -1 for unlabelled). Feed (B, C) float32 batches with `update`, combine with `merge`."""

    KEYS = ("count", "mean", "m2", "min", "max", "positive", "exp", "start", "fine",
            "class_sum", "class_count", "class_bad", "images", "classes")

    def __init__(self, units: int, classes: int):
        self.units, self.classes = units, int(classes)
        self.images = np.zeros(1, np.int64)              # every image seen (finite or not)
        self.count = np.zeros(units, np.int64)           # finite values
        self.mean = np.zeros(units, np.float64)
        self.m2 = np.zeros(units, np.float64)
        self.min = np.full(units, np.inf)
        self.max = np.full(units, -np.inf)
        self.positive = np.zeros(units, np.int64)
        self.exp = np.full(units, MIN_EXP, np.int64)
        self.start = np.zeros(units, np.int64)           # j of fine bin 0
        self.fine = np.zeros((units, FINE), np.int32)
        self.class_sum = np.zeros((units, max(classes, 1)), np.float64)
        self.class_count = np.zeros(max(classes, 1), np.int64)      # labelled images per class
        self.class_bad = np.zeros((units, max(classes, 1)), np.int32)  # ... with a non-finite value

    # -- accumulation -------------------------------------------------------------------
    def update(self, values: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch: values (B, C) per-image unit values, labels (B,) int (-1: none)."""
        v = np.asarray(values, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        finite = np.isfinite(v)
        all_finite = bool(finite.all())
        v0 = v if all_finite else np.where(finite, v, 0.0)
        n_b = finite.sum(axis=0) if not all_finite else np.full(v.shape[1], v.shape[0], np.int64)
        safe = np.maximum(n_b, 1)
        mean_b = v0.sum(axis=0) / safe
        dev = v0 - mean_b
        if not all_finite:
            dev = np.where(finite, dev, 0.0)
        m2_b = (dev * dev).sum(axis=0)
        lo_b = np.where(finite, v, np.inf).min(axis=0)
        hi_b = np.where(finite, v, -np.inf).max(axis=0)
        self._combine(n_b, mean_b, m2_b, lo_b, hi_b)
        self.positive += (v0 > 0).sum(axis=0)
        self.images[0] += v.shape[0]
        # class sums of ReLU(value) over labelled images
        known = (labels >= 0) & (labels < self.classes)
        if known.any():
            lab = labels[known]
            onehot = np.zeros((len(lab), self.class_sum.shape[1]))
            onehot[np.arange(len(lab)), lab] = 1.0
            self.class_sum += np.maximum(v0[known], 0).T @ onehot
            self.class_count += np.bincount(lab, minlength=self.class_count.shape[0])
            if not all_finite:
                self.class_bad += ((~finite[known]).T.astype(np.float64) @ onehot).astype(np.int32)
        # fine histogram: the grid was widened for the new min/max in _combine
        j = _scaled_floor(v0, self.exp[None, :]) - self.start[None, :]
        flat = (j + np.arange(self.units)[None, :] * FINE)[finite]
        self.fine += np.bincount(flat, minlength=self.units * FINE).reshape(self.units, FINE).astype(np.int32)

    def _combine(self, n_b, mean_b, m2_b, lo_b, hi_b, other: "UnitStats | None" = None) -> None:
        """Chan's merge of (count, mean, m2) and min/max; then the histogram grid is widened
        where the new [min, max] (or `other`'s coarser grid) no longer fits it."""
        n_a = self.count
        n = n_a + n_b
        safe = np.maximum(n, 1)
        delta = mean_b - self.mean
        self.mean = np.where(n > 0, self.mean + delta * (n_b / safe), 0.0)
        self.m2 = self.m2 + m2_b + delta * delta * (n_a * n_b / safe)
        self.count = n
        lo, hi = np.minimum(self.min, lo_b), np.maximum(self.max, hi_b)
        grow = (n_b > 0) & ((lo < self.min) | (hi > self.max))
        floor_e = np.where(n_a > 0, self.exp, MIN_EXP)
        if other is not None:
            grow |= (other.count > 0) & (self.count > 0)
            floor_e = np.maximum(floor_e, np.where(other.count > 0, other.exp, MIN_EXP))
        self.min, self.max = lo, hi
        units = np.flatnonzero(grow)
        if not len(units):
            return
        e = _fit_exponent(lo[units], hi[units], floor_e[units])
        start = _scaled_floor(lo[units], e)
        for k in np.flatnonzero(n_a[units] > 0):
            u = units[k]
            self.fine[u] = _rebin(self.fine[u], self.start[u], self.exp[u], start[k], e[k])
        self.exp[units], self.start[units] = e, start

    def merge(self, other: "UnitStats") -> None:
        """Add another accumulator's images (another chunk or rank): exact."""
        if (other.units, other.classes) != (self.units, self.classes):
            raise ValueError(f"cannot merge statistics of {other.units} units x {other.classes} classes "
                             f"into {self.units} x {self.classes}")
        self.images += other.images
        self.positive += other.positive
        self.class_sum += other.class_sum
        self.class_count += other.class_count
        self.class_bad += other.class_bad
        self._combine(other.count, other.mean, other.m2, other.min, other.max, other)
        for u in np.flatnonzero(other.count > 0):
            self.fine[u] += _rebin(other.fine[u], other.start[u], other.exp[u], self.start[u], self.exp[u])

    # -- results ---------------------------------------------------------------------------
    def std(self) -> np.ndarray:
        """Population standard deviation (NaN for a unit without finite values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, np.sqrt(np.maximum(self.m2, 0) / np.maximum(self.count, 1)), np.nan)

    def selectivity(self) -> list[float | None]:
        """Class selectivity index per unit (see evidence/stats.py), None without two classes."""
        counts = self.class_count[None, :] - self.class_bad       # finite labelled values per class
        out: list[float | None] = []
        for u in range(self.units):
            present = counts[u] > 0
            if present.sum() < 2 or self.classes < 2:
                out.append(None)
                continue
            means = self.class_sum[u, present] / counts[u, present]
            best = int(np.argmax(means))
            rest = float(np.delete(means, best).mean())
            total = means[best] + rest
            out.append(float((means[best] - rest) / total) if total > 0 else 0.0)
        return out

    def histogram(self, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """(C, bins) int64 counts and (C, bins + 1) float32 edges (see the module docstring)."""
        hist = np.zeros((self.units, bins), np.int64)
        edges = np.tile(np.arange(bins + 1, dtype=np.float32), (self.units, 1))
        for u in np.flatnonzero(self.count > 0):
            if self.max[u] <= self.min[u]:  # constant: one bin around the value, as before
                edges[u] = np.linspace(self.min[u] - 0.5, self.max[u] + 0.5, bins + 1).astype(np.float32)
                hist[u, bins // 2] = self.count[u]
                continue
            e = int(self.exp[u])
            a = int(self.start[u])
            n = int(_scaled_floor(np.array([self.max[u]]), np.array([e]))[0]) - a + 1
            g = -(-n // bins)
            padded = np.zeros(g * bins, np.int64)
            take = min(FINE, g * bins)
            padded[:take] = self.fine[u, :take]
            hist[u] = padded.reshape(bins, g).sum(axis=1)
            edges[u] = np.ldexp(np.float64(a) + g * np.arange(bins + 1, dtype=np.float64), e).astype(np.float32)
        return hist, edges

    # -- storage -----------------------------------------------------------------------
    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + k: np.asarray(getattr(self, k)) for k in self.KEYS}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> "UnitStats":
        count = np.asarray(arrays[prefix + "count"])
        out = cls(len(count), int(arrays[prefix + "classes"]))
        for k in cls.KEYS[:-1]:
            setattr(out, k, np.array(arrays[prefix + k]))
        return out

