"""Where each of a unit's small pictures lives: strips of equal-sized tiles.

Feature visualizations: a unit's priors x seeds of the same size share one PNG strip per
unit, encoded (lossless) by the featvis stage (`strips/<group>/<unit>.png`) and linked into
the site as `img/<layer>/<group>/<unit>.png`. Evidence: the evidence stage's sprite strips
(`sheets/{top,patch}-<s>`, SHEET_UNITS units each, already encoded), linked into the site
as `img/<layer>/{top,patch}-<s>.<ext>`: a layer grid of thousands of units costs a few
requests. A page shows tile j of an n-tile strip with object-fit: cover and
object-position: j/(n-1) (see views.tile_style). The renderer encodes none of them.
"""
from __future__ import annotations

from dataclasses import dataclass

from atlas.render.gather import LayerData


@dataclass(frozen=True)
class TileGroup:
    """One strip per visualized unit: `parts` are (prior, first tile, tiles) of its n tiles."""
    name: str
    units: int
    n: int
    parts: tuple[tuple[str, int, int], ...]
    only: frozenset | None = None   # the units that have a strip, when not all of 0..units-1


@dataclass(frozen=True)
class TileRef:
    """Kind `kind` of unit u is tiles offset..offset+count-1 of `{base}{u}.png` (n tiles)."""
    base: str
    n: int
    offset: int
    count: int
    units: int
    only: frozenset | None = None

    def has(self, u: int) -> bool:
        return u < self.units and (self.only is None or u in self.only)

    def src(self, u: int) -> str:
        return f"{self.base}{u}.png"

    def n_of(self, u: int) -> int:
        return self.n

    def j_of(self, u: int) -> int:
        return self.offset


def tile_groups(layer: LayerData) -> list[TileGroup]:
    """The strips of a layer's feature visualizations, as the featvis stage encoded them."""
    fv = layer.featvis
    if not fv:
        return []
    listed = fv.meta.get("units")
    only = frozenset(int(u) for u in listed) if isinstance(listed, list) else None
    return [TileGroup(name=str(g["name"]), units=fv.units, n=int(g["tiles"]), only=only,
                      parts=tuple((str(p), int(at), int(count)) for p, at, count in g["parts"]))
            for g in fv.strips]


@dataclass(frozen=True)
class SheetRef:
    """Kind `kind` ('top' or 'patch') of unit u is tile u % per of `{base}{u // per}.{ext}`."""
    base: str
    per: int
    units: int
    ext: str
    offset: int = 0

    def has(self, u: int) -> bool:
        return u < self.units

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
        for kind, at, count in g.parts:
            refs[kind] = TileRef(base=f"img/{layer.slug}/{g.name}/", n=g.n, offset=at, count=count, units=g.units,
                                 only=g.only)
    return refs
