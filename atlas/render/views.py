"""From gathered artifacts to plain page contexts (dicts of str, int, float, None, lists).

Whole-layer work is done once, vectorized, in `LayerView` (neighbouring units, majority
classes, which images each unit keeps). Per-page work is small and done lazily by the
page's job, in the worker process that renders it. Contexts are JSON-able, so a page's
digest (for the incremental re-render) is a hash of exactly what it shows.
"""
from __future__ import annotations

import bisect
import math
from base64 import b64encode
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from atlas.render import names
from atlas.render.gather import LayerData, SiteData, featvis_ran
from atlas.render.tiles import SheetRef, tile_refs

HEAT_NAMES = {"activation": "activation map", "gradcam": "Grad-CAM map", "saliency": "saliency map"}
MIN_VIEW_CSS = 128   # a 32-px model view (CIFAR, the world) is shown this wide, pixelated
MIN_IMAGE_CSS = 256  # an image page's picture is magnified (whole factor, pixelated) to at least this
N_NEIGHBORS = 8
N_EXCITES = 6
CLASS_UNITS = 12
CLASS_IMAGES = 60


def num(v) -> float | None:
    """A float for JSON and templates; None for NaN and infinities."""
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass
class LayerView:
    """One layer, precomputed once for all its pages."""
    data: LayerData
    ref: dict                         # what any page needs to name and link the layer
    k: int
    ids: list                         # (C, k) image ids, -1 padded entries removed per unit
    values: list                      # (C, k)
    pos: list                         # (C, k, 2)
    maxv: list                        # per unit top value (None if no images)
    labels: list                      # per unit label dict or None
    stats: list                       # per unit stats dict or None
    thumb: list                       # per unit (file, sprite css or "") or None: the unit's best small picture
    neighbor_kind: str                # "map" | "overlap" | "": how neighbouring units are found
    top_class: list                   # per unit majority class of its top images, -1 if none
    class_counts: np.ndarray          # (C, classes) top-k images per class
    featvis_units: int = 0
    tiles: dict = field(default_factory=dict)   # kind (prior, "patch", "top") -> tiles.SheetRef
    extra: dict = field(default_factory=dict)
    ranks: list | None = None         # per unit the top-k ranks kept (None: all k), for boxes and heat grids
    cards: dict = field(default_factory=dict)   # unit -> what its cards share (views.card)
    _neighbors: list | None = None

    @property
    def neighbors(self) -> list:
        """Per unit [(unit, shared top images or None)]; computed when a page first needs
        it, so a re-render with nothing to redo never pays for it."""
        if self._neighbors is None:
            layer = self.data
            if self.neighbor_kind == "map":
                self._neighbors = [[(v, None) for v in row] for row in _map_neighbors(layer.unit_map, N_NEIGHBORS)]
            elif self.neighbor_kind == "overlap":
                self._neighbors = _overlap_neighbors(np.asarray(layer.topk_ids), N_NEIGHBORS)
            else:
                self._neighbors = [[] for _ in range(layer.units)]
        return self._neighbors


def layer_ref(layer: LayerData) -> dict:
    return {"slug": layer.slug, "name": layer.name, "alias": layer.alias, "short": layer.short,
            "title": layer.title, "units": layer.units, "kind": layer.kind, "shape": list(layer.shape)}


def _unit_thumb(refs: dict[str, SheetRef], u: int, top_id: int | None) -> tuple[str, str] | None:
    """The unit's best small picture: DGN seed 0, else another prior, else its top patch,
    else its top image (tiles of the stages' sheets), else the top image's thumbnail (a
    file of its own: no sprite css)."""
    for kind in ["dgn"] + [k for k in refs if k not in ("dgn", "patch", "top")] + ["patch", "top"]:
        ref = refs.get(kind)
        if ref is not None and ref.has(u):
            return ref.tile(u)
    if top_id is not None:
        return names.data_thumb(top_id), ""
    return None


