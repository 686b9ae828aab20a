"""What a figure can show of a unit, read from a run's artifacts only (never torch).

A layer always has its top-k list (`stages/topk`) and the data set's thumbnails
(`stages/dataset/thumbs.npy`). Feature visualizations (`stages/featvis/<layer>`), top
patches and labels (`stages/evidence/<layer>`) are used when their stage finished, so a
figure degrades to top images when only the data-set pass ran.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.evidence.pictures import PatchArray
from atlas.evidence.pictures import load as load_pictures
from atlas.stages.store import RunStore, read_json


class FigureError(ValueError):
    """A unit spec, column spec or run folder cannot make a figure; the message says why."""


@dataclass
class FeatVis:
    """One prior's images of a layer: uint8 (U, S, H, W, 3) and activations (U, S)."""
    images: np.ndarray
    acts: np.ndarray | None
    units: list[int]  # the layer's unit index of each of the U rows
    short: str = ""   # the prior's short title, from the stage's meta.json

    @cached_property
    def row_of(self) -> dict[int, int]:
        return {u: i for i, u in enumerate(self.units)}

    @property
    def seeds(self) -> int:
        return int(self.images.shape[1])


@dataclass
class LayerArtifacts:
    name: str
    alias: str | None
    kind: str
    units: int
    topk_ids: np.ndarray      # (C, k)
    topk_values: np.ndarray   # (C, k)
    thumbs: np.ndarray        # (N, t, t, 3), memory-mapped
    featvis: dict[str, FeatVis] = field(default_factory=dict)
    patches: PatchArray | None = None   # patches[unit, rank] -> (P, P, 3): cut from the stored views
    labels: dict[int, dict] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.alias or self.name

    @property
    def k(self) -> int:
        return int(self.topk_ids.shape[1])

    def label_text(self, unit: int) -> str:
        """'circle (0.31)' from labels.json, or '' when the unit has no label."""
        info = self.labels.get(unit)
        if not info or not info.get("label"):
            return ""
        score = info.get("score")
        return f"{info['label']} ({float(score):.2f})" if isinstance(score, (int, float)) else str(info["label"])


class RunArtifacts:
    """A run folder, opened for figures: its layers by node name and by alias."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)
        self.store = RunStore(self.root)
        missing = [s for s in ("dataset", "topk") if self.store.manifest(s) is None]
        if missing:
            raise FigureError(f"{self.root} has no finished {' and '.join(missing)} stage "
                              "(is it a run folder? run `atlas run` first)")
        self.layer_info: list[dict] = read_json(self.store.stage_dir("topk") / "layers.json")
        self._by_name = {info["name"]: info for info in self.layer_info}
        self._by_alias = {info["alias"]: info for info in self.layer_info if info.get("alias")}
        self._cache: dict[str, LayerArtifacts] = {}

    @cached_property
    def thumbs(self) -> np.ndarray:
        return np.load(self.store.stage_dir("dataset") / "thumbs.npy", mmap_mode="r")

    def resolve(self, name: str) -> dict:
        """layers.json entry of a node name or alias; unknown names list the choices."""
        info = self._by_name.get(name) or self._by_alias.get(name)
        if info is None:
            choices = ", ".join(f"{i['alias']} ({i['name']})" if i.get("alias") else i["name"]
                                for i in self.layer_info)
            raise FigureError(f"unknown layer {name!r} in {self.root}; layers: {choices}")
        return info

    def layer(self, name: str) -> LayerArtifacts:
        info = self.resolve(name)
        if info["name"] not in self._cache:
            self._cache[info["name"]] = self._load(info)
        return self._cache[info["name"]]

    def _load(self, info: dict) -> LayerArtifacts:
        top = self.store.stage_dir("topk") / info["name"]
        art = LayerArtifacts(name=info["name"], alias=info.get("alias"), kind=info["kind"],
                             units=int(info["units"]), topk_ids=np.load(top / "ids.npy"),
                             topk_values=np.load(top / "values.npy"), thumbs=self.thumbs)
        fv_name = f"featvis/{info['name']}"
        if self.store.manifest(fv_name) is not None:
            art.featvis = _load_featvis(self.store.stage_dir(fv_name))
        ev_name = f"evidence/{info['name']}"
        if self.store.manifest(ev_name) is not None:
            ev = self.store.stage_dir(ev_name)
            pics = load_pictures(ev)
            if pics is not None:
                art.patches = PatchArray(pics, art.units, int(art.topk_ids.shape[1]))
            if (ev / "labels.json").is_file():
                art.labels = {int(r["unit"]): r for r in read_json(ev / "labels.json")}
        return art


def _load_featvis(folder: Path) -> dict[str, FeatVis]:
    meta = read_json(folder / "meta.json") if (folder / "meta.json").is_file() else {}
    out: dict[str, FeatVis] = {}
    labels = meta.get("labels") or {}
    for prior in meta.get("priors") or []:
        path = folder / f"{prior}.npy"
        if not path.is_file():
            continue
        images = np.load(path, mmap_mode="r")
        if images.ndim != 5 or images.shape[-1] != 3:
            raise FigureError(f"{path}: expected uint8 (U, S, H, W, 3), got shape {images.shape}")
        units = meta.get("units")
        units = list(units) if isinstance(units, list) else list(range(images.shape[0]))
        if len(units) != images.shape[0]:
            raise FigureError(f"{folder / 'meta.json'}: 'units' lists {len(units)} units "
                              f"but {path.name} has {images.shape[0]}")
        act_path = folder / f"{prior}_act.npy"
        acts = np.load(act_path) if act_path.is_file() else None
        out[prior] = FeatVis(images=images, acts=acts, units=[int(u) for u in units],
                             short=(labels.get(prior) or {}).get("column", prior))
    return out


_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_units(specs: list[str], run: RunArtifacts) -> list[tuple[LayerArtifacts, int]]:
    """`['fc8:1,5,9', 'conv5:0-3']` -> [(layer, unit), ...] in the order given.

    Layers by alias or dotted node name (the layer part ends at the last ':'); units by
    index, comma-separated, with inclusive ranges `a-b`.
    """
    out: list[tuple[LayerArtifacts, int]] = []
    for spec in specs:
        layer_part, sep, unit_part = spec.rpartition(":")
        if not sep or not layer_part or not unit_part:
            raise FigureError(f"unit spec {spec!r}: expected LAYER:UNITS, e.g. fc8:1,5,9 or conv5:0-3")
        layer = run.layer(layer_part)
        for token in unit_part.split(","):
            token = token.strip()
            m = _RANGE.match(token)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise FigureError(f"unit spec {spec!r}: range {token!r} runs backwards")
                units = list(range(lo, hi + 1))
            elif token.isdigit():
                units = [int(token)]
            else:
                raise FigureError(f"unit spec {spec!r}: {token!r} is not a unit index or a range a-b")
            for u in units:
                if u >= layer.units:
                    raise FigureError(f"unit {u} is out of range for {layer.display} ({layer.name}): "
                                      f"it has {layer.units} units, 0-{layer.units - 1}")
                out.append((layer, u))
    if not out:
        raise FigureError("no units given; e.g. --units fc8:1,5,9 conv5:12")
    return out
