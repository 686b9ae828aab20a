"""Read a run's artifacts into plain objects for the renderer. Never imports torch.

Only `dataset` and `topk` are required. `featvis/<layer>`, `evidence/<layer>`, `maps`
and `figures/<layer>` are read when their stage finished (a valid manifest) and left out
otherwise, so a partial run still renders. An artifact that is present but breaks the
contract in ARCHITECTURE.md (wrong shape or dtype) is an error naming the file.
Large arrays are memory-mapped; nothing here decodes or encodes images.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.evidence.pictures import Pictures
from atlas.evidence.pictures import load as load_pictures
from atlas.render.names import safe_name
from atlas.stages.store import RunStore, read_json


class ArtifactError(ValueError):
    """An artifact breaks the contract; the message names the file."""


@dataclass
class Featvis:
    """`stages/featvis/<layer>`: U units x S seeds of synthesized images per prior."""
    priors: list[str]
    seeds: int
    units: int
    images: dict[str, np.ndarray]   # prior -> (U, S, H, W, 3) uint8, memory-mapped
    acts: dict[str, np.ndarray]     # prior -> (U, S) float32
    meta: dict
    sha: dict[str, str]             # file name -> sha256 from the manifest

    def title(self, prior: str) -> str:
        """The prior's long title, as the featvis stage recorded it (its id for older runs)."""
        return ((self.meta.get("labels") or {}).get(prior) or {}).get("title", prior)

    def short(self, prior: str) -> str:
        return ((self.meta.get("labels") or {}).get(prior) or {}).get("short", prior)


@dataclass
class Evidence:
    """`stages/evidence/<layer>`: stored pictures (views, heat grids, sheets), histograms,
    statistics, labels."""
    pictures: Pictures | None       # views/<id>, boxes, heat grids, grid sheets (evidence.pictures)
    hist: np.ndarray | None         # (C, B)
    hist_edges: np.ndarray | None   # (C, B+1)
    stats: list[dict | None]        # by unit
    labels: list[dict | None]       # by unit; None where the unit has no label
    sha: dict[str, str]

    @property
    def patches(self) -> bool:
        return self.pictures is not None

    @property
    def heatmaps(self) -> bool:
        return self.pictures is not None and self.pictures.heat is not None


@dataclass
class LayerData:
    name: str
    alias: str | None
    kind: str
    shape: list[int]
    units: int
    slug: str
    topk_values: np.ndarray   # (C, k)
    topk_ids: np.ndarray      # (C, k)
    topk_pos: np.ndarray      # (C, k, 2)
    data_max: np.ndarray | None = None           # (C,) finite maximum over the data set (stats/), NaN if none
    featvis: Featvis | None = None
    evidence: Evidence | None = None
    unit_map: np.ndarray | None = None           # (C, 2) from the maps stage
    figures: dict[int, dict[str, Path]] = field(default_factory=dict)  # unit -> {"pdf"|"png": path}
    figure_sha: dict[str, str] = field(default_factory=dict)
    nonfinite: np.ndarray | None = None          # (C,) images with a NaN/inf activation, from topk
    dead: np.ndarray | None = None               # (C,) bool: never above zero on the data set

    @property
    def title(self) -> str:
        return f"{self.alias} ({self.name})" if self.alias else self.name

    @property
    def short(self) -> str:
        return self.alias or self.name


@dataclass
class MapsData:
    """`stages/maps`: 2-D embeddings of the map sample (every image when the data set is
    small enough) and their FAISS neighbours within it. Row r is image `sample[r]`."""
    coords: dict[str, np.ndarray]   # "tsne" / "umap" -> (M, 2)
    neighbors: np.ndarray | None    # (M, K) image ids
    distances: np.ndarray | None    # (M, K)
    meta: dict
    sample: np.ndarray | None = None  # (M,) ascending image ids; None: all images, row = id

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


@dataclass
class StageInfo:
    name: str
    key: str
    finished: str
    seconds: float | None
    summary: dict
    params: dict
    files: int
    bytes: int
    identity: str   # changes exactly when any of the stage's files changes (from manifest checksums)


