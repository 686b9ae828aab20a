"""The site's non-page files as jobs: linked stage pictures, thumbnails, figures, static files.

Feature visualizations (per unit one PNG strip of all priors' seeds; pages pick a tile
with CSS) were encoded by the featvis stage, evidence pictures (top images' views, grid
sprite strips) by the evidence stage: both are hard-linked or copied, never encoded again;
their key is the file's checksum in the stage manifest. Data-set thumbnails are still
encoded here: a thumbnail's key is the manifest checksum of the array plus the image; its
content hash covers exactly the image's pixels, so only changed images are re-encoded.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from atlas.render import names
from atlas.render.datafiles import SHEET_COLS, SHEET_PER
from atlas.render.gather import SiteData
from atlas.render.jobs import Job, Maker, hash_bytes
from atlas.evidence.png import ENCODER_VERSION, encode_png, sheet
from atlas.render.tiles import tile_groups
from atlas.resources import resource_dir


class ThumbMaker(Maker):
    """Data image i as a PNG."""
    kind = "image"

    def __init__(self, thumbs: np.ndarray, sha: str):
        self.thumbs, self.sha = thumbs, sha

    def key(self, i: int) -> str:
        return f"{self.sha}:{i}:{ENCODER_VERSION}"

    def content(self, i: int) -> str:
        return hash_bytes(np.ascontiguousarray(self.thumbs[i]))

    def produce(self, i: int) -> bytes:
        return encode_png(np.asarray(self.thumbs[i]))


class SheetMaker(ThumbMaker):
    """Sprite sheet s of the paged data images (slot j holds image `ids[j]`), for the maps."""

    def __init__(self, thumbs: np.ndarray, sha: str, ids: np.ndarray):
        super().__init__(thumbs, sha)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.ids_key = hashlib.blake2b(self.ids.tobytes(), digest_size=8).hexdigest()

    def _range(self, s: int) -> np.ndarray:
        return self.ids[s * SHEET_PER:(s + 1) * SHEET_PER]

    def key(self, s: int) -> str:
        return f"{self.sha}:sheet{s}:{self.ids_key}:{SHEET_COLS}:{ENCODER_VERSION}"

    def content(self, s: int) -> str:
        return hash_bytes(np.ascontiguousarray(self.thumbs[self._range(s)]))

    def produce(self, s: int) -> bytes:
        return encode_png(sheet(np.asarray(self.thumbs[self._range(s)]), SHEET_COLS))


class FileMaker(Maker):
    """A copy of a file; arg = (source path, its sha256 from a manifest or '')."""

    def key(self, arg: tuple[Path, str]) -> str:
        src, sha = arg
        if sha:
            return sha
        st = src.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"

    def content(self, arg: tuple[Path, str]) -> str:
        return arg[1] or hashlib.sha256(arg[0].read_bytes()).hexdigest()  # a manifest's sha256 is the content's

    def produce(self, arg: tuple[Path, str]) -> bytes:
        return arg[0].read_bytes()

    def source(self, arg: tuple[Path, str]) -> Path:
        return arg[0]


class LinkMaker(FileMaker):
    """An image a stage encoded (a feature-visualization strip, a top image's view, a grid
    sprite strip), put in the site as is: hard-linked, or copied where links are not
    possible; never re-encoded."""
    kind = "linked"


def data_image_jobs(data: SiteData, with_sheets: bool) -> list[Job]:
    """A thumbnail per paged image (data.paged), and sprite sheets of them for the maps."""
    thumbs = ThumbMaker(data.thumbs, data.thumbs_sha)
    jobs = [Job(names.data_png(int(i)), thumbs, int(i)) for i in data.paged]
    if with_sheets:
        sheets = SheetMaker(data.thumbs, data.thumbs_sha, data.paged)
        jobs += [Job(names.sheet_png(s), sheets, s) for s in range(-(-len(data.paged) // SHEET_PER))]
    return jobs


def layer_image_jobs(data: SiteData) -> list[Job]:
    """Each visualized unit's feature-visualization strips, as the featvis stage encoded them."""
    maker, jobs = LinkMaker(), []
    for layer in data.layers:
        fv = layer.featvis
        if not fv:
            continue
        for group in tile_groups(layer):
            base = f"img/{layer.slug}/{group.name}/"
            for u in (range(group.units) if group.only is None else sorted(group.only)):
                path = fv.strip_path(group.name, u)
                jobs.append(Job(f"{base}{u}.png", maker, (path, fv.sha.get(f"strips/{group.name}/{u}.png", ""))))
    return jobs


def evidence_image_jobs(data: SiteData) -> list[Job]:
    """Every layer's grid sprite strips, and each top image's view once for the whole site
    (`img/view/<id>.<ext>`): equal pixels encode to equal bytes, so the first layer that
    has an image provides it."""
    maker, jobs, seen = LinkMaker(), [], set()
    for layer in data.layers:
        ev = layer.evidence
        if ev is None or ev.pictures is None:
            continue
        pics = ev.pictures
        for kind in pics.meta.get("sheets", []):
            for path in pics.sheet_paths(kind):
                jobs.append(Job(f"img/{layer.slug}/{path.name}", maker, (path, ev.sha.get(f"sheets/{path.name}", ""))))
        for i in sorted(set(np.asarray(layer.topk_ids).ravel().tolist()) - seen):
            if i < 0:
                continue
            path = pics.view_path(i)
            jobs.append(Job(names.view_file(i, pics.ext), maker, (path, ev.sha.get(f"views/{path.name}", ""))))
            seen.add(i)
    return jobs


def figure_jobs(data: SiteData) -> list[Job]:
    maker = FileMaker()
    return [Job(names.figure_file(layer.slug, u, ext), maker, (path, layer.figure_sha.get(path.name, "")))
            for layer in data.layers for u, files in sorted(layer.figures.items()) for ext, path in sorted(files.items())]


def static_files() -> list[tuple[str, Path]]:
    static = resource_dir("site")
    return [(f"static/{f.relative_to(static).as_posix()}", f) for f in sorted(static.rglob("*"))
            if f.is_file() and not f.name.startswith(".")]


def static_jobs() -> list[Job]:
    maker = FileMaker()
    return [Job(rel, maker, (f, "")) for rel, f in static_files()]
