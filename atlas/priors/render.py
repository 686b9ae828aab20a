"""The one small loop of the image-space priors (Lucid's `render_vis`, batched).

A parameterization gives `(params, image_fn)`; `image_fn()` returns RGB images in 0..1.
Each step: transform the images, run the network (in the target's `compute_dtype`, e.g.
bfloat16 autocast; the parameterization, the objective and the optimizer stay in float32),
maximize the objective (sum over the batch; the elements do not interact unless the
objective couples them), step the optimizer, then apply the parameterization's own
projections (`post_step`). The final images' values are measured in float32.
"""
from __future__ import annotations

from typing import Callable

import torch

from atlas.priors.objectives import Objective
from atlas.priors.target import NetTarget
from atlas.priors.transforms import Transform, compose


class NormalizedAscent(torch.optim.Optimizer):
    """Plain gradient steps of `lr` mean-absolute-gradient units per batch element (dim 0),
    as act_max.py scales its steps; handles units whose raw gradients differ by orders of
    magnitude in one batch. Minimizes, like every torch optimizer."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = p.grad.abs().flatten(1).mean(1).clamp(min=1e-20)
                p -= group["lr"] * p.grad / m.view(-1, *([1] * (p.ndim - 1)))


def render(params: list[torch.Tensor], image_fn: Callable[[], torch.Tensor], objective: Objective,
           target: NetTarget, steps: int, optimizer: torch.optim.Optimizer,
           transforms: list[Transform] | None = None, post_step: Callable[[int], None] | None = None,
           progress: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimize; returns the final images (B, 3, S, S) in 0..1 and their objective values
    (untransformed images)."""
    apply = compose(transforms or [])
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        values = objective(target(apply(image_fn()), objective.nodes, steps=True))
        (-values.sum()).backward()
        optimizer.step()
        if post_step is not None:
            post_step(i)
        if progress is not None:
            progress(1)
    with torch.no_grad():
        images = image_fn().detach()
        acts = objective(target(images, objective.nodes))
    for p in params:
        p.requires_grad_(False)
    return images, acts.detach()
