"""timm classifiers as `timm:NAME` (timm is an optional extra: `pip install atlas[timm]`).

Preprocessing comes from timm's data config for the model (input size, interpolation,
crop_pct, mean, std); ImageNet class names from timm's ImageNetInfo when the model's
label set is known.
"""
from __future__ import annotations

import difflib
import inspect

import torch.nn as nn

from atlas.models.checkpoint import load_weights
from atlas.models.spec import ModelSpec


def _timm():
    try:
        import timm
    except ImportError as exc:
        raise ValueError("timm models need timm: pip install 'atlas[timm]'") from exc
    return timm


def _build(name: str, weights: str | None, input_size: int | None = None) -> nn.Module:
    timm = _timm()
    kwargs = {"img_size": input_size} if input_size else {}
    if weights is None:  # timm's hub API: downloads online, reads the Hugging Face cache offline
        return timm.create_model(name, pretrained=True, **kwargs)
    model = timm.create_model(name, pretrained=False, **kwargs)
    return model if weights == "random" else load_weights(model, weights)


def _class_names(model: nn.Module) -> tuple[str, ...] | None:
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset
        subset = infer_imagenet_subset(model)
        if not subset:
            return None
        return tuple(d.split(",")[0] for d in ImageNetInfo(subset).label_descriptions())
    except Exception:  # noqa: BLE001 - class names are optional metadata
        return None


def timm_spec(name: str) -> ModelSpec:
    """The spec of timm model `name`; an unknown name fails with timm's closest names."""
    timm = _timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join('timm:' + c for c in close)}?" if close else "see `atlas models --filter timm:`"
        from atlas.models.registry import UnknownModel
        raise UnknownModel(f"unknown timm model {name!r}; {hint}")
    from timm.data import resolve_model_data_config
    probe = timm.create_model(name, pretrained=False)  # random init: only its config is read
    cfg = resolve_model_data_config(probe)
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    takes_size = "img_size" in inspect.signature(type(probe).__init__).parameters
    return ModelSpec(
        name=f"timm:{name}", build=lambda weights: _build(name, weights), input_size=size,
        resize=int(size / crop_pct) if crop_pct < 1 else None, interpolation=str(cfg.get("interpolation", "bicubic")),
        mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]),
        class_names=_class_names(probe), description=f"timm {name}", source="timm",
        sized_build=(lambda weights, s: _build(name, weights, s)) if takes_size else None)

