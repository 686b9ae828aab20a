"""`stages/topk/`: the layers analysed (`layers.json`) and, per layer folder (named by the
dotted node name), each unit's top-k images: `values.npy` float32 (C, k), `ids.npy` int64
(C, k), `pos.npy` int32 (C, k, 2) (where in the layer's grid the maximum was: (y, x) of a
conv map or a token grid, (0, 0) for a vector), `nonfinite.npy` int64 (C,) and `stats/`,
the unit statistics streamed during the pass (one .npy per array of
evidence/streamstats.UnitStats), so nothing of size images x units is stored.
`unusable.json` `[{id, path, reason}]`: the listed images the pass could not decode, by id
(source order); they are in no top-k and no statistic.

A layer's `kind` is "conv", "fc" or any other name a model family brings (e.g. "tokens");
its `shape` is (C, *grid), so readers never assume a 2-D map.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, optional_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json

STAGE = "topk"
LAYERS = "layers.json"
UNUSABLE = "unusable.json"
VALUES, IDS, POS, NONFINITE, STATS = "values.npy", "ids.npy", "pos.npy", "nonfinite.npy", "stats"


@dataclass(frozen=True)
class LayerEntry:
    """One analysed layer as layers.json records it."""
    name: str
    alias: str | None
    kind: str
    shape: tuple[int, ...]
    units: int

    @property
    def grid(self) -> tuple[int, ...]:
        """Positions of a unit inside the layer: (H, W) of a map or token grid, () for a vector."""
        return tuple(self.shape[1:])

    def to_json(self) -> dict:
        return {"name": self.name, "alias": self.alias, "shape": list(self.shape), "units": self.units,
                "kind": self.kind}


@dataclass
class TopkLayer:
    entry: LayerEntry
    values: np.ndarray             # (C, k) float32
    ids: np.ndarray                # (C, k) int64
    pos: np.ndarray                # (C, k, 2) int32
    nonfinite: np.ndarray | None   # (C,) int64
    dir: Path

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def stats_arrays(self) -> dict[str, np.ndarray] | None:
        """The streamed statistics' arrays {name: array} (UnitStats.from_arrays takes them),
        None when the stage kept none."""
        d = self.dir / STATS
        if not d.is_dir():
            return None
        return {p.stem: np.load(p) for p in sorted(d.glob("*.npy"))}

    def data_max(self) -> np.ndarray | None:
        """(C,) finite maximum of each unit over the data set (NaN: none finite), from the
        streamed statistics; None without them."""
        d = self.dir / STATS
        if not d.is_dir():
            return None
        c = self.entry.units
        hi = load_array(d / "max.npy", 1, "float", (c,), mmap=False)
        count = load_array(d / "count.npy", 1, "int", (c,), mmap=False)
        return np.where(count > 0, hi.astype(np.float64), np.nan)


class Topk:
    """The finished top-k stage of a run; layers are read on first use and cached."""

    def __init__(self, store: RunStore, n_images: int | None = None):
        self.store, self.n_images = store, n_images
        self.dir = store.stage_dir(STAGE)
        rows = read_json(self.dir / LAYERS)
        try:
            self.layers = [LayerEntry(name=r["name"], alias=r.get("alias"), kind=r["kind"],
                                      shape=tuple(int(s) for s in r["shape"]), units=int(r["units"])) for r in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{self.dir / LAYERS}: bad layer record ({exc})") from exc
        self._cache: dict[str, TopkLayer] = {}

    @cached_property
    def unusable(self) -> list[dict]:
        """`[{id, path, reason}]`: images found unusable at first decode, by id."""
        path = self.dir / UNUSABLE
        rows = read_json(path) if path.is_file() else []
        if not isinstance(rows, list) or any(not isinstance(r, dict) or not isinstance(r.get("id"), int)
                                             for r in rows):
            raise ArtifactError(f"{path}: expected a list of {{id, path, reason}}")
        return rows

    @cached_property
    def params(self) -> dict:
        """The stage's parameters as its manifest records them (model, weights, layers, k)."""
        return (self.store.manifest(STAGE) or {}).get("params", {})

    @cached_property
    def sha(self) -> dict[str, str]:
        return file_sha(self.store.manifest(STAGE) or {})

    def entry(self, name: str) -> LayerEntry | None:
        """The layer named by node name or alias, None when the run has no such layer."""
        return next((e for e in self.layers if e.name == name), None) \
            or next((e for e in self.layers if e.alias and e.alias == name), None)

    def layer(self, name: str) -> TopkLayer:
        entry = self.entry(name)
        if entry is None:
            raise KeyError(name)
        if entry.name not in self._cache:
            self._cache[entry.name] = self._read(entry)
        return self._cache[entry.name]

    def _read(self, e: LayerEntry) -> TopkLayer:
        d, c, n = self.dir / e.name, e.units, self.n_images
        values = load_array(d / VALUES, 2, "float", (c,), mmap=False)
        ids = load_array(d / IDS, 2, "int", values.shape, mmap=False)
        if n is not None and ids.size and (ids.max() >= n or ids.min() < 0):
            raise ArtifactError(f"{d / IDS}: image ids beyond the data set's {n} images")
        return TopkLayer(entry=e, values=values, ids=ids, pos=load_array(d / POS, 3, "int", values.shape, mmap=False),
                         nonfinite=optional_array(d / NONFINITE, 1, "int", (c,), mmap=False), dir=d)


def read(store: RunStore, n_images: int | None = None) -> Topk:
    return Topk(store, n_images)


def write_layers(out: Path, entries: list[LayerEntry]) -> None:
    write_json(Path(out) / LAYERS, [e.to_json() for e in entries])


def write_unusable(out: Path, rows: list[dict]) -> None:
    """`unusable.json`: `[{id, path, reason}]` in id order (also when empty)."""
    write_json(Path(out) / UNUSABLE, sorted(rows, key=lambda r: r["id"]))


def write_layer(out: Path, name: str, values: np.ndarray, ids: np.ndarray, pos: np.ndarray,
                nonfinite: np.ndarray | None, stats: dict[str, np.ndarray] | None = None) -> None:
    """One layer's folder: values (C,k), ids (C,k), pos (C,k,2), nonfinite (C,) and the
    streamed statistics' arrays (`UnitStats.arrays()`) as stats/<name>.npy (one .npy per
    array: byte-reproducible, unlike an .npz whose entries carry their write time)."""
    d = Path(out) / name
    d.mkdir(parents=True, exist_ok=True)
    if ids.shape != values.shape or pos.shape != (*values.shape, 2):
        raise ValueError(f"top-k of {name}: values {values.shape}, ids {ids.shape}, pos {pos.shape} do not agree")
    save_array(d / VALUES, values, np.float32)
    save_array(d / IDS, ids, np.int64)
    save_array(d / POS, pos, np.int32)
    if nonfinite is not None:
        save_array(d / NONFINITE, nonfinite, np.int64)
    if stats is not None:
        (d / STATS).mkdir(exist_ok=True)
        for key, arr in stats.items():
            np.save(d / STATS / f"{key}.npy", np.asarray(arr))