@dataclass
class SiteData:
    run_dir: Path
    config: dict
    dataset: dict             # images.json
    skipped: list
    layers: list[LayerData]
    stages: list[StageInfo]
    thumbs: np.ndarray        # (N, t, t, 3)
    thumbs_sha: str
    maps: MapsData | None = None
    weights: str | None = None

    @property
    def title(self) -> str:
        return self.config.get("title") or f"{self.config.get('model', 'model')} atlas"

    @cached_property
    def paged(self) -> np.ndarray:
        """Ascending ids of the images that get a page and a thumbnail: those in some unit's
        top-k, in the image map's sample, or a map neighbour of one. Every other image is
        counted, not paged, so the site grows with units, not with images."""
        parts = [np.asarray(layer.topk_ids).ravel() for layer in self.layers]
        if self.maps is not None:
            parts.append(np.asarray(self.maps.ids).ravel())
            if self.maps.neighbors is not None:
                parts.append(np.asarray(self.maps.neighbors).ravel())
        ids = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        return ids[ids >= 0].astype(np.int64)

    def slots(self, ids) -> np.ndarray:
        """Positions of paged image `ids` in `paged` (their sprite-sheet slots)."""
        return np.searchsorted(self.paged, np.asarray(ids, dtype=np.int64))

    @cached_property
    def class_names(self) -> list[str]:
        return [str(n) for n in self.dataset.get("class_names") or []]

    def inputs_key(self, layer: str | None = None) -> str:
        """Identity of what a page reads: every stage and the config (layer=None), or the
        stages one layer's pages read (dataset, topk, maps and that layer's own stages)."""
        parts = []
        for s in self.stages:
            top = s.name.split("/")[0]
            if layer is None or top in ("dataset", "topk", "maps") or s.name.split("/", 1)[-1] == layer \
                    or s.name == "figures":
                parts.append((s.name, s.identity))
        if layer is None:
            parts.append(("config", json.dumps(self.config, sort_keys=True, default=str)))
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=12).hexdigest()


