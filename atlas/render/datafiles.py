"""The data the site's scripts read: small `.js` files that assign one global.

`fetch()` of JSON is blocked on `file://`, a `<script src>` is not, so each data file is
`window.NAME = {...};`. The JSON is made safe inside a script: every `<` is written as
`\\u003c` (so `</script>` and `<!--` cannot occur) and non-ASCII as `\\uXXXX` (so U+2028
cannot end a line). The scripts build the DOM with textContent and setAttribute only.
"""
from __future__ import annotations

import json

import numpy as np

from atlas.artifacts.thumbs import SHEET_COLS, SHEET_PER
from atlas.render import names
from atlas.render.gather import SiteData
from atlas.render.views import LayerView



def js_assign(name: str, obj) -> str:
    """`window.NAME = <obj as JSON>;` safe to load with a script tag."""
    blob = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"window.{name} = {blob.replace('<', chr(92) + 'u003c')};\n"


def _round(values, digits: int = 4) -> list:
    out = []
    for v in values:
        f = float(v) if v is not None else float("nan")
        out.append(float(f"{f:.{digits}g}") if np.isfinite(f) else None)
    return out


def grid_modes(view: LayerView) -> list[dict]:
    """The thumbnails a layer grid can show, best first: {id, name, long, ...}. A mode drawn
    from sprite sheets carries the sheets' description (tiles.SheetRef.js: base, ext, per,
    cols, n, offset, slots, units when the visualized units are not 0..slots-1; site/atlas.js
    `atlasSprite` places unit u's tile): feature visualizations (seed 0 of a prior in the
    featvis sheets), the top patch and the top image (the evidence sprite strips). `heat`:
    the top image tiles with each unit's heat grid drawn over them, the grids in the data file
    `heat` (heat_data). `byImage`: one thumbnail per top image (`base + image id + ext`)."""
    refs = view.tiles
    fv = view.data.featvis
    priors = (["dgn"] if fv and "dgn" in fv.priors else []) + [p for p in (fv.priors if fv else []) if p != "dgn"]
    modes = [{"id": p, "name": fv.short(p), "long": fv.title(p), **refs[p].js()} for p in priors]
    for kind, name, long in (("patch", "top patch", "top patch"), ("top", "top image", "top image")):
        if kind in refs:
            modes.append({"id": kind, "name": name, "long": long, **refs[kind].js()})
    if "top" in refs and heat_grids(view) is not None:
        modes.append({"id": "heat", "name": "heatmap", "long": "top image with its heatmap", **refs["top"].js(),
                      "heat": names.layer_heat(view.ref["slug"])})
    if "top" not in refs:
        modes.append({"id": "top", "name": "top image", "long": "top image", "base": "img/data/",
                      "ext": "." + names.THUMB_EXT, "byImage": True})
    return modes


def heat_grids(view: LayerView) -> np.ndarray | None:
    """Each unit's heat grid over its first top image (C, h, w), the picture the grid's
    'top' tiles show; None when the evidence stage stored no heat grids."""
    ev = view.data.evidence
    pics = ev.pictures if ev is not None else None
    if pics is None or pics.heat is None or pics.heat.shape[1] == 0 or "top" not in pics.meta.get("sheets", []):
        return None
    return np.asarray(pics.heat[:, 0])


def heat_data(view: LayerView) -> dict:
    """The grid's heatmap mode data: every unit's grid, one byte per cell, as one base64
    string (unit u's grid starts at byte u*h*w); site/heat.js draws it over the tile."""
    import base64
    g = np.ascontiguousarray(heat_grids(view), dtype=np.uint8)
    return {"h": int(g.shape[1]), "w": int(g.shape[2]), "b64": base64.b64encode(g.tobytes()).decode("ascii")}


def grid_sorts(view: LayerView) -> list[dict]:
    sorts = [{"id": "unit", "name": "unit id"}, {"id": "max", "name": "max activation"}]
    if any(s and s.get("selectivity") is not None for s in view.stats):
        sorts.append({"id": "sel", "name": "selectivity"})
    if any(view.labels):
        sorts += [{"id": "label", "name": "label"}, {"id": "score", "name": "label score"}]
    return sorts


def layer_data(data: SiteData, view: LayerView) -> dict:
    c = view.ref["units"]
    has_stats = any(view.stats)
    return {
        "slug": view.ref["slug"], "short": view.ref["short"], "title": view.ref["title"], "units": c, "k": view.k,
        "max": _round(view.maxv),
        "sel": _round([s.get("selectivity") if s else None for s in view.stats]) if has_stats else None,
        "dead": [1 if s and s.get("dead") else 0 for s in view.stats] if has_stats else None,
        "label": [str(r["label"]) if r else "" for r in view.labels] if any(view.labels) else None,
        "score": _round([r.get("score") if r else None for r in view.labels], 3) if any(view.labels) else None,
        "top": [ids[0] if ids else -1 for ids in view.ids],
        "cls": view.top_class, "classNames": data.class_names,
        "modes": grid_modes(view), "sorts": grid_sorts(view),
        "unitUrl": names.unit_pattern_in_layer(view.ref["slug"]),
    }


