"""Read a run's artifacts into plain objects for the renderer. Never imports torch.

Only `dataset` and `topk` are required. `featvis/<layer>`, `evidence/<layer>`, `maps`
and `figures/<layer>` are read when their stage finished (a valid manifest) and left out
otherwise, so a partial run still renders. An artifact that is present but breaks the
contract in ARCHITECTURE.md (wrong shape or dtype) is an error naming the file.
Large arrays are memory-mapped; nothing here decodes or encodes images. The image list is
read compactly (labels as an array, a description only when a page asks for it).
"""
from __future__ import annotations

import dataclasses

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.artifacts import ArtifactError, Run, RunStore
from atlas.artifacts.dataset import Dataset
from atlas.artifacts.thumbs import Thumbs, paged_ids
from atlas.artifacts.evidence import Evidence
from atlas.artifacts.featvis import Featvis
from atlas.artifacts.maps import Maps as MapsData
from atlas.evidence.stats import dead_units
from atlas.render.names import safe_name

__all__ = ["ArtifactError", "Evidence", "Featvis", "LayerData", "MapsData", "SiteData", "StageInfo", "gather",
           "dead_units"]


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
    dataset: dict             # images.json (name, fingerprint, class names, count)
    images: Dataset           # labels (N,), descriptions by id, which are usable
    skipped: list
    layers: list[LayerData]
    stages: list[StageInfo]
    thumbs: Thumbs | None     # the paged images' thumbnails (None before the thumbs stage ran)
    maps: MapsData | None = None
    weights: str | None = None

    @property
    def title(self) -> str:
        return self.config.get("title") or f"{self.config.get('model', 'model')} atlas"

    @cached_property
    def paged(self) -> np.ndarray:
        """Ascending ids of the images that get a page and a thumbnail: those in some unit's
        top-k, in the image map's sample, or a map neighbour of one (artifacts.thumbs.paged_ids,
        the set the thumbs stage encoded). Every other image is counted, not paged, so the
        site grows with units, not with images."""
        maps = self.maps
        return paged_ids([layer.topk_ids for layer in self.layers], None if maps is None else maps.ids,
                         None if maps is None else maps.neighbors)

    @property
    def labels(self) -> np.ndarray:
        """(N,) class index of every listed image (-1: unlabelled)."""
        return self.images.labels

    @cached_property
    def label_list(self) -> list[int]:
        """`labels` as a list, for pages that look up one image at a time (made before the
        render's workers fork, so they share it)."""
        return np.asarray(self.labels).tolist()

    @property
    def image_count(self) -> int:
        """Usable images of the data set (listed, less those the top-k pass could not decode)."""
        return self.images.usable_count

    @property
    def thumb_size(self) -> int:
        return self.thumbs.size if self.thumbs is not None else 0

    def slots(self, ids) -> np.ndarray:
        """Sprite-sheet slots of paged image `ids`: their positions in the thumbs stage's ids."""
        held = self.thumbs.ids if self.thumbs is not None else self.paged
        return np.searchsorted(held, np.asarray(ids, dtype=np.int64))

    @cached_property
    def class_names(self) -> list[str]:
        return [str(n) for n in self.dataset.get("class_names") or []]

    def inputs_key(self, layer: str | None = None) -> str:
        """Identity of what a page reads: every stage and the config (layer=None), or the
        stages one layer's pages read (dataset, topk, maps, thumbs and that layer's own stages)."""
        parts = []
        for s in self.stages:
            top = s.name.split("/")[0]
            if layer is None or top in ("dataset", "topk", "maps", "thumbs") or s.name.split("/", 1)[-1] == layer \
                    or s.name == "figures":
                parts.append((s.name, s.identity))
        if layer is None:
            parts.append(("config", json.dumps(self.config, sort_keys=True, default=str)))
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=12).hexdigest()


