"""Safe file names for strings that come from users (layer names, class folders)."""
from __future__ import annotations

import hashlib
import re

from atlas.artifacts.thumbs import EXT as THUMB_EXT

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, max_len: int = 60) -> str:
    """A file name made of [A-Za-z0-9._-] only; a hash keeps distinct inputs distinct."""
    clean = _SAFE.sub("_", text).strip("._") or "x"
    if clean == text and len(text) <= max_len and not text.startswith("."):
        return clean
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{clean[:max_len]}-{digest}"


# Site paths, relative to the site root: the one URL scheme of the site. Pages prefix them
# with their own `root` ("../.."); the browser code gets URLS as data (search.js, data.js,
# map.js) and fills the same patterns with `atlasUrl`, so no URL is built in two places.
URLS = {
    "layer": "layers/{slug}/index.html",
    "unit": "layers/{slug}/{unit}.html",
    "unit_map": "layers/{slug}/map.html",
    "image": "images/{image}.html",
}


def layer_index(slug: str) -> str:
    return URLS["layer"].format(slug=slug)


def unit_page(slug: str, unit: int) -> str:
    return URLS["unit"].format(slug=slug, unit=unit)


def unit_map_page(slug: str) -> str:
    return URLS["unit_map"].format(slug=slug)


def image_page(image_id: int) -> str:
    return URLS["image"].format(image=image_id)


def unit_pattern_in_layer(slug: str) -> str:
    """The unit page pattern relative to its layer's folder ("{unit}.html"), for the grid."""
    folder = layer_index(slug).rsplit("/", 1)[0] + "/"
    pattern = URLS["unit"].replace("{slug}", slug)
    return pattern[len(folder):] if pattern.startswith(folder) else "../../" + pattern


def layer_heat(slug: str) -> str:
    """The layer grid's heat grids (a data script loaded when its heatmap mode is chosen)."""
    return f"layers/{slug}/heat.js"


def class_page(index: int, name: str) -> str:
    """Class pages carry the class index, so equal or clashing names stay distinct."""
    return f"classes/{index}-{safe_name(name, 40)}.html"


def data_thumb(image_id: int) -> str:
    """A paged image's thumbnail, as the thumbs stage encoded it."""
    return f"img/data/{image_id}.{THUMB_EXT}"


def view_file(image_id: int, ext: str) -> str:
    """The model's view of a top image, at the display size, as the evidence stage encoded it."""
    return f"img/view/{image_id}.{ext}"


def data_sheet(index: int) -> str:
    """Sprite sheet `index` of the paged images' thumbnails (the thumbs stage's sheets)."""
    return f"img/sheets/data-{index}.{THUMB_EXT}"


def figure_file(slug: str, unit: int, ext: str) -> str:
    return f"figures/{slug}/{unit}.{ext}"