def _array(path: Path, ndim: int, dtype: str | None = None, first: tuple = (), mmap: bool = True) -> np.ndarray:
    """Load a .npy and check its rank, dtype kind and leading dimensions."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read ({exc})") from exc
    if arr.ndim != ndim:
        raise ArtifactError(f"{path}: expected {ndim} dimensions, got shape {arr.shape}")
    if dtype == "uint8" and arr.dtype != np.uint8:
        raise ArtifactError(f"{path}: expected uint8 pixels, got {arr.dtype}")
    if dtype == "int" and arr.dtype.kind not in "iu":
        raise ArtifactError(f"{path}: expected integers, got {arr.dtype}")
    if dtype == "float" and arr.dtype.kind != "f":
        raise ArtifactError(f"{path}: expected floats, got {arr.dtype}")
    for i, want in enumerate(first):
        if want is not None and arr.shape[i] != want:
            raise ArtifactError(f"{path}: dimension {i} is {arr.shape[i]}, expected {want} (shape {arr.shape})")
    if dtype == "uint8" and arr.shape[-1] != 3:
        raise ArtifactError(f"{path}: expected RGB (last dimension 3), got shape {arr.shape}")
    return arr


def _sha(man: dict) -> dict[str, str]:
    return {rel: info.get("sha256", "") for rel, info in man.get("files", {}).items()}


def _by_unit(path: Path, rows: list, units: int) -> list[dict | None]:
    out: list[dict | None] = [None] * units
    if not isinstance(rows, list):
        raise ArtifactError(f"{path}: expected a list of per-unit records")
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("unit"), int) or not 0 <= row["unit"] < units:
            raise ArtifactError(f"{path}: bad record {row!r} (needs 'unit' in 0..{units - 1})")
        out[row["unit"]] = row
    return out


def _featvis(store: RunStore, layer: LayerData) -> Featvis | None:
    man = store.manifest(f"featvis/{layer.name}")
    if man is None:
        return None
    d = store.stage_dir(f"featvis/{layer.name}")
    meta = read_json(d / "meta.json")
    priors = [p for p in meta.get("priors", []) if (d / f"{p}.npy").is_file()]
    missing = [p for p in meta.get("priors", []) if p not in priors]
    if missing:
        raise ArtifactError(f"{d}/meta.json lists priors {missing} but their .npy files are missing")
    images, acts = {}, {}
    for p in priors:
        images[p] = _array(d / f"{p}.npy", 5, "uint8")
        if images[p].shape[0] > layer.units:
            raise ArtifactError(f"{d / (p + '.npy')}: {images[p].shape[0]} units, layer has {layer.units}")
        act_path = d / f"{p}_act.npy"
        acts[p] = (_array(act_path, 2, "float", images[p].shape[:2], mmap=False) if act_path.is_file()
                   else np.full(images[p].shape[:2], np.nan, np.float32))
    units = min((a.shape[0] for a in images.values()), default=0)
    seeds = min((a.shape[1] for a in images.values()), default=0)
    return Featvis(priors=priors, seeds=seeds, units=units, images=images, acts=acts, meta=meta, sha=_sha(man))


def _evidence(store: RunStore, layer: LayerData) -> Evidence | None:
    man = store.manifest(f"evidence/{layer.name}")
    if man is None:
        return None
    d = store.stage_dir(f"evidence/{layer.name}")
    c = layer.units

    def opt(name: str, ndim: int, dtype: str, mmap: bool = True):
        return _array(d / name, ndim, dtype, (c,), mmap=mmap) if (d / name).is_file() else None

    pictures = load_pictures(d)
    if pictures is not None:
        if pictures.boxes.shape[:2] != layer.topk_ids.shape:
            raise ArtifactError(f"{d / 'boxes.npy'}: shape {pictures.boxes.shape} does not fit the top-k lists "
                                f"{layer.topk_ids.shape}")
        if pictures.heat is not None and pictures.heat.shape[:2] != layer.topk_ids.shape:
            raise ArtifactError(f"{d / 'heat.npy'}: shape {pictures.heat.shape} does not fit the top-k lists "
                                f"{layer.topk_ids.shape}")
    hist, edges = opt("hist.npy", 2, "int", mmap=False), opt("hist_edges.npy", 2, "float", mmap=False)
    if hist is not None and edges is not None and edges.shape[1] != hist.shape[1] + 1:
        raise ArtifactError(f"{d / 'hist_edges.npy'}: shape {edges.shape} does not fit hist.npy {hist.shape}")
    stats = _by_unit(d / "stats.json", read_json(d / "stats.json"), c) if (d / "stats.json").is_file() else [None] * c
    labels = _by_unit(d / "labels.json", read_json(d / "labels.json"), c) if (d / "labels.json").is_file() \
        else [None] * c
    labels = [r if r and r.get("label") not in (None, "") else None for r in labels]
    return Evidence(pictures=pictures, hist=hist, hist_edges=edges if hist is not None else None,
                    stats=stats, labels=labels, sha=_sha(man))


def _figures(store: RunStore, layer: LayerData) -> None:
    for stage, folder in ((f"figures/{layer.name}", ""), ("figures", layer.name)):
        man = store.manifest(stage)
        if man is None:
            continue
        d = store.stage_dir(stage) / folder
        if not d.is_dir():
            continue
        sha = _sha(man)
        for f in sorted(d.iterdir()):
            if f.suffix in (".pdf", ".png") and f.stem.isdigit() and int(f.stem) < layer.units:
                layer.figures.setdefault(int(f.stem), {})[f.suffix[1:]] = f
                layer.figure_sha[f.name] = sha.get(f"{folder}/{f.name}" if folder else f.name, "")
        return


def _maps(store: RunStore, n: int, layers: list[LayerData]) -> MapsData | None:
    man = store.manifest("maps")
    if man is None:
        return None
    d = store.stage_dir("maps")
    sample = None
    if (d / "sample.npy").is_file():
        sample = _array(d / "sample.npy", 1, "int", mmap=False)
        if sample.size and (sample.min() < 0 or sample.max() >= n or (np.diff(sample) <= 0).any()):
            raise ArtifactError(f"{d / 'sample.npy'}: not ascending image ids in 0..{n - 1}")
    m = n if sample is None else len(sample)
    coords = {}
    for kind in ("tsne", "umap"):
        if (d / f"{kind}.npy").is_file():
            coords[kind] = _array(d / f"{kind}.npy", 2, "float", (m, 2), mmap=False)
    neighbors = distances = None
    if (d / "neighbors.npy").is_file():
        neighbors = _array(d / "neighbors.npy", 2, "int", (m,), mmap=False)
        if (d / "distances.npy").is_file():
            distances = _array(d / "distances.npy", 2, "float", neighbors.shape, mmap=False)
        if neighbors.size and (neighbors.max() >= n or neighbors.min() < -1):
            raise ArtifactError(f"{d / 'neighbors.npy'}: image ids outside 0..{n - 1}")
    for layer in layers:
        f = d / f"units_{layer.name}.npy"
        if f.is_file():
            layer.unit_map = _array(f, 2, "float", (layer.units, 2), mmap=False)
    meta = read_json(d / "meta.json") if (d / "meta.json").is_file() else {}
    return MapsData(coords=coords, neighbors=neighbors, distances=distances, meta=meta, sample=sample)


def _stage_info(store: RunStore, name: str) -> StageInfo:
    man = store.manifest(name) or {}
    summary_path = store.stage_dir(name) / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    files = man.get("files", {})
    identity = hashlib.blake2b(json.dumps(sorted((rel, f.get("sha256", "")) for rel, f in files.items()))
                               .encode(), digest_size=12).hexdigest()
    return StageInfo(name=name, key=man.get("key", ""), finished=man.get("finished", ""), identity=identity,
                     seconds=summary.get("seconds"), params=man.get("params", {}),
                     summary={k: v for k, v in summary.items() if k != "seconds"},
                     files=len(files), bytes=sum(int(f.get("bytes", 0)) for f in files.values()))


def dead_units(values: np.ndarray, data_max: np.ndarray | None) -> np.ndarray:
    """(C,) bool: the unit's activation is never above zero on a finite value. From the
    streamed finite maximum when the top-k stage kept it, else from the top-k values
    (sorted, so their finite maximum is the unit's unless all k are non-finite)."""
    c = values.shape[0]
    if data_max is not None:
        return ~(np.nan_to_num(data_max, nan=-np.inf) > 0)
    fin = np.isfinite(values)
    top = np.where(fin, values, -np.inf).max(axis=1) if values.size else np.full(c, -np.inf)
    return ~(top > 0)


def _data_max(folder: Path, units: int) -> np.ndarray | None:
    """The finite per-unit maximum over the data set from the streamed statistics
    (`stats/max.npy`, `stats/count.npy`; NaN: no finite value), None without them."""
    if not folder.is_dir():
        return None
    hi = _array(folder / "max.npy", 1, "float", (units,), mmap=False)
    count = _array(folder / "count.npy", 1, "int", (units,), mmap=False)
    return np.where(count > 0, hi.astype(np.float64), np.nan)


def gather(run_dir: Path) -> SiteData:
    """Everything the site shows, read from `run_dir/stages` (and its config.json)."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    missing = [s for s in ("dataset", "topk") if store.manifest(s) is None]
    if missing:
        raise FileNotFoundError(f"{run_dir} has no finished {' and '.join(missing)} stage; run `atlas run` first")
    ds_dir, top_dir = store.stage_dir("dataset"), store.stage_dir("topk")
    dataset = read_json(ds_dir / "images.json")
    n = int(dataset["count"])
    thumbs = _array(ds_dir / "thumbs.npy", 4, "uint8", (n,))
    layers = []
    for info in read_json(top_dir / "layers.json"):
        d = top_dir / info["name"]
        c = int(info["units"])
        values = _array(d / "values.npy", 2, "float", (c,), mmap=False)
        layer = LayerData(
            name=info["name"], alias=info.get("alias"), kind=info["kind"], shape=list(info["shape"]),
            units=c, slug=safe_name(info["name"]), topk_values=values,
            topk_ids=_array(d / "ids.npy", 2, "int", values.shape, mmap=False),
            topk_pos=_array(d / "pos.npy", 3, "int", values.shape, mmap=False),
            data_max=_data_max(d / "stats", c))
        if layer.topk_ids.size and layer.topk_ids.max() >= n:
            raise ArtifactError(f"{d / 'ids.npy'}: image ids beyond the data set's {n} images")
        if (d / "nonfinite.npy").is_file():
            layer.nonfinite = _array(d / "nonfinite.npy", 1, "int", (c,), mmap=False)
        layer.dead = dead_units(layer.topk_values, layer.data_max)
        layer.featvis = _featvis(store, layer)
        layer.evidence = _evidence(store, layer)
        _figures(store, layer)
        layers.append(layer)
    slugs = [layer.slug for layer in layers]
    if len(set(slugs)) != len(slugs):
        raise ArtifactError(f"{top_dir / 'layers.json'}: layer names repeat: {slugs}")
    config_path = run_dir / "config.json"
    top_params = (store.manifest("topk") or {}).get("params", {})
    return SiteData(
        run_dir=run_dir, config=read_json(config_path) if config_path.is_file() else {},
        dataset=dataset, skipped=read_json(ds_dir / "skipped.json") if (ds_dir / "skipped.json").is_file() else [],
        layers=layers, stages=[_stage_info(store, s) for s in store.completed()], thumbs=thumbs,
        thumbs_sha=_sha(store.manifest("dataset") or {}).get("thumbs.npy", ""),
        maps=_maps(store, n, layers), weights=top_params.get("weights"))
