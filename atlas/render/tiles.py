"""Where each of a unit's small pictures lives: tiles in sprite sheets the stages encoded.

Feature visualizations: the featvis stage's lossless PNG sheets (`sheets/<group>-<s>.png`,
artifacts/featvis.py), linked into the site as `img/<layer>/<group>-<s>.png`; slot i of a
group's sheets holds the strip (every prior's seeds of one tile size, side by side) of
row i of the featvis arrays. Evidence: the evidence stage's sprite strips
(`sheets/{top,patch}-<s>`, one tile per unit, SHEET_UNITS units in a row), linked as
`img/<layer>/{top,patch}-<s>.<ext>`. Either way a layer grid of thousands of units costs a
few dozen requests, and one description (SheetRef) places any tile. A page shows a tile as
the sheet in an `<img>` inside a box of one tile's size that clips it, the image sized and
shifted by percentages of the box (sprite_css): it works from file:// and at any box size,
and `loading="lazy"` keeps sheets below the fold unloaded. The layer grid's script draws the
same tiles as backgrounds (site/atlas.js `atlasSprite`). The renderer encodes none of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from atlas.artifacts.featvis import sheet_place
from atlas.render.gather import LayerData


@dataclass(frozen=True)
class SheetRef:
    """Tiles offset .. offset+count-1 of unit u's strip (n tiles) in sheets `{base}{s}.{ext}`
    of `per` strips, `cols` strips across; `slots` strips in all (slot i: unit i, or unit
    `units[i]` when a selection is not 0..slots-1)."""
    base: str
    ext: str
    per: int
    cols: int
    n: int
    offset: int
    count: int
    slots: int
    units: tuple[int, ...] | None = None
    _slot_of: dict | None = None

    @staticmethod
    def make(base: str, ext: str, per: int, cols: int, n: int, offset: int, count: int, slots: int,
             units: list[int] | None = None) -> "SheetRef":
        listed = tuple(int(u) for u in units) if units is not None and list(units) != list(range(slots)) else None
        return SheetRef(base, ext, per, cols, n, offset, count, slots, listed,
                        {u: i for i, u in enumerate(listed)} if listed is not None else None)

    def slot(self, u: int) -> int | None:
        """Unit u's slot in the sheets, None when it has no strip."""
        if self._slot_of is not None:
            return self._slot_of.get(u)
        return u if 0 <= u < self.slots else None

    def has(self, u: int) -> bool:
        return self.slot(u) is not None

    def place(self, u: int, j: int = 0) -> tuple[str, int, int, int, int]:
        """(sheet file, x, y, tiles across, tiles down) of tile offset + j of unit u's strip."""
        s, x, y, tx, ty = _strip_at(self.per, self.cols, self.n, self.slots, self.slot(u))
        return f"{self.base}{s}.{self.ext}", x + self.offset + j, y, tx, ty

    def src(self, u: int) -> str:
        return self.place(u)[0]

    def tile(self, u: int, j: int = 0) -> tuple[str, str]:
        """(sheet file, the sheet's CSS in a clipping box) of tile offset + j of unit u."""
        src, x, y, tx, ty = self.place(u, j)
        return src, sprite_css(x, y, tx, ty)

    def js(self) -> dict:
        """The description the browser code reads (site/atlas.js `atlasSprite`)."""
        out = {"base": self.base, "ext": "." + self.ext, "per": self.per, "cols": self.cols, "n": self.n,
               "offset": self.offset, "slots": self.slots}
        if self.units is not None:
            out["units"] = list(self.units)
        return out


@lru_cache(maxsize=65536)
def _strip_at(per: int, cols: int, n: int, slots: int, slot: int) -> tuple[int, int, int, int, int]:
    """featvis.sheet_place of a strip's first tile, remembered: a unit's strip is placed
    for each of its tiles and on every page that shows the unit."""
    return sheet_place({"per": per, "cols": cols, "tiles": n, "units": slots}, slot, 0)


@lru_cache(maxsize=65536)
def sprite_css(x: int, y: int, tx: int, ty: int) -> str:
    """The inline style of a sheet of tx x ty tiles shown in a box of one tile's size
    (`.sprite`: position relative, overflow hidden) so that tile (x, y) fills the box: the
    image tx boxes wide and ty high, moved x boxes left and y boxes up."""
    return f"width:{100 * tx}%;height:{100 * ty}%;left:{-100 * x}%;top:{-100 * y}%"


def featvis_refs(layer: LayerData) -> dict[str, SheetRef]:
    """prior -> where its tiles are in the featvis stage's sheets."""
    fv = layer.featvis
    if not fv:
        return {}
    listed = fv.meta.get("units")
    refs = {}
    for g in fv.sheets:
        base = f"img/{layer.slug}/{g['name']}-"
        for prior, at, count in g["parts"]:
            refs[str(prior)] = SheetRef.make(base, "png", int(g["per"]), int(g["cols"]), int(g["tiles"]), int(at),
                                             int(count), int(g["units"]), listed if isinstance(listed, list) else None)
    return refs


def sheet_refs(layer: LayerData) -> dict[str, SheetRef]:
    """'top' and 'patch' -> the layer's evidence sprite strips (when the stage made them)."""
    ev = layer.evidence
    if ev is None or ev.pictures is None:
        return {}
    meta = ev.pictures.meta
    per = int(meta["sheet_units"])
    return {kind: SheetRef.make(f"img/{layer.slug}/{kind}-", ev.pictures.ext, per, per, 1, 0, 1, layer.units)
            for kind in meta.get("sheets", [])}


def tile_refs(layer: LayerData) -> dict[str, SheetRef]:
    """kind (a prior, 'top', 'patch') -> where its tiles are."""
    return {**sheet_refs(layer), **featvis_refs(layer)}
