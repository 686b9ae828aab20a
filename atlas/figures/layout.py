"""What a figure shows, as plain data: columns, then one row of cells per unit.

Columns are asked for as `dgn,pixel:2,patches:4`: a prior's name with how many seeds
(default: all DGN seeds, the first seed of the other priors), `patches` for the unit's top
patches (the evidence stage's receptive-field crops, or whole top images where that stage
did not run) and `images` for whole top images. Without a spec every prior that has images
in any chosen layer is shown, then the top patches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atlas.artifacts.featvis import stage as featvis_stage
from atlas.figures.artifacts import FigureError, LayerArtifacts
from atlas.priors import registry

TOPS = ("patches", "images")
ALL_SEEDS = ("dgn",)   # priors whose every seed is a default column (the others: their first)
DEFAULT_TOP = 6
_HEADERS = {"patches": "top {n}", "images": "image {n}"}


@dataclass(frozen=True)
class Column:
    kind: str   # a prior, "patches" or "images"
    index: int  # seed for a prior, rank for top images (0 = highest)
    label: str = ""  # a prior's short title (from the run's meta.json)

    @property
    def header(self) -> str:
        if self.kind in _HEADERS:
            return _HEADERS[self.kind].format(i=self.index, n=self.index + 1)
        return f"{self.label or self.kind} s{self.index}"


def run_priors(layers: list[LayerArtifacts]) -> dict[str, str]:
    """{prior: short title} of every prior with images in any of the layers, in run order."""
    out: dict[str, str] = {}
    for layer in layers:
        for p, fv in layer.featvis.items():
            out.setdefault(p, fv.short or p)
    return out


@dataclass
class Cell:
    image: np.ndarray | None  # uint8 (H, W, 3); None: nothing to show for this unit
    caption: str = ""


@dataclass
class Row:
    title: str       # "conv5 unit 12"
    subtitle: str    # the unit's label, or ""
    cells: list[Cell]


@dataclass
class Grid:
    columns: list[Column]
    rows: list[Row]
    title: str | None = None


def parse_columns(spec: str | None, layers: list[LayerArtifacts]) -> list[Column]:
    """Columns for `spec` (None: the defaults) over the chosen layers' artifacts."""
    priors = run_priors(layers)
    for name in registry.priors():  # a known prior without images here: "no <prior> images" below
        priors.setdefault(name, registry.labels([name])[name]["column"])
    kinds = tuple(priors) + TOPS
    seeds = {p: max((layer.featvis[p].seeds for layer in layers if p in layer.featvis), default=0)
             for p in priors}
    k = max(layer.k for layer in layers)
    has_patches = any(layer.patches is not None for layer in layers)
    if spec is None:
        tokens = [f"{p}:{'all' if p in ALL_SEEDS else 1}" for p in priors if seeds[p]]
        tokens.append(f"{'patches' if has_patches else 'images'}:{min(k, DEFAULT_TOP)}")
    else:
        tokens = [t.strip() for t in spec.split(",") if t.strip()]
        if not tokens:
            raise FigureError(f"--columns {spec!r}: no columns named; choose from {', '.join(kinds)}")
    columns: list[Column] = []
    for token in tokens:
        kind, _, count = token.partition(":")
        if kind not in kinds:
            raise FigureError(f"--columns: unknown column {kind!r}; choose from {', '.join(kinds)} "
                              "(each optionally :N or :all)")
        limit = seeds[kind] if kind in priors else k
        if kind in priors and limit == 0:
            have = [p for p in priors if seeds[p]] + ["patches", "images"]
            stages = ", ".join(featvis_stage(layer.name) for layer in layers)
            raise FigureError(f"--columns: no {kind} images in the run (stage {stages} missing or "
                              f"without {kind}); available: {', '.join(have)}")
        if kind in priors:
            default = limit if kind in ALL_SEEDS else 1
        else:
            default = min(k, DEFAULT_TOP)
        n = _count(token, count, default, limit)
        columns += [Column(kind, i, priors.get(kind, "")) for i in range(n)]
    if len(set(columns)) != len(columns):
        raise FigureError(f"--columns {spec!r}: a column is named twice")
    return columns


def _count(token: str, count: str, default: int, limit: int) -> int:
    if not count:
        return default
    if count == "all":
        return limit
    if not count.isdigit() or int(count) < 1:
        raise FigureError(f"--columns: {token!r}: the count must be a positive integer or 'all'")
    if int(count) > limit:
        raise FigureError(f"--columns: {token!r} asks for {count}, but only {limit} are available")
    return int(count)


def cell(layer: LayerArtifacts, unit: int, column: Column) -> Cell:
    """The image and caption (its activation) of one unit in one column."""
    if column.kind not in TOPS:
        fv = layer.featvis.get(column.kind)
        row = fv.row_of.get(unit) if fv is not None else None
        if row is None or column.index >= fv.seeds:
            return Cell(None)
        value = None if fv.acts is None else float(fv.acts[row, column.index])
        act = "" if value is None or np.isnan(value) else format(value, ".3g")  # NaN: not recorded
        return Cell(np.asarray(fv.images[row, column.index]), act)
    r = column.index
    if r >= layer.k or layer.topk_ids[unit, r] < 0:
        return Cell(None)
    value = format(float(layer.topk_values[unit, r]), ".3g")
    if column.kind == "patches" and layer.patches is not None:
        return Cell(np.asarray(layer.patches[unit, r]), value)
    return Cell(np.asarray(layer.thumbs[int(layer.topk_ids[unit, r])]), value)


def row(layer: LayerArtifacts, unit: int, columns: list[Column]) -> Row:
    return Row(f"{layer.display} unit {unit}", layer.label_text(unit),
               [cell(layer, unit, c) for c in columns])


def build_grid(units: list[tuple[LayerArtifacts, int]], columns: list[Column],
               title: str | None = None) -> Grid:
    return Grid(columns, [row(layer, u, columns) for layer, u in units], title)
