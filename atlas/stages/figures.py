"""Stage `figures/<layer>`: a ready-made figure of every unit, `<unit>.pdf` and `<unit>.png`.

Each is the one-row grid `atlas figure RUN --units <layer>:<unit>` draws with the default
columns (DGN seeds, the other priors, top patches), so the site can offer a figure to
download from every unit page. It reads only artifacts (top-k, and feature
visualizations, evidence and labels where those stages ran) and never touches the model.

Cost: one matplotlib figure per process is built once and refilled per unit, and PDFs embed
a Latin-only cut of DejaVu Sans (subsetting the full font per file was most of the time);
about 90 ms of CPU per unit for both files. Large layers are split between `workers`
processes (`python -m atlas.stages.figures`, fed a JSON job on stdin: a child started
this way never re-imports the caller's main script, as multiprocessing's spawn would).
`units_limit` (set by --quick) bounds the units drawn.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from atlas.artifacts.chunks import chunk_size, run_chunks
from atlas.stages.base import Stage
from atlas.artifacts import evidence, featvis, topk
from atlas.artifacts import figures as figure_files
from atlas.artifacts.figures import FORMATS, figure_path, write_meta

VERSION = 1
DPI = 150
MIN_UNITS_PER_PROCESS = 48  # below this a second process costs more to start than it saves
UNITS_PER_CHUNK = 256  # the most units of one chunk (shared by the ranks of a torchrun job)


def make(ctx) -> list[Stage]:
    stages = []
    for layer in ctx.layers:
        # its inputs: the layer's top-k, thumbnails, feature visualizations and evidence (every plan has them)
        deps = [topk.STAGE, "thumbs", featvis.stage(layer.name), evidence.stage(layer.name)]
        chosen = ctx.units_of(layer)  # the units feature visualization ran for
        units = len(chosen) if chosen == list(range(len(chosen))) else chosen
        params = {"layer": layer.name, "units": units, "dpi": DPI, "formats": list(FORMATS),
                  "columns": "default"}
        stages.append(Stage(figure_files.stage(layer.name), VERSION, params,
                            partial(run, layer=layer.name, units=units), deps=tuple(deps), sharded=True))
    return stages


@functools.cache
def laid_out(columns: tuple, fonts):
    """The one-row figure for `columns`, laid out once per process and shared by every layer
    with the same columns (laying out costs ~0.1-0.3 s, most of it matplotlib's add_axes;
    `GridFigure.fill` sets every artist, so what a figure showed before leaves no trace)."""
    from atlas.figures import GridFigure
    return GridFigure(list(columns), 1, fonts=fonts)


class UnitPainter:
    """One layer's one-row figure, laid out once in this process and refilled for each unit."""

    def __init__(self, run_dir: str, layer: str, fonts):
        from atlas.figures import RunArtifacts, parse_columns
        self.art = RunArtifacts(run_dir).layer(layer)
        self.columns = parse_columns(None, [self.art])
        self.fig = laid_out(tuple(self.columns), fonts)

    def draw(self, units: list[int], out: str) -> dict[str, int]:
        """`units` into `out` as <unit>.pdf and <unit>.png; returns bytes per format."""
        from atlas.figures import build_grid
        sizes = {fmt: 0 for fmt in FORMATS}
        for u in units:
            self.fig.fill(build_grid([(self.art, u)], self.columns))
            for fmt in FORMATS:
                path = self.fig.save(figure_path(out, u, fmt), dpi=DPI, title=f"atlas {self.art.display} unit {u}")
                sizes[fmt] += path.stat().st_size
        return sizes


def render_units(run_dir: str, layer: str, units: list[int], out: str, fonts) -> dict[str, int]:
    """Draw `units` of `layer` into `out` as <unit>.pdf and <unit>.png; returns bytes per format."""
    return UnitPainter(run_dir, layer, fonts).draw(units, out)


