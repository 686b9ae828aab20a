"""torchvision's FX tracer, in one place: the graph with layer names and tensor shapes.

`NodePathTracer` names every node by its dotted module path (`features.8`,
`layer4.1.relu_1`), the names `get_graph_node_names` lists. Layers, receptive fields
and Grad-CAM heads all read this one traced graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp


@dataclass
class Traced:
    gm: torch.fx.GraphModule
    qualname: dict[torch.fx.Node, str]   # node -> dotted layer name

    def node(self, layer: str) -> torch.fx.Node:
        for n, q in self.qualname.items():
            if q == layer:
                return n
        raise ValueError(f"layer {layer!r} is not a node of the traced model")


def tracer():
    from torchvision.models import feature_extraction as fe
    try:
        kwargs = fe._set_default_tracer_kwargs(None)
    except AttributeError:  # pragma: no cover - older torchvision
        kwargs = {}
    return fe.NodePathTracer(**kwargs)


def trace(model: nn.Module, input_size: int | None = None) -> Traced:
    """The eval-mode graph of `model`; with `input_size`, every node's tensor_meta holds the
    shape for one (1, 3, input_size, input_size) input. Raises what the tracer raises."""
    was_training = model.training
    model.eval()
    try:
        t = tracer()
        graph = t.trace(model)
        gm = torch.fx.GraphModule(t.root, graph)
        if input_size is not None:
            param = next(iter(model.parameters()), None)
            x = torch.zeros(1, 3, input_size, input_size,
                            dtype=param.dtype if param is not None else torch.float32,
                            device=param.device if param is not None else "cpu")
            with torch.no_grad():
                ShapeProp(gm).propagate(x)
    finally:
        model.train(was_training)
    return Traced(gm, dict(t.node_to_qualname))


def shape_of(node: torch.fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(int(v) for v in meta.shape) if hasattr(meta, "shape") else None
