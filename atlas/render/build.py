"""Build the static site: gather all data first, then render every page.

Pages use relative URLs only, so the site works from file:// and from any sub-path of a
static host. The Jinja environment is made once (StrictUndefined, autoescape on).
"""
from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from PIL import Image

from atlas import __version__
from atlas.render.gather import SiteData, gather
from atlas.resources import resource_dir


class SiteWriter:
    """Writes files under one root; refuses paths outside it and writing a path twice;
    leaves a file untouched when its bytes have not changed (incremental re-render)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.written: set[Path] = set()
        self.changed = 0
        self.unchanged = 0

    def path(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root not in p.parents:
            raise ValueError(f"refusing to write outside the site folder: {rel!r}")
        return p

    def write(self, rel: str, data: bytes | str) -> None:
        p = self.path(rel)
        if p in self.written:
            raise ValueError(f"site path written twice: {rel}")
        self.written.add(p)
        blob = data.encode("utf-8") if isinstance(data, str) else data
        if p.is_file() and p.stat().st_size == len(blob) and p.read_bytes() == blob:
            self.unchanged += 1
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(p)
        self.changed += 1


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(resource_dir("templates"))),
                      autoescape=select_autoescape(["html", "xml"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = lambda v, spec=".3g": format(float(v), spec)
    return env


def _copy_static(writer: SiteWriter) -> None:
    static = resource_dir("site")
    for f in sorted(static.rglob("*")):
        if f.is_file():
            writer.write(f"static/{f.relative_to(static).as_posix()}", f.read_bytes())


def build_site(run_dir: Path, out: Path | None = None, workers: int | None = None) -> Path:
    """Render `run_dir`'s artifacts into `run_dir/site` (or `out`); returns index.html."""
    t0 = time.time()
    data = gather(run_dir)
    out = Path(out or Path(run_dir) / "site")
    writer = SiteWriter(out)
    env = make_env()
    from atlas.render import pages
    jobs = pages.collect(data)  # [(relative path, template or bytes-producer, context)]
    images = pages.image_assets(data)  # [(relative path, array producer)]
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
        for rel, blob in zip((r for r, _ in images), pool.map(lambda job: png_bytes(job[1]()), images)):
            writer.write(rel, blob)
    for rel, template, context in jobs:
        depth = rel.count("/")
        root = "../" * depth
        html = env.get_template(template).render(root=root, site=data, version=__version__, **context)
        writer.write(rel, html)
    _copy_static(writer)
    _remove_stale(out, writer)
    print(f"site: {len(jobs)} pages, {len(images)} images ({writer.changed} written, "
          f"{writer.unchanged} unchanged) in {time.time() - t0:.1f} s -> {out}")
    return out / "index.html"


def _remove_stale(out: Path, writer: SiteWriter) -> None:
    """Delete files a previous render wrote that this one did not."""
    for p in sorted(out.rglob("*"), reverse=True):
        if p.is_file() and p.resolve() not in writer.written:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


__all__ = ["build_site", "SiteData", "SiteWriter"]
