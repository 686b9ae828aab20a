"""Where the package's data lives: templates, front-end assets and shipped weights.

In a wheel, `templates/` and `site/` are copied into the package; in a source checkout
they sit beside it at the repository root.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder `name` ('templates' or 'site'), installed or from the checkout."""
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"atlas resource folder {name!r} not found beside {PACKAGE_DIR}")


def weights_path(filename: str) -> Path:
    """Path of a weight file shipped in `atlas/weights/`."""
    return PACKAGE_DIR / "weights" / filename