def patch_style(geometry, box, src: str) -> str:
    """CSS that shows a top patch as the window of the top image's view at `box`: the view
    as a background, scaled so the window fills the element, shifted to the window's corner
    (gray where the window lies beyond the image). The same window artifacts.pictures.Pictures.patch
    cuts, so the page shows the stored pixels one to one when the patch side equals the window."""
    wy, wx, sy, sx = geometry.window_of(box)
    s = geometry.input_size
    px = 100 * wx / (s - sx) if s != sx else 0.0
    py = 100 * wy / (s - sy) if s != sy else 0.0
    return (f"background-image:url('{src}');background-size:{100 * s / sx:.6g}% {100 * s / sy:.6g}%;"
            f"background-position:{px:.6g}% {py:.6g}%")


def heat_attrs(heat: np.ndarray) -> dict:
    """A heat grid (h, w) uint8 as the data the page's script draws over the view."""
    g = np.ascontiguousarray(heat, dtype=np.uint8)
    return {"h": g.shape[0], "w": g.shape[1], "b64": b64encode(g.tobytes()).decode("ascii")}


def _map_neighbors(coords: np.ndarray, n: int) -> list:
    """For each point its n nearest other points in 2-D; ties go to the lower index."""
    c = len(coords)
    n = min(n, c - 1)
    if n <= 0:
        return [[] for _ in range(c)]
    xy = np.nan_to_num(np.asarray(coords, dtype=np.float64), nan=1e12, posinf=1e12, neginf=-1e12)
    if c > 1500:  # a k-d tree beats the blocks of distances once layers have thousands of units
        from scipy.spatial import cKDTree
        _, idx = cKDTree(xy).query(xy, k=n + 1)
        return [[v for v in row if v != u][:n] for u, row in enumerate(idx.tolist())]
    xy = xy - xy.mean(0)
    sq = (xy ** 2).sum(1)
    rows: list = []
    for a in range(0, c, 1024):
        b = min(c, a + 1024)
        d = sq[a:b, None] + sq[None, :] - 2 * xy[a:b] @ xy.T
        d[np.arange(b - a), np.arange(a, b)] = np.inf
        part = np.argpartition(d, n - 1, axis=1)[:, :n] if n < c - 1 else np.tile(np.arange(c), (b - a, 1))
        order = np.lexsort((part, np.take_along_axis(d, part, 1)), axis=1)
        rows += np.take_along_axis(part, order, 1).tolist()
    return [[v for v in row if v != u][:n] for u, row in enumerate(rows)]


def _overlap_neighbors(ids: np.ndarray, n: int) -> list:
    """For each unit [(unit, shared images)] for the units sharing most of its top-k images
    (ties: lower unit first)."""
    from scipy import sparse
    c, k = ids.shape
    valid = ids >= 0
    rows = np.repeat(np.arange(c), k)[valid.ravel()]
    images, cols = np.unique(ids.ravel()[valid.ravel()], return_inverse=True)  # only images in some top-k
    a = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols.ravel())), shape=(c, len(images)))
    shared = (a @ a.T).tocsr()
    out = []
    for u in range(c):
        start, end = shared.indptr[u], shared.indptr[u + 1]
        cols, counts = shared.indices[start:end], shared.data[start:end]
        keep = cols != u
        cols, counts = cols[keep], counts[keep]
        order = np.lexsort((cols, -counts))[:n]
        out.append(list(zip(cols[order].tolist(), counts[order].tolist())))
    return out