def _stage_info(store: RunStore, name: str) -> StageInfo:
    man = store.manifest(name) or {}
    summary = store.summary(name)
    files = man.get("files", {})
    identity = hashlib.blake2b(json.dumps(sorted((rel, f.get("sha256", "")) for rel, f in files.items()))
                               .encode(), digest_size=12).hexdigest()
    return StageInfo(name=name, key=man.get("key", ""), finished=man.get("finished", ""), identity=identity,
                     seconds=summary.get("seconds"), params=man.get("params", {}),
                     summary={k: v for k, v in summary.items() if k != "seconds"},
                     files=len(files), bytes=sum(int(f.get("bytes", 0)) for f in files.values()))


def spread_featvis(fv: Featvis | None, layer_units: int) -> Featvis | None:
    """Units chosen with `--units` (rows = meta `units`) placed at their unit index, so the
    site's per-unit code reads row u for unit u; units not run get blank images and NaN
    activations, and `featvis_ran` says which ran."""
    if fv is None or not fv.images or fv.unit_ids == list(range(fv.units)):
        return fv
    ids = fv.unit_ids
    if any(not 0 <= u < layer_units for u in ids) or len(set(ids)) != len(ids):
        raise ArtifactError(f"{fv.dir}/meta.json: 'units' must list distinct unit ids in 0..{layer_units - 1}")
    top = max(ids) + 1
    images, acts = {}, {}
    for p, arr in fv.images.items():
        dense = np.zeros((top, *arr.shape[1:]), arr.dtype)
        dense[ids] = arr[:len(ids)]
        images[p] = dense
        a = np.full((top, arr.shape[1]), np.nan, np.float32)
        a[ids] = fv.acts[p][:len(ids)]
        acts[p] = a
    return dataclasses.replace(fv, units=top, unit_ids=list(range(top)), images=images, acts=acts)


def featvis_ran(fv: Featvis, u: int) -> bool:
    """Whether unit u was visualized (meta `units` lists the chosen ones when not a prefix)."""
    listed = fv.meta.get("units")
    return u < fv.units and (not isinstance(listed, list) or u in listed)


def gather(run_dir: Path) -> SiteData:
    """Everything the site shows, read from `run_dir/stages` (and its config.json)."""
    run = Run(run_dir)
    store, ds, top = run.store, run.dataset, run.topk
    layers = []
    for entry in top.layers:
        t = top.layer(entry.name)
        data_max = t.data_max()
        layer = LayerData(
            name=entry.name, alias=entry.alias, kind=entry.kind, shape=list(entry.shape), units=entry.units,
            slug=safe_name(entry.name), topk_values=t.values, topk_ids=t.ids, topk_pos=t.pos, data_max=data_max,
            nonfinite=t.nonfinite, dead=dead_units(t.values, data_max),
            featvis=spread_featvis(run.featvis(entry.name), entry.units), evidence=run.evidence(entry.name))
        figs = run.figures(entry.name)
        layer.figures, layer.figure_sha = figs.files, figs.sha
        layer.unit_map = run.maps.unit_maps.get(entry.name) if run.maps else None
        layers.append(layer)
    slugs = [layer.slug for layer in layers]
    if len(set(slugs)) != len(slugs):
        raise ArtifactError(f"{top.dir / 'layers.json'}: layer names repeat: {slugs}")
    data = SiteData(
        run_dir=Path(run_dir), config=run.config, dataset=ds.info, images=ds, skipped=ds.skipped, layers=layers,
        stages=[_stage_info(store, s) for s in store.completed()], thumbs=run.thumbs, maps=run.maps,
        weights=top.params.get("weights"))
    if data.thumbs is not None:
        missing = np.setdiff1d(data.paged, data.thumbs.ids)
        if len(missing):
            raise ArtifactError(f"{data.thumbs.dir}: no thumbnail of paged image {int(missing[0])} "
                                f"({len(missing)} missing); rerun `atlas run` to redo the thumbs stage")
    return data