def _norm_xy(xy: np.ndarray) -> list[int]:
    """Coordinates scaled into 0..10000 (equal aspect), flattened x0, y0, x1, y1, ..."""
    xy = np.asarray(xy, dtype=np.float64)
    ok = np.isfinite(xy).all(1)
    if not ok.any():
        return [5000] * (2 * len(xy))
    lo, hi = xy[ok].min(0), xy[ok].max(0)
    span = max(float((hi - lo).max()), 1e-12)
    scaled = (xy - lo) / span * 10000 + (10000 - (hi - lo) / span * 10000) / 2
    scaled[~ok] = 5000
    return np.round(scaled).astype(np.int64).ravel().tolist()


def tile_size(flat_xy: list[int], sample: int = 1000) -> int:
    """How big (in the 0..10000 map units) to draw each thumbnail: about the median distance
    from a point to its nearest neighbour, so dense clusters overlap little when zoomed in
    and sparse maps still show big thumbnails. Estimated on a fixed sample of points."""
    xy = np.asarray(flat_xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    if n < 2:
        return 1000
    pick = np.linspace(0, n - 1, min(n, sample)).round().astype(np.int64)
    nearest = np.full(len(pick), np.inf)
    for a in range(0, n, 8192):
        d = ((xy[pick, None, :] - xy[None, a:a + 8192, :]) ** 2).sum(-1)
        d[pick[:, None] == np.arange(a, min(n, a + 8192))[None, :]] = np.inf
        nearest = np.minimum(nearest, d.min(axis=1))
    typical = float(np.median(np.sqrt(nearest[np.isfinite(nearest)]))) if np.isfinite(nearest).any() else 0.0
    return int(np.clip(1.5 * typical, 10000 / np.sqrt(n) * 0.1, 10000 / np.sqrt(n) * 1.2))


def sheets_info(data: SiteData) -> dict:
    n = len(data.thumbs.ids) if data.thumbs is not None else 0
    return {"files": [names.data_sheet(s) for s in range(-(-n // SHEET_PER))], "per": SHEET_PER,
            "cols": SHEET_COLS, "tile": data.thumb_size}


def image_map_data(data: SiteData) -> dict:
    maps = data.maps
    ids = maps.ids
    labels = np.asarray(data.labels)[np.asarray(ids, np.int64)].tolist()
    layouts = [{"id": kind, "name": {"tsne": "t-SNE", "umap": "UMAP"}[kind], "xy": _norm_xy(maps.coords[kind])}
               for kind in ("tsne", "umap") if kind in maps.coords]
    for lay in layouts:
        lay["tile"] = tile_size(lay["xy"])
    return {"kind": "images", "n": len(labels), "layouts": layouts, "cat": labels, "catNames": data.class_names,
            "names": None, "href": names.URLS["image"].replace("{image}", "{id}"), "sheets": sheets_info(data), "ids": ids.tolist(),
            "tiles": data.slots(ids).tolist(), "strips": None}


def unit_map_data(data: SiteData, view: LayerView) -> dict:
    layer = view.data
    fv = layer.featvis
    strips = None
    if fv and fv.priors:
        prior = "dgn" if "dgn" in fv.priors else fv.priors[0]
        strips = {**view.tiles[prior].js(), "name": fv.short(prior)}   # seed 0 of a prior, from the featvis sheets
    return {"kind": "units", "n": layer.units, "layer": view.ref["short"],
            "layouts": [{"id": "units", "name": "unit map", "xy": (xy := _norm_xy(layer.unit_map)), "tile": tile_size(xy)}],
            "cat": view.top_class, "catNames": data.class_names,
            "names": [str(r["label"]) if r else "" for r in view.labels],
            "href": names.URLS["unit"].replace("{slug}", view.ref["slug"]).replace("{unit}", "{id}"), "sheets": sheets_info(data), "tiles": [int(data.slots([ids[0]])[0]) if ids else -1 for ids in view.ids],
            "strips": strips}


def search_index(data: SiteData, views: list[LayerView]) -> dict:
    return {"urls": names.URLS, "images": data.image_count, "paged": data.paged.tolist(), "layers": [{"slug": v.ref["slug"], "short": v.ref["short"], "name": v.ref["name"],
                        "units": v.ref["units"],
                        "labels": [str(r["label"]) if r else "" for r in v.labels] if any(v.labels) else None}
                       for v in views],
            "classes": [{"name": n, "href": names.class_page(i, n)} for i, n in enumerate(data.class_names)]}
