"""Layers by torchvision dotted node name: listing, shapes, and feature extraction."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from atlas.models.spec import ModelSpec


@dataclass(frozen=True)
class LayerInfo:
    name: str            # canonical dotted node name, e.g. "features.10"
    alias: str | None    # friendly name, e.g. "conv5"
    shape: tuple[int, ...]  # output shape of one image: (C, H, W) or (C,)

    @property
    def units(self) -> int:
        return self.shape[0]

    @property
    def kind(self) -> str:
        return "conv" if len(self.shape) == 3 else "fc"


def node_names(model: nn.Module) -> list[str]:
    return get_graph_node_names(model)[1]


def extractor(model: nn.Module, nodes: list[str]) -> nn.Module:
    """A module returning {node: activation} for `nodes`; the graph past them is pruned."""
    return create_feature_extractor(model, return_nodes={n: n for n in nodes})


def probe_shapes(model: nn.Module, spec: ModelSpec, nodes: list[str]) -> dict[str, tuple[int, ...]]:
    x = torch.zeros(1, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        out = extractor(model, nodes)(x)
    return {n: tuple(v.shape[1:]) for n, v in out.items() if isinstance(v, torch.Tensor)}


def list_layers(model: nn.Module, spec: ModelSpec) -> list[LayerInfo]:
    """Every node whose output is a conv map (C,H,W) or a vector (C,), in graph order."""
    nodes = [n for n in node_names(model) if n != "x"]
    shapes = probe_shapes(model, spec, nodes)
    return [LayerInfo(n, spec.alias_of(n), shapes[n]) for n in nodes
            if n in shapes and len(shapes[n]) in (1, 3)]


def resolve_layers(model: nn.Module, spec: ModelSpec, requested: list[str] | None) -> list[LayerInfo]:
    """Canonical LayerInfo for requested names or aliases; unknown names fail with the choices."""
    available = {info.name: info for info in list_layers(model, spec)}
    wanted = list(requested) if requested else list(spec.default_layers)
    if not wanted:
        raise ValueError(f"model {spec.name!r} has no default layers; pass --layers")
    out: list[LayerInfo] = []
    for name in wanted:
        node = spec.resolve_layer(name)
        if node not in available:
            aliases = ", ".join(f"{a}={n}" for a, n in spec.aliases.items())
            raise ValueError(
                f"unknown layer {name!r} for model {spec.name!r}; run `atlas layers {spec.name}` "
                f"for the node names (aliases: {aliases})")
        if all(o.name != node for o in out):
            out.append(available[node])
    return out
