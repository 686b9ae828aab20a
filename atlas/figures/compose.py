"""Draw a Grid with matplotlib (Agg, no pyplot state) and save it as PDF, SVG or PNG.

Text stays text: SVG text is written as <text> elements (`svg.fonttype = "none"`) and
PDF fonts are embedded as TrueType (`pdf.fonttype = 42`), so labels can be searched,
copied and edited in a paper. Images are drawn unresampled (`interpolation="none"`):
vector formats embed each image at its own resolution.

The geometry is fixed in inches, so a figure's page size follows from its shape alone:
width  = 2 * MARGIN + LABEL_W + columns * cell
height = 2 * MARGIN + (TITLE_H if a title) + HEADER_H + rows * (cell + CAPTION_H)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from atlas.figures.artifacts import FigureError, RunArtifacts, parse_units
from atlas.figures.layout import Column, Grid, build_grid, parse_columns

MARGIN, LABEL_W, HEADER_H, CAPTION_H, TITLE_H, PAD = 0.05, 1.2, 0.16, 0.11, 0.28, 0.02
DEFAULT_CELL = 0.6
FORMATS = {".pdf": "pdf", ".svg": "svg", ".png": "png"}
RC = {"svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "atlas",
      "font.family": "DejaVu Sans", "image.interpolation": "none"}
_MUTED = "#666666"


def page_size(n_columns: int, n_rows: int, cell: float = DEFAULT_CELL, title: bool = False) -> tuple[float, float]:
    """(width, height) in inches of a grid with this shape."""
    return (2 * MARGIN + LABEL_W + n_columns * cell,
            2 * MARGIN + (TITLE_H if title else 0.0) + HEADER_H + n_rows * (cell + CAPTION_H))


@dataclass(frozen=True)
class Fonts:
    """Font files for regular and bold text; None: matplotlib's DejaVu Sans."""
    regular: str | None = None
    bold: str | None = None
    coverage: frozenset[int] | None = None  # code points the files have; None: all

    def props(self, text: str, size: float, bold: bool = False) -> FontProperties:
        path = self.bold if bold else self.regular
        if path is None or (self.coverage is not None and any(ord(ch) not in self.coverage for ch in text)):
            return FontProperties(family="DejaVu Sans", size=size, weight="bold" if bold else "normal")
        return FontProperties(fname=path, size=size)


LEAN_RANGE = range(0x20, 0x250)  # Basic Latin to Latin Extended-B


def lean_fonts(folder: str | Path) -> Fonts:
    """DejaVu Sans and Sans Bold cut down to Latin letters, without hinting or layout tables.

    The glyphs are the same; a PDF embeds its fonts as TrueType subsets, and subsetting
    this small file is several times cheaper than the full one, which is most of the cost
    of a one-row PDF. Text with other characters falls back to the full font.
    """
    from fontTools import subset
    folder = Path(folder)
    out = {}
    for weight in ("regular", "bold"):
        src = font_manager.findfont(FontProperties(family="DejaVu Sans", weight="bold" if weight == "bold" else "normal"),
                                    fallback_to_default=False)
        opts = subset.Options(layout_features=[], hinting=False, glyph_names=True, notdef_outline=True,
                              name_IDs=["*"])
        opts.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "FFTM"]
        font = subset.load_font(src, opts)
        subsetter = subset.Subsetter(opts)
        subsetter.populate(unicodes=LEAN_RANGE)
        subsetter.subset(font)
        coverage = frozenset(font.getBestCmap())
        out[weight] = folder / f"atlas-lean-{weight}.ttf"
        subset.save_font(font, str(out[weight]), opts)
    return Fonts(str(out["regular"]), str(out["bold"]), coverage)


