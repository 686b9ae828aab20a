"""Class-activation maps for vector (fc) units, which have no map of their own.

The network is cut at the last spatial layer below the unit (e.g. pool5 or layer4): the part
above the cut (the head) is rebuilt as its own module from the traced graph. Gradients then
flow through the head only, so a map costs a fraction of a full backward pass, which is
what makes heatmaps of thousand-unit fc layers affordable on large inputs.

The map is HiResCAM (Draelos & Carin 2020), ReLU(sum_c dy/dA_c * A_c), the Grad-CAM variant
(Selvaraju et al. 2017) that keeps the gradient per position instead of averaging it over
space: for a linear head it is exactly each position's contribution to the unit, so an fc6
unit that reads only part of pool5 lights only that part. Behind a global average pool both
are the same map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Head:
    """`module(activation of cut)` returns the activation of `layer`."""
    cut: str
    layer: str
    module: nn.Module
    cut_shape: tuple[int, ...]


def _ancestors(node: torch.fx.Node, stop: torch.fx.Node | None = None) -> set:
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in seen or n is stop:
            continue
        seen.add(n)
        todo.extend(n.all_input_nodes)
    return seen


def split_head(model: nn.Module, layer: str, input_size: int) -> Head | None:
    """The head from the last spatial node (H*W > 1) below `layer` up to `layer` (at worst the
    input itself), or None when no such cut separates the layer from the input or the model
    cannot be traced (the caller then uses input-gradient saliency)."""
    from atlas.models.layers import layout_of
    from atlas.models.tracing import trace
    try:
        traced = trace(model, input_size)
    except Exception:  # noqa: BLE001 - a model the tracer cannot follow has no head to cut
        return None
    gm = traced.gm
    by_name = {q: n for n, q in traced.qualname.items()}
    if layer not in by_name:
        raise ValueError(f"layer {layer!r} is not a node of the traced model")
    end = by_name[layer]
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    below = sorted(_ancestors(end) - {end}, key=order.get, reverse=True)
    for cut in below:
        meta = cut.meta.get("tensor_meta")
        shape = tuple(getattr(meta, "shape", ()))
        if len(shape) != 4 or shape[2] * shape[3] <= 1 or layout_of(shape[1:]) != "conv":
            continue
        needed = _ancestors(end, stop=cut)
        if any(n.op == "placeholder" for n in needed):
            continue  # the head would also need the input: not a clean cut
        head_graph = torch.fx.Graph()
        env = {cut: head_graph.placeholder("activation")}
        for n in gm.graph.nodes:
            if n in needed:
                env[n] = head_graph.node_copy(n, lambda a: env[a])
        head_graph.output(env[end])
        return Head(traced.qualname[cut], layer, torch.fx.GraphModule(gm, head_graph), shape[1:])
    return None


def gradcam(head: nn.Module, activation: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """activation (R, C, h, w) at the cut, units (R,) -> HiResCAM maps (R, h, w), each in [0, 1]."""
    a = activation.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = head(a)
        y = y.flatten(1) if y.ndim > 2 else y
        y[torch.arange(len(a), device=y.device), units].sum().backward()
    cam = F.relu((a.grad * a.detach()).sum(dim=1))
    top = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return cam / top
