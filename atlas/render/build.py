"""Build the static site: gather all data first, then render every file as a job.

Pages use relative URLs only, so the site works from file:// and from any sub-path of a
static host; there is no CDN and no outside font. The Jinja environment is made once
(StrictUndefined, autoescape on) and compiled before the worker processes fork. Every
output path is claimed up front (a path claimed twice or outside the site folder is an
error before anything is written); files whose inputs did not change are not produced
again, and files whose bytes did not change are not touched.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from atlas import __version__
from atlas.memory import image_peak_mib
from atlas.render import assets, budget, datafiles, names, views
from atlas.render.gather import SiteData, gather
from atlas.render.jobs import Job, Maker, default_workers, digest, run_jobs
from atlas.render.writer import RenderCache, SiteWriter, remove_stale
from atlas.resources import resource_dir

TEMPLATES = ("nav.html", "index.html", "layer.html", "unit.html", "image.html", "class.html", "map.html")


def _fmt(v, spec: str = ".3g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(float(v), spec)


class PageEnvironment(Environment):
    """Page contexts are plain dicts, so `page.label` looks the key up first. (Jinja tries
    the attribute first; a dict has none, so every such lookup raised and caught an
    AttributeError: a few percent of a large site's render.)"""

    def getattr(self, obj, attribute):
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return Environment.getattr(self, obj, attribute)


def make_env() -> Environment:
    env = PageEnvironment(loader=FileSystemLoader(str(resource_dir("templates"))),
                      autoescape=select_autoescape(["html", "xml"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters["fmt"] = _fmt
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.0f}%"
    env.filters["bytes"] = _human_bytes
    return env


def _human_bytes(n) -> str:
    n = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _code_fingerprint() -> str:
    """Changes when templates, front-end files or the renderer's code change."""
    h = hashlib.blake2b(digest_size=12)
    for folder, pattern in ((resource_dir("templates"), "*.html"), (resource_dir("site"), "*"),
                            (Path(__file__).parent, "*.py")):
        for f in sorted(folder.rglob(pattern)):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(folder).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def site_globals(data: SiteData, layer_views: list[views.LayerView]) -> dict:
    """What every page shows: title, navigation, footer."""
    return {"title": data.title, "version": __version__, "model": str(data.config.get("model", "")),
            "dataset": str(data.dataset.get("name", "")),
            "layers": [{"slug": v.ref["slug"], "short": v.ref["short"], "title": v.ref["title"]} for v in layer_views],
            "has_map": bool(data.maps and data.maps.coords)}


@dataclass
class BuildReport:
    out: Path
    pages: int = 0
    files: int = 0
    counts: dict = field(default_factory=dict)
    removed: int = 0
    seconds: dict = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())

    def line(self) -> str:
        done = {k: sum(v.values()) - v["cached"] for k, v in self.counts.items()}
        return (f"site: {self.pages} pages, {self.files} files ({', '.join(f'{n} {k}' for k, n in done.items())} "
                f"produced, rest up to date; {self.removed} stale removed) in {self.total_s:.1f} s -> {self.out}")


class PageMaker(Maker):
    """Pages from one template; arg = (root, x) where ctx_fn(x, root) builds the page's context.
    The cheap key is the identity of the stages the pages read; the exact fingerprint is
    the digest of the context, built only when that key changed."""
    kind = "page"

    def __init__(self, planner: "Planner", template: str, ctx_fn: Callable, inputs: str):
        self.planner, self.template, self.ctx_fn, self.inputs = planner, template, ctx_fn, inputs
        self._ctx: dict = {}

    def _context(self, arg) -> dict:
        if arg not in self._ctx:
            self._ctx[arg] = self.ctx_fn(arg[1], arg[0])
        return self._ctx[arg]

    def key(self, arg) -> str:
        return self.inputs

    def content(self, arg) -> str:
        return digest(self.template, arg[0], self._context(arg))

    def produce(self, arg) -> str:
        root, page = arg[0], self._context(arg)
        nav = self.planner.nav(root, (page.get("layer") or {}).get("slug", ""))
        return self.planner.env.get_template(self.template).render(root=root, site=self.planner.site,
                                                                   page=page, nav=nav)

    def release(self, arg) -> None:
        self._ctx.pop(arg, None)


class DataMaker(Maker):
    """One `window.NAME = ...;` data file; cheap enough to build and compare every time."""
    kind = "data"

    def __init__(self, name: str, obj_fn: Callable[[], object]):
        self.name, self.obj_fn, self._text = name, obj_fn, None

    def _t(self) -> str:
        if self._text is None:
            self._text = datafiles.js_assign(self.name, self.obj_fn())
        return self._text

    def key(self, arg) -> str:
        return hashlib.blake2b(self._t().encode(), digest_size=12).hexdigest()

    def produce(self, arg) -> str:
        return self._t()

    def release(self, arg) -> None:
        self._text = None


class Planner:
    """Collects jobs; every path is claimed when added."""

    def __init__(self, writer: SiteWriter, env: Environment, site: dict):
        self.writer, self.env, self.site = writer, env, site
        self.jobs: list[Job] = []
        self._navs: dict[tuple[str, str], Markup] = {}

    def nav(self, root: str, cur: str) -> Markup:
        """The header's layer links, rendered once per (depth, current layer)."""
        key = (root, cur)
        if key not in self._navs:
            self._navs[key] = Markup(self.env.get_template("nav.html").render(root=root, cur=cur, site=self.site))
        return self._navs[key]

    def add(self, job: Job) -> None:
        self.writer.claim(job.rel)
        self.jobs.append(job)

    def pages(self, template: str, ctx_fn: Callable, inputs: str, items: list[tuple[str, object]]) -> None:
        """One page per (path, x) in items, all from `template`."""
        maker = PageMaker(self, template, ctx_fn, inputs)
        for rel, x in items:
            self.add(Job(rel, maker, ("../" * rel.count("/"), x)))

    def page(self, rel: str, template: str, ctx_fn: Callable[[], dict], inputs: str) -> None:
        self.pages(template, lambda _x, _root: ctx_fn(), inputs, [(rel, None)])

    def data(self, rel: str, name: str, obj_fn: Callable[[], object]) -> None:
        self.add(Job(rel, DataMaker(name, obj_fn)))


def plan_site(data: SiteData, planner: Planner, layer_views: list[views.LayerView]) -> None:
    """Every page, data file and asset of the site."""
    has_image_map = bool(data.maps and data.maps.coords)
    any_unit_map = any(layer.unit_map is not None for layer in data.layers)
    everything = data.inputs_key()
    planner.page("index.html", "index.html", lambda: views.home_context(data, layer_views), everything)
    planner.data("search.js", "ATLAS_SEARCH", lambda: datafiles.search_index(data, layer_views))
    for view in layer_views:
        slug, inputs = view.ref["slug"], data.inputs_key(view.data.name)
        planner.page(names.layer_index(slug), "layer.html", lambda v=view: layer_page(data, v), inputs)
        planner.data(f"layers/{slug}/data.js", "ATLAS_LAYER", lambda v=view: datafiles.layer_data(data, v))
        if datafiles.heat_grids(view) is not None and "top" in view.tiles:
            planner.data(names.layer_heat(slug), "ATLAS_HEAT", lambda v=view: datafiles.heat_data(v))
        planner.pages("unit.html", lambda u, r, v=view: views.unit_context(data, v, u, r), inputs,
                      [(names.unit_page(slug, u), u) for u in range(view.ref["units"])])
        if view.data.unit_map is not None:
            planner.page(names.unit_map_page(slug), "map.html", lambda v=view: map_page(data, v), inputs)
            planner.data(f"layers/{slug}/map.js", "ATLAS_MAP", lambda v=view: datafiles.unit_map_data(data, v))
    member = views.topk_membership(layer_views)
    paged = data.paged.tolist()  # only images someone can reach get a page (see SiteData.paged)
    planner.pages("image.html", lambda i, r: views.image_context(data, layer_views, member, paged, i, r), everything,
                  [(names.image_page(i), i) for i in paged])
    labels = np.asarray(data.labels)
    by_class: dict[int, list[int]] = {}
    for i in paged:
        by_class.setdefault(int(labels[i]), []).append(i)
    class_total = dict(enumerate(data.images.class_counts()[:len(data.class_names)].tolist()))
    planner.pages("class.html", lambda lb, r: views.class_context(data, layer_views, lb, by_class.get(lb, []), r,
                                                                  class_total.get(lb, 0)),
                  everything, [(names.class_page(lb, cname), lb) for lb, cname in enumerate(data.class_names)])
    if has_image_map:
        planner.page("maps/index.html", "map.html", lambda: map_page(data, None), everything)
        planner.data("maps/data.js", "ATLAS_MAP", lambda: datafiles.image_map_data(data))
    for job in (assets.data_image_jobs(data, with_sheets=has_image_map or any_unit_map)
                + assets.layer_image_jobs(data) + assets.evidence_image_jobs(data) + assets.figure_jobs(data) + assets.static_jobs()):
        planner.add(job)


def layer_page(data: SiteData, view: views.LayerView) -> dict:
    summary = views.layer_summary(view)
    modes = datafiles.grid_modes(view)
    return {"layer": view.ref, "summary": summary, "modes": modes, "heat": any("heat" in m for m in modes),
            "sorts": datafiles.grid_sorts(view), "labels": any(view.labels),
            "stats": any(view.stats), "on_map": view.data.unit_map is not None}


def map_page(data: SiteData, view: views.LayerView | None) -> dict:
    if view is None:
        maps = data.maps
        return {"kind": "images", "layer": None, "count": data.image_count,
                "layouts": [k for k in ("tsne", "umap") if k in maps.coords],
                "layout_text": " or ".join(n for k, n in (("tsne", "t-SNE"), ("umap", "UMAP")) if k in maps.coords),
                "classes": data.class_names, "meta": [[str(k), str(v)] for k, v in sorted(maps.meta.items())]}
    return {"kind": "units", "layer": view.ref, "count": view.ref["units"], "layouts": ["units"], "layout_text": "",
            "classes": data.class_names, "meta": []}


def render_site(run_dir: Path, out: Path | None = None, workers: int | None = None,
                force: bool = False) -> BuildReport:
    """Render `run_dir`'s artifacts into `out` (default `run_dir/site`); returns what was done."""
    t0 = time.perf_counter()
    data = gather(Path(run_dir))
    out = Path(out or Path(run_dir) / "site")
    out.mkdir(parents=True, exist_ok=True)
    report = BuildReport(out=out)
    t1 = time.perf_counter()
    report.seconds["gather"] = t1 - t0
    env = make_env()
    for t in TEMPLATES:
        env.get_template(t)  # compile once, before the workers fork
    layer_views = [views.make_layer_view(data, layer) for layer in data.layers]
    site = site_globals(data, layer_views)
    writer = SiteWriter(out)
    planner = Planner(writer, env, site)
    plan_site(data, planner, layer_views)
    cache = RenderCache(out, digest(__version__, _code_fingerprint(), site))
    if not cache.usable or force:  # every page will be rendered: compute shared data once, before forking
        data.label_list
        for view in layer_views:
            view.neighbors
    t2 = time.perf_counter()
    report.seconds["plan"] = t2 - t1
    try:
        entries, report.counts = run_jobs(planner.jobs, writer, cache.usable,
                                          workers or default_workers(len(planner.jobs)), force)
    finally:
        writer.finish()
    t3 = time.perf_counter()
    report.seconds["render"] = t3 - t2
    report.removed = remove_stale(writer, cache.previous, set(entries))
    cache.save(entries)
    report.pages = sum(1 for j in planner.jobs if j.kind == "page")
    report.files = len(planner.jobs)
    report.seconds["finish"] = time.perf_counter() - t3
    return report


def build_site(run_dir: Path, out: Path | None = None, workers: int | None = None, force: bool = False) -> Path:
    """Render `run_dir`'s artifacts into `run_dir/site` (or `out`); returns index.html."""
    report = render_site(run_dir, out, workers, force)
    peak = image_peak_mib()
    print(report.line() + ("" if peak is None else f"; this process's peak memory {peak:.0f} MiB"), flush=True)
    units = sum(int(layer.get("units", 0)) for layer in _layers(Path(run_dir)))
    print(budget.line(budget.site_sizes(report.out), units), flush=True)
    return report.out / "index.html"


def _layers(run_dir: Path) -> list[dict]:
    path = run_dir / "stages" / "topk" / "layers.json"
    return json.loads(path.read_text()) if path.is_file() else []


__all__ = ["build_site", "render_site", "BuildReport", "SiteData", "SiteWriter", "make_env"]
