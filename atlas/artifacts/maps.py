"""`stages/maps/`: the data set in the map layer, on a sample of M images (all of them when
the data set is small enough). `sample.npy` int64 (M,) ascending image ids (row r is image
`sample[r]`; absent in older runs: row = id), `features.npy` float32 (M, D), `tsne.npy` /
`umap.npy` float32 (M, 2), `neighbors.npy` int64 (M, K) image ids (-1: none),
`distances.npy` float32 (M, K) (self excluded), `units_<layer>.npy` float32 (C, 2), `meta.json`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, load_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json

STAGE = "maps"
SAMPLE, FEATURES, NEIGHBORS, DISTANCES, META = "sample.npy", "features.npy", "neighbors.npy", "distances.npy", "meta.json"
KINDS = ("tsne", "umap")


def unit_map_file(layer: str) -> str:
    return f"units_{layer}.npy"


@dataclass
class Maps:
    coords: dict[str, np.ndarray]   # "tsne" / "umap" -> (M, 2)
    neighbors: np.ndarray | None    # (M, K) image ids
    distances: np.ndarray | None    # (M, K)
    meta: dict
    sample: np.ndarray | None = None  # (M,) ascending image ids; None: all images, row = id
    unit_maps: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (C, 2)

    @property
    def ids(self) -> np.ndarray:
        """(M,) the image id of every row."""
        m = len(next(iter(self.coords.values()))) if self.coords else \
            (len(self.neighbors) if self.neighbors is not None else 0)
        return np.arange(m) if self.sample is None else self.sample

    def row_of(self, image: int) -> int | None:
        """The row of `image` in the map arrays, or None when it is not in the sample."""
        if self.sample is None:
            return image if self.neighbors is not None and 0 <= image < len(self.neighbors) else None
        r = int(np.searchsorted(self.sample, image))
        return r if r < len(self.sample) and int(self.sample[r]) == image else None


def read(store: RunStore, n: int, layer_units: dict[str, int]) -> Maps | None:
    """The maps of a run with `n` images and of the units of `layer_units` ({layer: C}); None
    when the stage has not finished."""
    if store.manifest(STAGE) is None:
        return None
    d = store.stage_dir(STAGE)
    sample = None
    if (d / SAMPLE).is_file():
        sample = load_array(d / SAMPLE, 1, "int", mmap=False)
        if sample.size and (sample.min() < 0 or sample.max() >= n or (np.diff(sample) <= 0).any()):
            raise ArtifactError(f"{d / SAMPLE}: not ascending image ids in 0..{n - 1}")
    m = n if sample is None else len(sample)
    coords = {kind: load_array(d / f"{kind}.npy", 2, "float", (m, 2), mmap=False)
              for kind in KINDS if (d / f"{kind}.npy").is_file()}
    neighbors = distances = None
    if (d / NEIGHBORS).is_file():
        neighbors = load_array(d / NEIGHBORS, 2, "int", (m,), mmap=False)
        if (d / DISTANCES).is_file():
            distances = load_array(d / DISTANCES, 2, "float", neighbors.shape, mmap=False)
        if neighbors.size and (neighbors.max() >= n or neighbors.min() < -1):
            raise ArtifactError(f"{d / NEIGHBORS}: image ids outside 0..{n - 1}")
    unit_maps = {layer: load_array(d / unit_map_file(layer), 2, "float", (units, 2), mmap=False)
                 for layer, units in layer_units.items() if (d / unit_map_file(layer)).is_file()}
    meta = read_json(d / META) if (d / META).is_file() else {}
    return Maps(coords=coords, neighbors=neighbors, distances=distances, meta=meta, sample=sample,
                unit_maps=unit_maps)


def read_features(store: RunStore) -> np.ndarray:
    """(M, D) map-layer codes of the sample, memory-mapped."""
    return load_array(store.stage_dir(STAGE) / FEATURES, 2, "float")


class MapsWriter:
    def __init__(self, out: Path):
        self.out = Path(out)

    def sample(self, ids: np.ndarray) -> None:
        save_array(self.out / SAMPLE, ids)

    def features(self, feats: np.ndarray) -> None:
        save_array(self.out / FEATURES, feats)

    def neighbors(self, ids: np.ndarray, distances: np.ndarray) -> None:
        save_array(self.out / NEIGHBORS, ids)
        save_array(self.out / DISTANCES, distances)

    def coords(self, kind: str, xy: np.ndarray) -> None:
        save_array(self.out / f"{kind}.npy", xy)

    def unit_map(self, layer: str, xy: np.ndarray) -> str:
        save_array(self.out / unit_map_file(layer), xy)
        return unit_map_file(layer)

    def meta(self, meta: dict) -> None:
        write_json(self.out / META, meta)
