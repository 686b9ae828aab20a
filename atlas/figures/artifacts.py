"""What a figure can show of a unit, read from a run's artifacts only (never torch).

A layer always has its top-k list (`stages/topk`) and the data set's thumbnails
(`stages/thumbs`, the paged images' thumbnails, which include every top-k image). Feature visualizations (`stages/featvis/<layer>`), top
patches and labels (`stages/evidence/<layer>`) are used when their stage finished, so a
figure degrades to top images when only the data-set pass ran.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.artifacts import Run, RunNotReadyError
from atlas.artifacts.pictures import PatchArray
from atlas.artifacts.thumbs import Thumbs


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
    thumbs: Thumbs            # thumbs[image id] -> (t, t, 3) for the paged images
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
        try:
            self.run = Run(self.root)
        except RunNotReadyError as exc:
            raise FigureError(str(exc)) from None
        self.layer_info: list[dict] = [e.to_json() for e in self.run.topk.layers]
        self._cache: dict[str, LayerArtifacts] = {}

    @property
    def thumbs(self) -> Thumbs:
        thumbs = self.run.thumbs
        if thumbs is None:
            raise FigureError(f"{self.root} has no finished thumbs stage (run `atlas run` to finish it)")
        return thumbs

    def resolve(self, name: str) -> dict:
        """layers.json entry of a node name or alias; unknown names list the choices."""
        entry = self.run.topk.entry(name)
        if entry is None:
            choices = ", ".join(f"{i['alias']} ({i['name']})" if i.get("alias") else i["name"]
                                for i in self.layer_info)
            raise FigureError(f"unknown layer {name!r} in {self.root}; layers: {choices}")
        return entry.to_json()

    def layer(self, name: str) -> LayerArtifacts:
        info = self.resolve(name)
        if info["name"] not in self._cache:
            self._cache[info["name"]] = self._load(info)
        return self._cache[info["name"]]

    def _load(self, info: dict) -> LayerArtifacts:
        top = self.run.topk.layer(info["name"])
        art = LayerArtifacts(name=info["name"], alias=info.get("alias"), kind=info["kind"],
                             units=int(info["units"]), topk_ids=top.ids, topk_values=top.values, thumbs=self.thumbs)
        fv = self.run.featvis(info["name"])
        if fv is not None:
            art.featvis = {p: FeatVis(images=fv.images[p], acts=fv.acts[p], units=fv.unit_ids, short=fv.column(p))
                           for p in fv.priors}
        ev = self.run.evidence(info["name"])
        if ev is not None:
            if ev.pictures is not None:
                art.patches = PatchArray(ev.pictures, art.units, int(art.topk_ids.shape[1]))
            art.labels = {u: r for u, r in enumerate(ev.labels) if r is not None}
        return art


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
