"""Any torchvision classifier as a ModelSpec: preprocessing and class names from its weights.

The weights enum's `transforms()` gives resize, crop, interpolation, mean and std, and
`meta["categories"]` the class names, so nothing here is a hand table.
"""
from __future__ import annotations

import torch.nn as nn

from atlas.models.checkpoint import load_weights
from atlas.models.spec import ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZED = ("vit_",)  # architectures whose graph is built for one input size


def _build(arch: str, weights: str | None, input_size: int | None = None) -> nn.Module:
    from torchvision.models import get_model
    kwargs = {"image_size": input_size} if input_size and arch.startswith(SIZED) else {}
    if weights == "random":
        return get_model(arch, weights=None, **kwargs)
    if weights is None:  # the weights API: downloads online, reads the torch hub cache offline
        if kwargs:
            raise ValueError(f"{arch}'s own weights are for its own input size; with 'input_size' "
                             "pass --weights random or a weight file made for that size")
        return get_model(arch, weights="DEFAULT")
    return load_weights(get_model(arch, weights=None, **kwargs), weights)


def preprocessing(arch: str) -> dict:
    """input_size, resize, interpolation, mean, std and class names from the DEFAULT weights."""
    from torchvision.models import get_model_weights
    w = get_model_weights(arch).DEFAULT
    t = w.transforms()
    crop = int(t.crop_size[0])
    resize = int(t.resize_size[0]) if t.resize_size else None
    return {"input_size": crop, "resize": resize, "interpolation": t.interpolation.value,
            "mean": tuple(float(v) for v in t.mean), "std": tuple(float(v) for v in t.std),
            "class_names": tuple(w.meta.get("categories") or ()) or None}


def torchvision_spec(arch: str, **overrides) -> ModelSpec:
    """The spec of torchvision classifier `arch`; `overrides` set aliases, default layers etc."""
    pre = preprocessing(arch)
    sized = arch.startswith(SIZED)
    fields = dict(name=arch, build=lambda weights: _build(arch, weights), **pre,
                  description=f"torchvision {arch}", source="torchvision",
                  sized_build=(lambda weights, size: _build(arch, weights, size)) if sized else None)
    fields.update(overrides)
    return ModelSpec(**fields)
