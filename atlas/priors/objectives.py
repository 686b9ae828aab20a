"""Objectives: functions of a network's activations that give one value per batch element.

As in Lucid, objectives add, subtract and scale (`unit_objective(...) + 0.1 * diversity(...)`),
and each one names the nodes it needs so the caller extracts just those. Every batch
element has its own unit, so one optimization serves many units at once; an objective
that does not couple elements (all but `diversity`) gives each element the gradient it
would get alone.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Acts = dict[str, torch.Tensor]


class Objective:
    """`fn(acts) -> (B,)` values to maximize, plus the node names `fn` reads."""

    def __init__(self, fn: Callable[[Acts], torch.Tensor], nodes: set[str], name: str = ""):
        self.fn, self.nodes, self.name = fn, set(nodes), name

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __add__(self, other: "Objective | float") -> "Objective":
        if isinstance(other, Objective):
            return Objective(lambda a: self(a) + other(a), self.nodes | other.nodes, f"{self.name} + {other.name}")
        return Objective(lambda a: self(a) + other, self.nodes, f"{self.name} + {other}")

    __radd__ = __add__

    def __mul__(self, k: float) -> "Objective":
        return Objective(lambda a: k * self(a), self.nodes, f"{k} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __sub__(self, other: "Objective | float") -> "Objective":
        return self + (-other if isinstance(other, Objective) else -float(other))


def center_of(shape: tuple[int, ...]) -> tuple[int, int]:
    """The centre neuron of an (H, W) map, as act_max.py picks it (6, 6 of a 13x13 map)."""
    return shape[-2] // 2, shape[-1] // 2


def unit_objective(node: str, units: torch.Tensor, where: str = "center") -> Objective:
    """Element b's value is unit `units[b]` of `node`: the unit itself for a vector layer;
    for a conv map the centre neuron of channel `units[b]` ("center") or its mean ("mean")."""
    if where not in ("center", "mean"):
        raise ValueError(f"conv objective must be 'center' or 'mean', got {where!r}")

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[node]
        idx = units.to(a.device).long()
        rows = torch.arange(a.shape[0], device=a.device)
        if a.ndim == 2:
            return a[rows, idx]
        if a.ndim != 4:
            raise ValueError(f"node {node!r} gives {a.ndim}-d activations; expected (B, C) or (B, C, H, W)")
        if where == "center":
            cy, cx = center_of(a.shape)
            return a[rows, idx, cy, cx]
        return a[rows, idx].flatten(1).mean(1)

    return Objective(fn, {node}, f"{node}[{where}]")


def diversity(node: str, groups: torch.Tensor) -> Objective:
    """Lucid's diversity term: minus the mean cosine similarity between an element's Gram
    matrix at `node` and those of the other elements of its group (the seeds of one unit).
    Maximizing it pushes the seeds of a unit apart; it couples batch elements."""

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[node]
        if a.ndim == 2:
            a = a[:, :, None, None]
        flat = a.flatten(2)
        gram = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)
        gram = F.normalize(gram, dim=1)
        sim = gram @ gram.T
        g = groups.to(a.device)
        same = (g[:, None] == g[None, :]) & ~torch.eye(len(g), dtype=torch.bool, device=a.device)
        count = same.sum(1).clamp(min=1)
        return -(sim * same).sum(1) / count

    return Objective(fn, {node}, f"diversity({node})")
