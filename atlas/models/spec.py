"""A model's identity and input settings, and the registry of model builders."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn


@dataclass(frozen=True)
class ModelSpec:
    """How to build a classifier and feed it: preprocessing belongs to the model.

    `build(weights)` returns the module in eval mode; `weights` is None (the spec's
    default weights), a path to a checkpoint, or "random".
    """
    name: str
    build: Callable[[str | None], nn.Module]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    aliases: dict[str, str] = field(default_factory=dict)
    default_layers: tuple[str, ...] = ()
    penultimate: str | None = None
    class_names: tuple[str, ...] | None = None
    resize: int | None = None  # resize shorter side before the center crop
    description: str = ""
    # DGN-AM: the shipped generator file (in atlas/weights) and the encoder nodes a
    # generator for this model inverts (ReLU'd fc6) and compares features at (conv5 level)
    generator: str | None = None
    generator_code: str | None = None
    generator_comparator: str | None = None

    def resolve_layer(self, name: str) -> str:
        """Map an alias (conv5, fc7) to the canonical dotted node name."""
        return self.aliases.get(name, name)

    def alias_of(self, node: str) -> str | None:
        for alias, target in self.aliases.items():
            if target == node:
                return alias
        return None


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registry() -> dict[str, ModelSpec]:
    from atlas.models import zoo  # noqa: F401  (fills the registry)
    return dict(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    specs = registry()
    if name not in specs:
        choices = ", ".join(sorted(specs))
        raise KeyError(f"unknown model {name!r}; choose one of: {choices}")
    return specs[name]
