"""The site's non-page files as jobs: linked stage pictures, thumbnails, figures, static files.

Feature visualizations (lossless PNG sprite sheets of the units' strips of all priors'
seeds; pages pick a tile with CSS) were encoded by the featvis stage, evidence pictures (top
images' views, grid sprite strips) by the evidence stage: both are hard-linked or copied,
never encoded again;
their key is the file's checksum in the stage manifest. So are the data-set thumbnails
and the maps' sprite sheets of them, encoded by the thumbs stage for the paged images only.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from atlas.render import names
from atlas.render.gather import SiteData
from atlas.render.jobs import Job, Maker
from atlas.resources import resource_dir


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
    """An image a stage encoded (a feature-visualization sheet, a top image's view, a grid
    sprite strip, a data-set thumbnail), put in the site as is: hard-linked, or copied
    where links are not possible; never re-encoded."""
    kind = "linked"


def data_image_jobs(data: SiteData, with_sheets: bool) -> list[Job]:
    """A thumbnail per paged image (data.paged) and, for the maps, the sprite sheets of
    them, as the thumbs stage encoded them (slot j of the sheets is its image j)."""
    thumbs = data.thumbs
    if thumbs is None:
        return []
    maker = LinkMaker()
    same = same_size_views(data)
    jobs = [Job(names.data_thumb(int(i)), maker, same.get(int(i)) or (thumbs.path(int(i)), thumbs.sha.get(thumbs.rel(int(i)), "")))
            for i in data.paged]
    if with_sheets:
        jobs += [Job(names.data_sheet(s), maker, (thumbs.dir / rel, thumbs.sha.get(rel, "")))
                 for s, rel in enumerate(thumbs.sheet_rels())]
    return jobs


def same_size_views(data: SiteData) -> dict[int, tuple[Path, str]]:
    """Top images whose evidence view is the same picture as their thumbnail would be (the
    model's view at the thumbnail's size, in the thumbnail's format: a model whose input is no
    larger than a thumbnail, e.g. 32 px): image id -> (view file, sha256). For these the site's
    thumbnail is a link to the view, so the picture is stored once, not twice."""
    thumbs, found = data.thumbs, {}
    for layer in data.layers:
        ev = layer.evidence
        pics = None if ev is None else ev.pictures
        if pics is None or pics.ext != thumbs.ext or pics.geometry.display_size != thumbs.size:
            continue
        for i in np.asarray(layer.topk_ids).ravel().tolist():
            if i >= 0 and i not in found:
                path = pics.view_path(i)
                found[i] = (path, ev.sha.get(f"views/{path.name}", ""))
    return found


def layer_image_jobs(data: SiteData) -> list[Job]:
    """Each layer's feature-visualization sheets, as the featvis stage encoded them."""
    maker, jobs = LinkMaker(), []
    for layer in data.layers:
        fv = layer.featvis
        if not fv:
            continue
        for group in fv.sheets:
            for s in range(int(group["count"])):
                rel = fv.sheet_rel(group["name"], s)
                jobs.append(Job(f"img/{layer.slug}/{group['name']}-{s}.png", maker, (fv.dir / rel, fv.sha.get(rel, ""))))
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
