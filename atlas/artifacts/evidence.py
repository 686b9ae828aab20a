"""`stages/evidence/<layer>/` (one stage per layer): what real images say about each unit.

`views/<id>.<ext>` each top image once, encoded at the display size; `boxes.npy` int32
(C, k, 4) receptive-field boxes; `heat.npy` uint8 (C, k, h, w) heat grids; `sheets/`
sprite strips for the layer grid (see `pictures`, which reads them back and cuts patches);
`hist.npy` int64 (C, B), `hist_edges.npy` float32 (C, B+1), `stats.json`, `labels.json`,
`iou.npy` float32 (C, K) for NetDissect layers, `meta.json`.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.artifacts import pictures as pictures_io
from atlas.artifacts.checks import ArtifactError, by_unit, file_sha, optional_array, save_array
from atlas.artifacts.pictures import Pictures
from atlas.artifacts.store import RunStore, read_json, write_json

BOXES, HEAT, HIST, EDGES, IOU = "boxes.npy", "heat.npy", "hist.npy", "hist_edges.npy", "iou.npy"
STATS, LABELS, META = "stats.json", "labels.json", "meta.json"
VIEWS, SHEETS = "views", "sheets"


def stage(layer: str) -> str:
    return f"evidence/{layer}"


@dataclass
class Evidence:
    pictures: Pictures | None       # views, boxes, heat grids, sheets; None in a run without them
    hist: np.ndarray | None         # (C, B)
    hist_edges: np.ndarray | None   # (C, B+1)
    stats: list[dict | None]        # by unit
    labels: list[dict | None]       # by unit; None where the unit has no label
    meta: dict
    sha: dict[str, str]
    dir: Path

    @property
    def patches(self) -> bool:
        return self.pictures is not None

    @property
    def heatmaps(self) -> bool:
        return self.pictures is not None and self.pictures.heat is not None

    def iou(self) -> np.ndarray | None:
        """(C, K) NetDissect IoU of a dissected layer, else None."""
        return optional_array(self.dir / IOU, 2, "float", (len(self.stats),), mmap=False)


def read(store: RunStore, layer: str, units: int, top_shape: tuple[int, int] | None = None) -> Evidence | None:
    """The layer's evidence, None when the stage has not finished; a present file that breaks
    the contract is an ArtifactError naming it. `top_shape`: (C, k) of the top-k lists the
    boxes and heat grids must fit."""
    man = store.manifest(stage(layer))
    if man is None:
        return None
    d = store.stage_dir(stage(layer))
    pictures = pictures_io.load(d)
    if pictures is not None and top_shape is not None:
        if pictures.boxes.shape[:2] != tuple(top_shape):
            raise ArtifactError(f"{d / BOXES}: shape {pictures.boxes.shape} does not fit the top-k lists {top_shape}")
        if pictures.heat is not None and pictures.heat.shape[:2] != tuple(top_shape):
            raise ArtifactError(f"{d / HEAT}: shape {pictures.heat.shape} does not fit the top-k lists {top_shape}")
    hist = optional_array(d / HIST, 2, "int", (units,), mmap=False)
    edges = optional_array(d / EDGES, 2, "float", (units,), mmap=False)
    if hist is not None and edges is not None and edges.shape[1] != hist.shape[1] + 1:
        raise ArtifactError(f"{d / EDGES}: shape {edges.shape} does not fit hist.npy {hist.shape}")
    stats = by_unit(d / STATS, read_json(d / STATS), units) if (d / STATS).is_file() else [None] * units
    labels = by_unit(d / LABELS, read_json(d / LABELS), units) if (d / LABELS).is_file() else [None] * units
    labels = [r if r and r.get("label") not in (None, "") else None for r in labels]
    meta = read_json(d / META) if (d / META).is_file() else {}
    return Evidence(pictures=pictures, hist=hist, hist_edges=edges if hist is not None else None,
                    stats=stats, labels=labels, meta=meta, sha=file_sha(man), dir=d)


class EncodedFiles:
    """A folder of encoded images in a stage's temporary folder, each written once."""

    def __init__(self, folder: Path, ext: str):
        self.folder, self.ext = folder, ext
        folder.mkdir(exist_ok=True)

    def put(self, name, blob: bytes) -> int:
        (self.folder / f"{name}.{self.ext}").write_bytes(blob)
        return len(blob)

    def place(self, chunk: Path) -> int:
        """Put the views a chunk of the stage wrote (`chunk/views/`) here, each a hard link
        (a copy where the file system refuses); returns their bytes. Each view is computed by
        one chunk only, so a name already here is an error, not a merge."""
        total = 0
        src_dir = Path(chunk) / VIEWS
        for src in sorted(src_dir.iterdir()) if src_dir.is_dir() else ():
            dst = self.folder / src.name
            if dst.exists():
                raise ArtifactError(f"{src}: view {src.name} was already placed by an earlier chunk")
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            total += dst.stat().st_size
        return total


class EvidenceWriter:
    """Writes one layer's evidence files into the stage's temporary folder."""

    def __init__(self, out: Path):
        self.out = Path(out)

    def views(self, ext: str) -> EncodedFiles:
        """views/<image id>.<ext>"""
        return EncodedFiles(self.out / VIEWS, ext)

    def sheets(self, kind: str, tiles: np.ndarray, per: int, fmt: str, quality: int, ext: str) -> tuple[int, float]:
        """sheets/<kind>-<strip>.<ext>: tiles (C, t, t, 3), `per` units per strip; returns
        (bytes written, seconds spent encoding)."""
        return pictures_io.write_sheets(self.out, kind, tiles, per, fmt, quality, ext)

    def heat(self, heat: np.ndarray) -> None:
        save_array(self.out / HEAT, heat, np.uint8)

    def histograms(self, hist: np.ndarray, edges: np.ndarray) -> None:
        save_array(self.out / HIST, hist)
        save_array(self.out / EDGES, edges)

    def boxes(self, boxes: np.ndarray) -> None:
        save_array(self.out / BOXES, boxes)

    def iou(self, iou: np.ndarray) -> None:
        save_array(self.out / IOU, iou)

    def records(self, stats: list[dict], labels: list[dict], meta: dict) -> None:
        write_json(self.out / LABELS, labels)
        write_json(self.out / STATS, stats)
        write_json(self.out / META, meta)