@functools.cache
def process_fonts():
    """The lean fonts (`figures.compose.lean_fonts`), cut once per process into a folder that
    lives as long as the process: every figures stage and worker of a run uses the same files."""
    from atlas.figures.compose import lean_fonts
    folder = tempfile.TemporaryDirectory(prefix="atlas-fonts-")
    return folder, lean_fonts(folder.name)


def run(ctx, out: Path, key: str, layer: str, units: int | list[int]) -> dict:
    from atlas.figures import RunArtifacts, page_size, parse_columns
    t0, cpu0 = time.time(), time.process_time()
    ids = list(range(units)) if isinstance(units, int) else list(units)
    units = len(ids)
    processes, painter = [], []

    def compute(r0: int, r1: int, folder: Path) -> None:
        """Units ids[r0:r1] into `folder`, split between up to `workers` processes; this
        process's part drawn on one figure laid out once for all its chunks."""
        n_proc = max(1, min(ctx.cfg.workers, (r1 - r0) // MIN_UNITS_PER_PROCESS))
        processes.append(n_proc)
        parts = [ids[r0:r1][i::n_proc] for i in range(n_proc)]
        fonts = process_fonts()[1]
        job = {"run_dir": str(ctx.store.root), "layer": layer,
               "fonts": {"regular": fonts.regular, "bold": fonts.bold, "coverage": sorted(fonts.coverage)}}
        children = [_start_child({**job, "out": str(folder), "units": part}) for part in parts[1:]]
        try:
            if not painter:
                painter.append(UnitPainter(str(ctx.store.root), layer, fonts))
            painter[0].draw(parts[0], str(folder))
        finally:
            for child in children:
                _finish_child(child)

    done = run_chunks(ctx, figure_files.stage(layer), key, units, chunk_size(units, UNITS_PER_CHUNK),
                      compute, items="units")
    if ctx.rank != 0:
        return {}
    if painter:
        art, columns = painter[0].art, painter[0].columns
    else:  # this rank drew no chunk (all resumed)
        art = RunArtifacts(ctx.store.root).layer(layer)
        columns = parse_columns(None, [art])
    sizes = {fmt: 0 for fmt in FORMATS}
    for c in done:
        for u in ids[c.start:c.stop]:
            for fmt in FORMATS:
                sizes[fmt] += _place(figure_path(c.path, u, fmt), figure_path(out, u, fmt))
    width, height = page_size(len(columns), 1)  # the figure's size, without laying one out
    write_meta(out, {"layer": layer, "alias": art.alias, "units": ids,
                                   "formats": list(FORMATS), "dpi": DPI,
                                   "columns": [c.header for c in columns],
                                   "size_inches": [round(width, 3), round(height, 3)]})
    return {"units": units, "processes": max(processes, default=0),
            **{f"{fmt}_bytes": n for fmt, n in sizes.items()},
            "ms_per_unit": round((time.time() - t0) / max(units, 1) * 1000, 1),
            "parent_cpu_s": round(time.process_time() - cpu0, 2)}


def _place(src: Path, dst: Path) -> int:
    """Put a chunk's figure into the stage folder (a hard link where possible); its size."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return dst.stat().st_size


def _start_child(job: dict) -> subprocess.Popen:
    """A worker process running this module on `job`; the same atlas is first on its path."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)}
    child = subprocess.Popen([sys.executable, "-m", "atlas.stages.figures"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    child.stdin.write(json.dumps(job))
    child.stdin.close()
    return child


def _finish_child(child: subprocess.Popen) -> dict[str, int]:
    out, err = child.stdout.read(), child.stderr.read()
    if child.wait() != 0:
        raise RuntimeError(f"figure worker failed (exit {child.returncode}): {err.strip()[-2000:]}")
    return json.loads(out)


def _worker_main() -> None:
    from atlas.figures.compose import Fonts
    job = json.load(sys.stdin)
    f = job["fonts"]
    fonts = Fonts(f["regular"], f["bold"], frozenset(f["coverage"]))
    print(json.dumps(render_units(job["run_dir"], job["layer"], job["units"], job["out"], fonts)))


if __name__ == "__main__":
    _worker_main()