def make_layer_view(data: SiteData, layer: LayerData) -> LayerView:
    ids = np.asarray(layer.topk_ids)
    values = np.asarray(layer.topk_values, dtype=np.float64)
    c, k = ids.shape
    labels_of_image = np.asarray(data.labels, dtype=np.int64)
    n_classes = max(1, len(data.class_names))
    top_labels = np.where(ids >= 0, labels_of_image[np.clip(ids, 0, None)], -1)
    flat = (np.arange(c)[:, None] * n_classes + np.clip(top_labels, 0, None))[top_labels >= 0]
    class_counts = np.bincount(flat, minlength=c * n_classes).reshape(c, n_classes).astype(
        np.int16 if k < 2 ** 15 else np.int32)  # (units x classes) stays small for 1000-class models
    top_class = np.where(class_counts.max(1) > 0, class_counts.argmax(1), -1).tolist()
    ids_l, vals_l, pos_l = ids.tolist(), values.tolist(), np.asarray(layer.topk_pos).tolist()
    keep = [[j for j in range(k) if ids_l[u][j] >= 0] for u in range(c)] if (ids < 0).any() else None
    if keep is not None:
        ids_l = [[ids_l[u][j] for j in keep[u]] for u in range(c)]
        vals_l = [[vals_l[u][j] for j in keep[u]] for u in range(c)]
        pos_l = [[pos_l[u][j] for j in keep[u]] for u in range(c)]
    maxv = [num(v[0]) if v else None for v in vals_l]
    ev = layer.evidence
    labels = ev.labels if ev else [None] * c
    stats = ev.stats if ev else [None] * c
    refs = tile_refs(layer)
    thumb = [_unit_thumb(refs, u, ids_l[u][0] if ids_l[u] else None) for u in range(c)]
    kind = "map" if layer.unit_map is not None else "overlap" if c > 1 else ""
    extra: dict = {}
    if ev is not None and ev.hist is not None:
        extra = {"hist_peak": ev.hist.max(axis=1).tolist() if ev.hist.shape[1] else [0] * c,
                 "hist_total": ev.hist.sum(axis=1).tolist(),
                 "hist": np.asarray(ev.hist), "hist_edges": np.asarray(ev.hist_edges)}
    pics = ev.pictures if ev is not None else None
    if pics is not None:  # plain arrays over the memory maps: a page indexes them a dozen times
        extra["boxes"] = np.asarray(pics.boxes)
        extra["heat"] = np.asarray(pics.heat) if pics.heat is not None else None
    return LayerView(data=layer, ref=layer_ref(layer), k=k, extra=extra, ids=ids_l, values=vals_l, pos=pos_l, maxv=maxv,
                     labels=labels, stats=stats, thumb=thumb, neighbor_kind=kind,
                     top_class=top_class, class_counts=class_counts, tiles=refs,
                     featvis_units=layer.featvis.units if layer.featvis else 0, ranks=keep)


def class_name(data: SiteData, label: int) -> str:
    names_ = data.class_names
    return names_[label] if 0 <= label < len(names_) else ""


def fmt(v, spec: str = ".3g") -> str:
    """A number as the pages show it; '–' for missing or non-finite."""
    if v is None:
        return "–"
    f = float(v)
    return format(f, spec) if math.isfinite(f) else "–"


def card(view: LayerView, u: int, note: str = "", root: str = "") -> dict:
    """A link to a unit as other pages show it: thumbnail (`sprite`: the css of a sheet's
    tile, "" for a file of its own), name, label, a note. URLs in contexts carry the page's
    `root` prefix, so templates print each one once."""
    base = view.cards.get(u)
    if base is None:   # what every card of the unit shares, made once per unit
        lab, thumb = view.labels[u], view.thumb[u]
        base = view.cards[u] = (names.unit_page(view.ref["slug"], u), f"{view.ref['short']}:{u}",
                                str(lab["label"]) if lab else "", thumb[0] if thumb else None,
                                thumb[1] if thumb else "")
    href, name, label, src, sprite = base
    return {"href": root + href, "name": name, "label": label, "note": note,
            "src": root + src if src is not None else None, "sprite": sprite}


def hist_path(counts: np.ndarray, peak: float, width: int = 200, height: int = 60) -> str:
    """An SVG path of a histogram's bars (as a step outline), scaled so `peak` is full height."""
    counts = np.asarray(counts, dtype=np.float64)
    h = np.round(height - (counts / peak * (height - 2) if peak > 0 else counts * 0), 1)
    steps = _hist_steps(len(counts), width)
    return "".join([f"M0 {height}", *[f"V{y:g}{x}" for y, x in zip(h.tolist(), steps)], f"V{height}Z"])


@lru_cache(maxsize=64)
def _hist_steps(bins: int, width: int) -> tuple[str, ...]:
    """The bars' right edges ("H..."), the same for every unit's histogram of a layer."""
    step = width / max(1, bins)
    return tuple(f"H{(i + 1) * step:.4g}" for i in range(bins))


def field_notes(meta: dict) -> list[str]:
    """What the page must say about the receptive field: token patches and where the class
    token went, or the effective field used where every analytic field is the whole image."""
    notes = ((meta or {}).get("receptive_field") or {}).get("notes") or []
    return [str(n) for n in notes if "token" in n or "effective field" in n]


