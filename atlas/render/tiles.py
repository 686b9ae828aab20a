"""Where each of a unit's pictures lives: strips of equal-sized tiles, one file per group.

A unit has up to priors x seeds feature visualizations, k patches and k heatmaps. Pictures
of the same size share one PNG strip per unit (e.g. all priors and seeds in one strip;
patches and heatmaps in one when their sizes match), so a site has two or three image
files per unit instead of five or more: file creation, not encoding, is what a large
build spends most on. A page shows tile j of an n-tile strip with object-fit: cover and
object-position: j/(n-1) (see views.tile_style). Feature visualizations and evidence are
never mixed in one strip, because they cover different units (the first U vs all C).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atlas.render.gather import LayerData


@dataclass
class TileGroup:
    """One strip per unit: `parts` are (kind, array (units, n, H, W, 3), tiles taken)."""
    name: str
    units: int
    parts: list[tuple[str, np.ndarray, int]] = field(default_factory=list)
    sha: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return sum(count for _, _, count in self.parts)

    def offset(self, kind: str) -> int:
        at = 0
        for k, _, count in self.parts:
            if k == kind:
                return at
            at += count
        raise KeyError(kind)


@dataclass(frozen=True)
class TileRef:
    """Kind `kind` of unit u is tiles offset..offset+count-1 of `{base}{u}.png` (n tiles)."""
    base: str
    n: int
    offset: int
    count: int
    units: int

    def src(self, u: int) -> str:
        return f"{self.base}{u}.png"


def _group(groups: list[TileGroup], prefix: str, units: int, kind: str, arr: np.ndarray, count: int, sha: str):
    shape = tuple(arr.shape[2:4])
    for g in groups:
        if g.name.startswith(prefix) and g.parts and tuple(g.parts[0][1].shape[2:4]) == shape:
            g.parts.append((kind, arr, count))
            g.sha.append(sha)
            return
    index = sum(1 for g in groups if g.name.startswith(prefix))
    groups.append(TileGroup(name=f"{prefix}{index}", units=units, parts=[(kind, arr, count)], sha=[sha]))


def tile_groups(layer: LayerData) -> list[TileGroup]:
    """The strips of a layer: feature visualizations ('fv*') and evidence ('ev*')."""
    groups: list[TileGroup] = []
    fv = layer.featvis
    if fv:
        for prior in fv.priors:
            _group(groups, "fv", fv.units, prior, fv.images[prior], fv.seeds, fv.sha.get(f"{prior}.npy", ""))
    ev = layer.evidence
    if ev:
        for kind, arr, fname in (("patch", ev.patches, "patches.npy"), ("heat", ev.heatmaps, "heatmaps.npy")):
            if arr is not None:
                _group(groups, "ev", layer.units, kind, arr, int(arr.shape[1]), ev.sha.get(fname, ""))
    return groups


def tile_refs(layer: LayerData, groups: list[TileGroup]) -> dict[str, TileRef]:
    """kind (a prior, 'patch', 'heat') -> where its tiles are."""
    refs = {}
    for g in groups:
        for kind, _, count in g.parts:
            refs[kind] = TileRef(base=f"img/{layer.slug}/{g.name}/", n=g.n, offset=g.offset(kind), count=count,
                                 units=g.units)
    return refs
