"""Safe file names for strings that come from users (layer names, class folders)."""
from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, max_len: int = 60) -> str:
    """A file name made of [A-Za-z0-9._-] only; a hash keeps distinct inputs distinct."""
    clean = _SAFE.sub("_", text).strip("._") or "x"
    if clean == text and len(text) <= max_len and not text.startswith("."):
        return clean
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{clean[:max_len]}-{digest}"
