"""Where each of a unit's small pictures lives: strips of equal-sized tiles.

Feature visualizations: a unit's priors x seeds of the same size share one PNG strip per
unit (lossless, encoded by the renderer). Evidence: the evidence stage's sprite strips
(`sheets/{top,patch}-<s>`, SHEET_UNITS units each, already encoded), linked into the site
as `img/<layer>/{top,patch}-<s>.<ext>`: a layer grid of thousands of units costs a few
requests. A page shows tile j of an n-tile strip with object-fit: cover and
object-position: j/(n-1) (see views.tile_style).
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

    def n_of(self, u: int) -> int:
        return self.n

    def j_of(self, u: int) -> int:
        return self.offset


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
    """The strips of a layer's feature visualizations ('fv*')."""
    groups: list[TileGroup] = []
    fv = layer.featvis
    if fv:
        for prior in fv.priors:
            _group(groups, "fv", fv.units, prior, fv.images[prior], fv.seeds, fv.sha.get(f"{prior}.npy", ""))
    return groups


@dataclass(frozen=True)
class SheetRef:
    """Kind `kind` ('top' or 'patch') of unit u is tile u % per of `{base}{u // per}.{ext}`."""
    base: str
    per: int
    units: int
    ext: str
    offset: int = 0

    def src(self, u: int) -> str:
        return f"{self.base}{u // self.per}.{self.ext}"

    def n_of(self, u: int) -> int:
        return min(self.per, self.units - (u // self.per) * self.per)

    def j_of(self, u: int) -> int:
        return u % self.per


def sheet_refs(layer: LayerData) -> dict[str, SheetRef]:
    """'top' and 'patch' -> the layer's evidence sprite strips (when the stage made them)."""
    ev = layer.evidence
    if ev is None or ev.pictures is None:
        return {}
    meta = ev.pictures.meta
    return {kind: SheetRef(base=f"img/{layer.slug}/{kind}-", per=int(meta["sheet_units"]), units=layer.units,
                           ext=ev.pictures.ext) for kind in meta.get("sheets", [])}


def tile_refs(layer: LayerData, groups: list[TileGroup]) -> dict[str, TileRef | SheetRef]:
    """kind (a prior, 'top', 'patch') -> where its tiles are."""
    refs: dict = dict(sheet_refs(layer))
    for g in groups:
        for kind, _, count in g.parts:
            refs[kind] = TileRef(base=f"img/{layer.slug}/{g.name}/", n=g.n, offset=g.offset(kind), count=count,
                                 units=g.units)
    return refs
