"""The network under study, as the priors see it: RGB images in 0..1 in, activations out.

Preprocessing belongs to the model (its spec's mean and std); the feature extractor is
pruned past the nodes an objective reads, so optimizing a conv1 unit runs conv1 only.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from atlas.models.layers import extractor
from atlas.models.spec import ModelSpec


class NetTarget:
    """`target(images01, nodes)` -> {node: activation}; images are (B, 3, S, S), S = input_size."""

    def __init__(self, model: nn.Module, spec: ModelSpec, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False):
        if channels_last:  # NHWC convolutions and pooling: several times faster on CPU (a private copy)
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.model, self.spec, self.channels_last = model, spec, channels_last
        self.device, self.dtype = torch.device(device), dtype
        self.input_size = spec.input_size
        self.mean = torch.tensor(spec.mean, device=self.device, dtype=dtype).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device, dtype=dtype).view(1, 3, 1, 1)
        self._extractors: dict[tuple[str, ...], nn.Module] = {}

    def normalize(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 - self.mean) / self.std

    def net_for(self, nodes: set[str] | list[str]) -> nn.Module:
        key = tuple(sorted(nodes))
        if key not in self._extractors:
            self._extractors[key] = extractor(self.model, list(key)).to(self.device, self.dtype).eval()
        return self._extractors[key]

    def __call__(self, images01: torch.Tensor, nodes: set[str] | list[str]) -> dict[str, torch.Tensor]:
        if images01.shape[-1] != self.input_size or images01.shape[-2] != self.input_size:
            raise ValueError(f"images are {tuple(images01.shape[-2:])}, model {self.spec.name} takes "
                             f"{self.input_size}x{self.input_size}")
        x = self.normalize(images01)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net_for(nodes)(x)

    @torch.no_grad()
    def activations_of_uint8(self, images: torch.Tensor, objective) -> torch.Tensor:
        """The objective's values for stored uint8 images (B, H, W, 3): what the atlas shows."""
        x = images.to(self.device).permute(0, 3, 1, 2).to(self.dtype) / 255.0
        return objective(self(x, objective.nodes)).float()


def to_uint8(images01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in 0..1 -> uint8 (B, H, W, 3), clamped and rounded."""
    return (images01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
