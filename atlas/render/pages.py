"""Which pages and images a site has, and the context each template gets."""
from __future__ import annotations

from typing import Callable

import numpy as np

from atlas.render.gather import LayerData, SiteData


def unit_url(layer: LayerData, unit: int) -> str:
    return f"layers/{layer.slug}/{unit}.html"


def image_url(image_id: int) -> str:
    return f"images/{image_id}.html"


def data_png(image_id: int) -> str:
    return f"img/data/{image_id}.png"


def unit_rows(data: SiteData, layer: LayerData) -> list[dict]:
    """One plain dict per unit: what the grid and the unit page show."""
    names = data.dataset["class_names"]
    items = data.dataset["items"]
    rows = []
    for u in range(layer.units):
        top = [{"id": int(i), "value": float(v), "pos": [int(p) for p in pos],
                "label": names[items[int(i)]["label"]] if items[int(i)]["label"] >= 0 else "",
                "desc": items[int(i)]["desc"]}
               for i, v, pos in zip(layer.topk_ids[u], layer.topk_values[u], layer.topk_pos[u]) if i >= 0]
        best = top[0]["value"] if top else float("nan")
        nonfinite = int(layer.extras["nonfinite"][u]) if "nonfinite" in layer.extras else 0
        rows.append({"unit": u, "top": top, "max": best, "nonfinite": nonfinite,
                     "dead": not best > 0})  # never above zero on any image (or no finite value)
    return rows


def collect(data: SiteData) -> list[tuple[str, str, dict]]:
    jobs: list[tuple[str, str, dict]] = [("index.html", "index.html", {})]
    for layer in data.layers:
        rows = unit_rows(data, layer)
        jobs.append((f"layers/{layer.slug}/index.html", "layer.html", {"layer": layer, "rows": rows}))
        for row in rows:
            u = row["unit"]
            jobs.append((unit_url(layer, u), "unit.html", {
                "layer": layer, "row": row,
                "prev": f"{u - 1}.html" if u > 0 else None,
                "next": f"{u + 1}.html" if u + 1 < layer.units else None}))
    for item in data.dataset["items"]:
        jobs.append((image_url(item["id"]), "image.html", {"item": item, "excites": top_units(data, item["id"])}))
    return jobs


def top_units(data: SiteData, image_id: int, n: int = 6) -> list[dict]:
    """The units of each layer this image excites most, by their per-image maximum."""
    out = []
    for layer in data.layers:
        acts = np.asarray(layer.maxact[image_id], dtype=np.float64)
        order = np.argsort(-acts, kind="stable")[:n]
        out.append({"layer": layer, "units": [{"unit": int(u), "value": float(acts[u])} for u in order]})
    return out


def image_assets(data: SiteData) -> list[tuple[str, Callable[[], np.ndarray]]]:
    thumbs = data.thumbs
    return [(data_png(i), (lambda i=i: np.asarray(thumbs[i]))) for i in range(len(thumbs))]
