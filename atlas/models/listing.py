"""What `atlas models` and `atlas layers` print: every model by name, and a model's layers
with unit counts and how a unit's position maps to the image."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from atlas.models.registry import registry, timm_names, torchvision_names


@dataclass(frozen=True)
class ModelRow:
    name: str
    input_size: int | None
    source: str
    description: str


def _tv_size(arch: str) -> int | None:
    try:
        from torchvision.models import get_model_weights
        return int(get_model_weights(arch).DEFAULT.transforms().crop_size[0])
    except Exception:  # noqa: BLE001
        return None


def _timm_size(name: str) -> int | None:
    try:
        from timm.models import get_pretrained_cfg
        cfg = get_pretrained_cfg(name)
        return int(cfg.input_size[-1]) if cfg is not None else None
    except Exception:  # noqa: BLE001
        return None


def model_rows(pattern: str | None = None, with_timm: bool = True) -> list[ModelRow]:
    """Every model atlas opens by name whose name matches `pattern` (a substring or a glob)."""
    def wanted(name: str) -> bool:
        if not pattern:
            return True
        return fnmatch.fnmatch(name, pattern) if any(c in pattern for c in "*?[") else pattern in name
    rows = [ModelRow(n, s.input_size, s.source, s.description) for n, s in sorted(registry().items()) if wanted(n)]
    have = {r.name for r in rows}
    rows += [ModelRow(n, _tv_size(n), "torchvision", f"torchvision {n}") for n in torchvision_names()
             if n not in have and wanted(n)]
    if with_timm:
        rows += [ModelRow(n, _timm_size(n[5:]), "timm", f"timm {n[5:]}") for n in timm_names() if wanted(n)]
    return rows


def position_text(layer, rf) -> str:
    """How a unit's position maps to the image, in a few words."""
    if layer.kind == "fc":
        return "one value per image (whole image)"
    if rf is None:
        return "?"
    (jy, jx), (sy, sx) = rf.jump, rf.size
    if layer.tokens:
        text = f"token -> {jy:g}px patch; attention: whole image"
        return text + ("; class token off the grid" if layer.layout == "tokens+cls" else "")
    if rf.notes and "effective field" in rf.notes[0]:
        return f"stride {jy:g}px; whole image (SE/global), effective {sy}x{sx}px"
    return f"stride {jy:g}px, field {sy}x{sx}px"