def unit_context(data: SiteData, view: LayerView, u: int, root: str = "../../") -> dict:
    layer, slug, short = view.data, view.ref["slug"], view.ref["short"]
    labels = data.label_list
    ev = layer.evidence
    pics = ev.pictures if ev is not None else None
    whole = None if pics is None else pics.meta.get("patches") == "view"   # the field is the whole image
    top = []
    boxes = view.extra["boxes"][u].tolist() if whole is False else None
    heat = view.extra["heat"][u] if pics is not None and pics.heat is not None else None
    for j, (i, v) in enumerate(zip(view.ids[u], view.values[u])):
        src = root + (names.view_file(i, pics.ext) if pics else names.data_thumb(i))
        rank = view.ranks[u][j] if view.ranks else j
        top.append({"id": i, "href": root + names.image_page(i), "src": src,
                    "cap": f"#{j + 1} · {fmt(v)}", "cls": class_name(data, labels[i]),
                    "patch": patch_style(pics.geometry, boxes[rank], src) if boxes is not None else None,
                    "heat": heat_attrs(heat[rank]) if heat is not None else None})
    maxv = view.maxv[u]
    featvis = []
    fv = layer.featvis
    if fv and featvis_ran(fv, u):
        for prior in fv.priors:
            acts = fv.acts[prior][u].tolist()
            ref = view.tiles[prior]
            featvis.append({"prior": prior, "name": fv.title(prior),
                            "iterations": (fv.meta.get("iterations") or {}).get(prior),
                            "src": root + ref.src(u),
                            "seeds": [{"sprite": ref.tile(u, j)[1],
                                       "alt": f"{short} unit {u}, {prior} seed {j}",
                                       "cap": f"seed {j} · {fmt(a)}",
                                       "rel": f"({fmt(a / maxv, '.2f')}×)" if maxv and num(a) is not None else ""}
                                      for j, a in enumerate(acts[:fv.seeds])]})
    downloads = []
    for g in (fv.sheets if featvis else []):   # each strip of the unit (its priors of one tile size), to save
        ref = view.tiles[g["parts"][0][0]]
        if ref.has(u):
            src, x, y, tx, ty = ref.place(u, -ref.offset)
            downloads.append({"src": root + src, "x": x, "y": y, "n": ref.n, "tx": tx, "ty": ty,
                              "file": f"{names.safe_name(short)}-unit{u}-{g['name']}.png",
                              "what": " · ".join(fv.short(p) for p, _, _ in g["parts"])})
    hist = None
    if ev is not None and ev.hist is not None:
        edges = view.extra["hist_edges"][u]
        peak, total = view.extra["hist_peak"][u], view.extra["hist_total"][u]
        hist = {"path": hist_path(view.extra["hist"][u], peak), "lo": fmt(edges[0]), "hi": fmt(edges[-1]), "peak": peak,
                "total": total, "bins": int(ev.hist.shape[1])}
    stats = view.stats[u]
    if stats:
        stats = {"mean": fmt(stats.get("mean")), "std": fmt(stats.get("std")),
                 "selectivity": fmt(stats.get("selectivity")),
                 "dead": bool(stats.get("dead", False)), "nonfinite": int(stats.get("nonfinite", 0) or 0),
                 "top_classes": " · ".join(f"{n} {100 * float(sh):.0f}%" for n, sh in (stats.get("top_classes") or []))}
    lab = view.labels[u]
    label = {"text": str(lab["label"]), "score": fmt(lab.get("score")), "method": str(lab.get("method") or "")} \
        if lab else None
    figure = None
    if u in layer.figures:
        f = layer.figures[u]
        figure = {"pdf": root + names.figure_file(slug, u, "pdf") if "pdf" in f else None,
                  "png": root + names.figure_file(slug, u, "png") if "png" in f else None}
    return {
        "layer": view.ref, "unit": u,
        "prev": u - 1 if u > 0 else None, "next": u + 1 if u + 1 < layer.units else None,
        "label": label, "stats": stats, "max": fmt(maxv), "top": top,
        "nonfinite": int(layer.nonfinite[u]) if layer.nonfinite is not None else (stats or {}).get("nonfinite", 0),
        "dead": bool(layer.dead[u]) if layer.dead is not None else bool((stats or {}).get("dead")),
        "n_images": data.image_count,
        "patch": pics is not None, "heat": pics is not None and pics.heat is not None, "whole_field": bool(whole),
        "field_notes": field_notes(pics.meta if pics else {}),
        "patch_px": pics.geometry.patch_size if pics else 0, "view_px": pics.geometry.display_size if pics else 0,
        "view_css": max(pics.geometry.display_size, MIN_VIEW_CSS) if pics else 0,  # small inputs shown magnified
        "pixelated": bool(pics and pics.geometry.patch_size > max(pics.geometry.window) * pics.geometry.display_size
                          / pics.geometry.input_size),
        "heat_kind": HEAT_NAMES.get(str(pics.meta.get("heatmap", "")), "") if pics else "",
        "featvis": featvis, "downloads": downloads, "crop": ", ".join(map(str, fv.meta["crop"])) if fv and featvis_ran(fv, u)
        and fv.meta.get("crop") else "",
        "hist": hist, "figure": figure,
        "neighbors": [card(view, v, f"{shared} shared" if shared else "", root) for v, shared in view.neighbors[u]],
        "neighbor_kind": view.neighbor_kind, "missing": _missing(layer), "on_map": layer.unit_map is not None,
    }