def format_of(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise FigureError(f"{path}: the file suffix picks the format; use one of {', '.join(FORMATS)}")
    return fmt


class _Slot:
    """One cell's artists, reused when the figure is refilled with another unit."""

    def __init__(self, fig: Figure, rect: list[float], caption_xy: tuple[float, float], fonts: Fonts):
        self.fonts = fonts
        self.ax = fig.add_axes(rect)
        self.ax.set_axis_off()
        self.image = None
        self.blank = self.ax.text(0.5, 0.5, "n/a", transform=self.ax.transAxes, ha="center", va="center",
                                  fontproperties=fonts.props("n/a", 5), color="#aaaaaa", visible=False)
        self.caption = fig.text(*caption_xy, "", transform=fig.dpi_scale_trans, ha="center",
                                va="center", fontproperties=fonts.props("", 5), color=_MUTED)

    def fill(self, image: np.ndarray | None, caption: str) -> None:
        set_text(self.caption, caption, self.fonts)
        self.blank.set_visible(image is None)
        if image is None:
            if self.image is not None:
                self.image.set_visible(False)
            return
        h, w = image.shape[:2]
        if self.image is None:
            self.image = self.ax.imshow(image, interpolation="none")
        else:
            self.image.set_data(image)
            self.image.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
            self.image.set_visible(True)
        self.ax.set_xlim(-0.5, w - 0.5)
        self.ax.set_ylim(h - 0.5, -0.5)
        self.ax.set_axis_off()


def set_text(artist, text: str, fonts: Fonts, bold: bool = False) -> None:
    """Set a text artist's string, keeping its size, in a font that has its glyphs."""
    artist.set_fontproperties(fonts.props(text, artist.get_fontproperties().get_size_in_points(), bold))
    artist.set_text(text)


class GridFigure:
    """A matplotlib figure laid out for `columns` x `n_rows`; `fill` puts a Grid's content in.

    Building the artists once and refilling them is what makes one figure per unit cheap.
    """

    def __init__(self, columns: list[Column], n_rows: int, cell: float = DEFAULT_CELL,
                 title: str | None = None, fonts: Fonts = Fonts()):
        if not columns or n_rows < 1:
            raise FigureError("a figure needs at least one column and one row")
        self.columns, self.n_rows, self.cell, self.fonts = columns, n_rows, cell, fonts
        self.width, self.height = page_size(len(columns), n_rows, cell, title is not None)
        self.fig = Figure(figsize=(self.width, self.height), facecolor="white")
        W, H = self.width, self.height
        inches = self.fig.dpi_scale_trans

        def text(x: float, y: float, s: str, size: float, bold: bool = False, **kw):
            kw.setdefault("ha", "center")
            kw.setdefault("va", "center")
            return self.fig.text(x, y, s, transform=inches, fontproperties=fonts.props(s, size, bold), **kw)

        top = MARGIN
        if title is not None:
            text(W / 2, H - top - TITLE_H / 2, title, 9)
            top += TITLE_H
        x0 = MARGIN + LABEL_W
        for j, col in enumerate(columns):
            text(x0 + (j + 0.5) * cell, H - top - HEADER_H / 2, col.header, 6)
        top += HEADER_H
        self.titles, self.subtitles, self.slots = [], [], []
        for i in range(n_rows):
            row_top = top + i * (cell + CAPTION_H)
            mid = H - row_top - cell / 2
            self.titles.append(text(MARGIN, mid + 0.02, "", 7, bold=True, ha="left", va="bottom"))
            self.subtitles.append(text(MARGIN, mid - 0.02, "", 6, ha="left", va="top", color=_MUTED))
            slots = []
            for j in range(len(columns)):
                left, bottom = x0 + j * cell + PAD, H - row_top - cell + PAD
                rect = [left / W, bottom / H, (cell - 2 * PAD) / W, (cell - 2 * PAD) / H]
                caption_xy = (x0 + (j + 0.5) * cell, H - row_top - cell - CAPTION_H * 0.4)
                slots.append(_Slot(self.fig, rect, caption_xy, fonts))
            self.slots.append(slots)

    def fill(self, grid: Grid) -> "GridFigure":
        if len(grid.rows) != self.n_rows or grid.columns != self.columns:
            raise ValueError("grid shape differs from the figure's layout")
        for i, row in enumerate(grid.rows):
            set_text(self.titles[i], row.title, self.fonts, bold=True)
            set_text(self.subtitles[i], row.subtitle, self.fonts)
            for slot, c in zip(self.slots[i], row.cells):
                slot.fill(c.image, c.caption)
        return self

    def save(self, path: str | Path, dpi: float = 200, title: str | None = None) -> Path:
        """Write atomically in the format the suffix names; metadata is fixed so the same
        content gives the same bytes (PDF and SVG)."""
        path = Path(path)
        fmt = format_of(path)
        meta = {"pdf": {"Title": title, "Creator": "atlas", "CreationDate": None, "Producer": None},
                "svg": {"Title": title, "Creator": "atlas", "Date": None},
                "png": {"Title": title, "Software": "atlas"}}[fmt]
        if title is None:
            del meta["Title"]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with matplotlib.rc_context(RC):
            self.fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta, facecolor="white")
        tmp.replace(path)
        return path


def make_figure(run_dir: str | Path, units: list[str], out: str | Path, columns: str | None = None,
            dpi: float = 200, cell: float = DEFAULT_CELL, title: str | None = None) -> Path:
    """`atlas figure`: the chosen units of a run as one grid in `out` (.pdf, .svg or .png)."""
    format_of(out)
    if cell <= 0 or dpi <= 0:
        raise FigureError(f"--cell and --dpi must be positive (got {cell}, {dpi})")
    run = RunArtifacts(run_dir)
    chosen = parse_units(units, run)
    layers = list({id(layer): layer for layer, _ in chosen}.values())
    cols = parse_columns(columns, layers)
    bare = [layer.display for layer in layers if layer.patches is None and layer.kind == "conv"]
    if bare and any(c.kind == "patches" for c in cols):
        print(f"note: no top patches for {', '.join(bare)} (no evidence stage); showing whole top images")
    grid = build_grid(chosen, cols, title)
    fig = GridFigure(cols, len(grid.rows), cell, title).fill(grid)
    label = title or "atlas units " + " ".join(units)
    return fig.save(out, dpi=dpi, title=label)
