"""A model's identity and input settings (no registry here: see `atlas.models.registry`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn


@dataclass(frozen=True)
class ModelSpec:
    """How to build a classifier and feed it: preprocessing belongs to the model.

    `build(weights)` returns the module; `weights` is None (the spec's default weights: the
    library's API online, its cache offline), a path to a state dict or safetensors file, or
    "random". `resize` is the shorter side before the centre crop to `input_size`;
    `interpolation` is torchvision's name of the resize filter ("bilinear", "bicubic").
    `source` says where the model comes from (atlas, torchvision, timm, file, module) and
    `identity` is mixed into the stage keys (a user file's content hash).
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
    interpolation: str = "bilinear"
    description: str = ""
    source: str = "atlas"
    identity: str = ""
    # DGN-AM: the shipped generator file (in atlas/weights) and the encoder nodes a
    # generator for this model inverts (ReLU'd fc6) and compares features at (conv5 level)
    generator: str | None = None
    generator_code: str | None = None
    generator_comparator: str | None = None
    # build(weights, input_size) for models whose graph depends on the input size (ViT)
    sized_build: Callable[[str | None, int], nn.Module] | None = None

    def resolve_layer(self, name: str) -> str:
        """Map an alias (conv5, fc7) to the canonical dotted node name."""
        return self.aliases.get(name, name)

    def alias_of(self, node: str) -> str | None:
        for alias, target in self.aliases.items():
            if target == node:
                return alias
        return None

    def at_input_size(self, size: int) -> "ModelSpec":
        """The same model fed `size` x `size` images (a config's `input_size`; tests use tiny ones)."""
        import dataclasses
        if size == self.input_size:
            return self
        build = self.build
        if self.sized_build is not None:
            sized = self.sized_build
            def build(weights, _s=size):  # noqa: E306 - a closure over the new size
                return sized(weights, _s)
        return dataclasses.replace(self, input_size=size, resize=None if self.resize is None else
                                   max(size, round(size * self.resize / self.input_size)), build=build)