def _missing(layer: LayerData) -> list[str]:
    """What this run did not compute for the layer, to say so on its pages."""
    out = []
    if layer.featvis is None:
        out.append("feature visualizations")
    ev = layer.evidence
    if ev is None:
        out.append("patches, heatmaps, histograms and labels")
    else:
        out += [name for name, have in (("patches", ev.patches), ("heatmaps", ev.heatmaps),
                                        ("histograms", ev.hist is not None)) if not have]
    return out


def topk_membership(views: list[LayerView]) -> list[dict[int, list[tuple[float, int]]]]:
    """For each layer: image id -> [(value, unit)] for the units that keep the image in their
    top-k, highest value first (ties: lower unit). Only images in some top-k appear."""
    out = []
    for view in views:
        ids = np.asarray(view.data.topk_ids)
        keep = ids >= 0
        units = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)[keep]
        images, values = ids[keep], np.asarray(view.data.topk_values, np.float64)[keep]
        rank = np.where(np.isfinite(values), -values, np.inf)       # NaN (-inf) and +inf last
        order = np.lexsort((units, rank, images))                   # by image, then value, then unit
        images, pairs = images[order], list(zip(values[order].tolist(), units[order].tolist()))
        starts = np.flatnonzero(np.r_[True, images[1:] != images[:-1]]).tolist() + [len(pairs)]
        out.append({i: pairs[a:b] for i, a, b in zip(images[starts[:-1]].tolist(), starts[:-1], starts[1:])})
    return out


