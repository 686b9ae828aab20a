"""The site's size per part, so a user can see what a static host will be asked to hold.

Parts: `units` (layer and unit pages, their data files and pictures), `views` (top images
at the display size, shared by unit and image pages), `images` (image and class pages,
data-set thumbnails), `maps` (map pages, their data and sprite sheets), `figures` (copied
unit figures), `other` (home page, search index, scripts and styles). A hard-linked file
counts its full size (a host stores a copy).
"""
from __future__ import annotations

import os
from pathlib import Path

from atlas.render.writer import CACHE_NAME

PARTS = ("units", "views", "images", "maps", "figures", "other")


def part_of(rel: str) -> str:
    """Which part a site path (relative, '/'-separated) belongs to."""
    top, _, rest = rel.partition("/")
    if top == "layers":
        return "maps" if rest.endswith(("/map.html", "/map.js")) else "units"
    if top == "img":
        sub = rest.partition("/")[0]
        return {"view": "views", "data": "images", "sheets": "maps"}.get(sub, "units")
    return {"images": "images", "classes": "images", "maps": "maps", "figures": "figures"}.get(top, "other")


def site_sizes(root: Path) -> dict[str, dict[str, int]]:
    """{part: {"bytes": n, "files": n}} over every file under `root` (the render cache excluded)."""
    out = {p: {"bytes": 0, "files": 0} for p in PARTS}
    root = Path(root)
    for folder, _, files in os.walk(root):
        for f in files:
            p = os.path.join(folder, f)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            if rel == CACHE_NAME:
                continue
            part = out[part_of(rel)]
            part["bytes"] += os.stat(p).st_size
            part["files"] += 1
    return out


def line(sizes: dict[str, dict[str, int]], units: int) -> str:
    """One line for the terminal: total and per part, and bytes per unit without image pages and maps."""
    total = sum(v["bytes"] for v in sizes.values())
    per_unit = (total - sizes["images"]["bytes"] - sizes["maps"]["bytes"]) / max(1, units)
    parts = ", ".join(f"{p} {sizes[p]['bytes'] / 1e6:.1f} MB ({sizes[p]['files']} files)" for p in PARTS)
    return f"site size: {total / 1e6:.1f} MB: {parts}; {per_unit / 1e3:.1f} kB per unit without image pages and maps"