def image_context(data: SiteData, views: list[LayerView], member: list, paged: list[int], i: int,
                  root: str = "../") -> dict:
    labels = data.label_list
    neighbors = []
    maps = data.maps
    row = maps.row_of(i) if maps is not None and maps.neighbors is not None else None
    if row is not None:
        nb = maps.neighbors[row].tolist()
        ds = maps.distances[row].tolist() if maps.distances is not None else [None] * len(nb)
        neighbors = [{"id": j, "d": fmt(d), "cls": class_name(data, int(labels[j])),
                      "href": root + names.image_page(j), "src": root + names.data_thumb(j)}
                     for j, d in zip(nb, ds) if j >= 0]
    excites = []
    for li, view in enumerate(views):
        entries = member[li].get(i, [])
        excites.append({"layer": view.ref,
                        "units": [card(view, u, fmt(v), root) for v, u in entries[:N_EXCITES]],
                        "topk_of": [{"href": root + names.unit_page(view.ref["slug"], u),
                                     "name": f"{view.ref['short']}:{u}"}
                                    for _, u in sorted(entries[N_EXCITES:], key=lambda e: e[1])[:24]],
                        "topk_count": len(entries)})
    label = int(labels[i])
    at = bisect.bisect_left(paged, i)  # paged: data.paged as a list
    src, shown, px = root + names.data_thumb(i), f"thumbnail, {data.thumb_size} px", data.thumb_size
    for li, view in enumerate(views):
        pics = view.data.evidence.pictures if view.data.evidence is not None else None
        if pics is not None and member[li].get(i):
            px = pics.geometry.display_size
            src, shown = root + names.view_file(i, pics.ext), f"the model's view, {px}×{px} px ({pics.meta.get('format', '')})"
            break
    zoom = max(1, MIN_IMAGE_CSS // max(px, 1))   # a small picture is magnified by a whole factor, pixel for pixel
    if zoom > 1:
        shown += f", magnified {zoom}×"
    return {"id": i, "cls": class_name(data, label), "shown": shown, "cls_href": root + names.class_page(label, data.class_names[label])
            if label >= 0 and label < len(data.class_names) else None,
            "desc": data.images.desc(i), "src": src, "css_px": px * zoom, "pixelated": zoom > 1, "neighbors": neighbors,
            "excites": excites, "has_map": bool(maps and maps.coords),
            "prev": paged[at - 1] if at > 0 else None,
            "next": paged[at + 1] if at + 1 < len(paged) else None}


def class_context(data: SiteData, views: list[LayerView], label: int, images: list[int], root: str = "../",
                  total: int | None = None) -> dict:
    """A class page: its units, and its paged `images` (of `total` images in the class)."""
    units = []
    for view in views:
        counts = view.class_counts[:, label] if view.class_counts.shape[1] > label else np.zeros(0)
        cand = np.flatnonzero(counts > 0)
        if len(cand):
            maxv = np.array([view.maxv[u] if view.maxv[u] is not None else -np.inf for u in cand])
            cand = cand[np.lexsort((cand, -maxv, -counts[cand]))][:CLASS_UNITS]
        units.append({"layer": view.ref, "k": view.k,
                      "units": [card(view, int(u), f"{int(counts[u])}/{view.k} top images", root) for u in cand]})
    return {"label": label, "name": data.class_names[label], "count": len(images) if total is None else total,
            "paged": len(images), "images": [{"id": i, "src": root + names.data_thumb(i), "href": root + names.image_page(i)}
                       for i in images[:CLASS_IMAGES]],
            "units": units, "has_map": bool(data.maps and data.maps.coords)}


def layer_summary(view: LayerView) -> dict:
    """What the home page says about a layer: what was computed for it."""
    layer = view.data
    fv, ev = layer.featvis, layer.evidence
    return {**view.ref, "k": view.k,
            "featvis": {"priors": fv.priors, "seeds": fv.seeds, "units": fv.units} if fv else None,
            "evidence": {"patches": ev.patches, "heatmaps": ev.heatmaps,
                         "hist": ev.hist is not None,
                         "labeled": sum(1 for r in ev.labels if r)} if ev else None,
            "unit_map": layer.unit_map is not None, "figures": len(layer.figures)}


def home_context(data: SiteData, views: list[LayerView]) -> dict:
    order = {"dataset": 0, "topk": 1, "featvis": 2, "evidence": 3, "maps": 4, "thumbs": 5, "figures": 6}
    ranked = sorted(data.stages, key=lambda s: (order.get(s.name.split("/")[0], 9), s.name))
    stages = [{"name": s.name, "key": s.key, "finished": s.finished, "seconds": num(s.seconds)
               if s.seconds is not None else None, "files": s.files, "bytes": s.bytes,
               "summary": [[str(k), str(v)] for k, v in sorted(s.summary.items())]} for s in ranked]
    config = [[str(k), str(v)] for k, v in sorted(data.config.items())]
    classes = [{"name": n, "href": names.class_page(i, n)} for i, n in enumerate(data.class_names)]
    return {"layers": [layer_summary(v) for v in views], "stages": stages, "config": config,
            "skipped": [{"path": str(s.get("path", "")), "reason": str(s.get("reason", ""))} for s in data.skipped],
            "dataset": {"name": str(data.dataset.get("name", "")), "fingerprint": str(data.dataset.get("fingerprint", "")),
                        "count": data.image_count, "classes": len(data.class_names),
                        "paged": int(len(data.paged))},
            "classes": classes, "model": str(data.config.get("model", "")), "weights": data.weights,
            "units": sum(v.ref["units"] for v in views), "has_map": bool(data.maps and data.maps.coords),
            "last_finished": max((s.finished for s in data.stages), default=""),
            "maps_meta": [[str(k), str(v)] for k, v in sorted((data.maps.meta if data.maps else {}).items())]}
