"""Layers by dotted node name: one identity per layer (`LayerRef`), listing, defaults and
feature extraction, for any architecture.

Names come from torchvision's FX tracer (`features.8`, `layer4.1.relu_1`). A model the
tracer cannot follow is listed and read through forward hooks instead: every module call
is a layer, and a module called several times gets `name`, `name_1`, `name_2`, ... as the
tracer would name them, so the calls stay apart.

Every extracted activation is handed on in one of two canonical layouts, whatever the
model produces: a map (C, H, W) or a vector (C,). Token layers become maps over their
token grid: ViT's (1 + h*w, D) drops the class token (position 0) and is D units on an
h x w grid; Swin's channels-last (H, W, C) is C units on H x W.
"""
from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn

from atlas.models.spec import ModelSpec

LAYOUTS = {
    "conv": "a map (C, H, W): unit = channel, one neuron per position",
    "fc": "a vector (C,): one neuron per unit, seeing the whole image",
    "tokens": "tokens (h*w, D): D units over the h x w token grid",
    "tokens+cls": "tokens (1 + h*w, D): D units over the h x w patch-token grid; "
                  "the class token (position 0) is left out of the grid",
    "nhwc": "channels-last map (H, W, C): C units over the H x W token grid",
}
CLASS_TOKEN_NOTE = ("the class token (token 0) is not on the grid: maps and patches show the "
                    "patch tokens only")


def _square(n: int) -> int | None:
    r = math.isqrt(n)
    return r if r > 1 and r * r == n else None


def layout_of(shape: tuple[int, ...]) -> str | None:
    """The layout of one image's output shape, or None when it is not analysable.

    Inputs are square, so a 4-D output (a, a, c) with c != a is channels-last."""
    if len(shape) == 1:
        return "fc"
    if len(shape) == 3:
        a, b, c = shape
        return "nhwc" if a == b and b != c else "conv"
    if len(shape) == 2:
        n, _ = shape
        if _square(n - 1):
            return "tokens+cls"
        if _square(n):
            return "tokens"
    return None


def canonical(act: torch.Tensor) -> torch.Tensor:
    """(B, ...) activation -> (B, C, H, W) or (B, C), by the layout rule above."""
    layout = layout_of(tuple(act.shape[1:]))
    if layout == "nhwc":
        return act.permute(0, 3, 1, 2)
    if layout in ("tokens", "tokens+cls"):
        tokens = act[:, 1:] if layout == "tokens+cls" else act
        side = _square(tokens.shape[1])
        return tokens.reshape(act.shape[0], side, side, act.shape[2]).permute(0, 3, 1, 2)
    return act


def canonical_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(canonical(torch.empty((1, *shape), device="meta")).shape[1:])


@dataclass(frozen=True)
class LayerRef:
    """One layer's identity, resolved once: node name, alias, file/URL slug and titles.

    `shape` is the canonical shape of one image's units ((C, H, W) or (C,)); `raw_shape`
    what the model produces; `layout` one of LAYOUTS."""
    name: str                     # canonical dotted node name, e.g. "features.10"
    alias: str | None             # friendly name, e.g. "conv5"
    shape: tuple[int, ...]
    layout: str = "conv"
    raw_shape: tuple[int, ...] = ()

    @property
    def node(self) -> str:
        return self.name

    @property
    def units(self) -> int:
        return self.shape[0]

    @property
    def kind(self) -> str:
        """'conv' for any map (conv or token grid: units have positions), else 'fc'."""
        return "conv" if len(self.shape) == 3 else "fc"

    @property
    def tokens(self) -> bool:
        return self.layout in ("tokens", "tokens+cls", "nhwc")

    @property
    def slug(self) -> str:
        from atlas.render.names import safe_name
        return safe_name(self.name)

    @property
    def title(self) -> str:
        return f"{self.alias} ({self.name})" if self.alias else self.name

    @property
    def short_title(self) -> str:
        return self.alias or self.name


LayerInfo = LayerRef  # the name the stages have always used


class LayerError(ValueError):
    """A layer name that is unknown or cannot be analysed; the message says which and why."""


def traceable(model: nn.Module) -> bool:
    try:
        from atlas.models.tracing import trace
        trace(model)
        return True
    except Exception:  # noqa: BLE001 - any tracing failure means: use hooks
        return False


def node_names(model: nn.Module) -> list[str]:
    """Every layer name, in execution order (traced graph, else module calls)."""
    try:
        from atlas.models.tracing import trace
        return list(trace(model).qualname.values())
    except Exception:  # noqa: BLE001
        return [n for n, _ in _hook_shapes(model, 32)]


def _traced_shapes(model: nn.Module, input_size: int) -> list[tuple[str, tuple[int, ...]]]:
    from atlas.models.tracing import shape_of, trace
    t = trace(model, input_size)
    out, fed = [], set()  # fed: nodes computed from the image (not parameters, buffers, constants)
    for node in t.gm.graph.nodes:
        if node.op == "placeholder" or any(a in fed for a in node.all_input_nodes):
            fed.add(node)
        shape = shape_of(node)
        if node.op in ("placeholder", "output") or node not in fed or shape is None or node not in t.qualname:
            continue
        out.append((t.qualname[node], shape[1:]))
    return out


class _Done(Exception):
    """Raised by a hook once every wanted output is in hand: the rest of the forward is skipped."""


def _call_names(model: nn.Module):
    """Forward hooks naming each module call `path`, `path_1`, ... in call order."""
    counts: dict[str, int] = {}
    names = {m: n for n, m in model.named_modules() if n}

    def name_of(module) -> str:
        base = names[module]
        k = counts.get(base, 0)
        counts[base] = k + 1
        return base if k == 0 else f"{base}_{k}"
    return names, name_of


def _hook_shapes(model: nn.Module, input_size: int) -> list[tuple[str, tuple[int, ...]]]:
    names, name_of = _call_names(model)
    seen: list[tuple[str, tuple[int, ...]]] = []

    def hook(module, args, output):
        name = name_of(module)
        if isinstance(output, torch.Tensor):
            seen.append((name, tuple(output.shape[1:])))
    handles = [m.register_forward_hook(hook) for m in names]
    try:
        param = next(iter(model.parameters()), None)
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size,
                              dtype=param.dtype if param is not None else torch.float32,
                              device=param.device if param is not None else "cpu"))
    finally:
        for h in handles:
            h.remove()
    return seen


def list_layers(model: nn.Module, spec: ModelSpec, with_unanalysable: bool = False) -> list[LayerRef]:
    """Every analysable layer (a map, a vector or tokens), in execution order. The traced
    graph when torchvision's tracer follows the model, else module outputs by hooks."""
    try:
        shapes = _traced_shapes(model, spec.input_size)
    except Exception:  # noqa: BLE001 - data-dependent control flow etc.: fall back to hooks
        shapes = _hook_shapes(model, spec.input_size)
    out = []
    for name, shape in shapes:
        layout = layout_of(shape)
        if layout is None and not with_unanalysable:
            continue
        out.append(LayerRef(name, spec.alias_of(name), canonical_shape(shape) if layout else shape,
                            layout or "none", shape))
    return out


def _trunk(model: nn.Module) -> list[str]:
    """Paths of the children of the longest Sequential/ModuleList (a transformer's blocks)."""
    best: list[str] = []
    for path, m in model.named_modules():
        if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m) > len(best):
            best = [f"{path}.{k}" if path else k for k, _ in m.named_children()]
    return best


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _block_ends(model: nn.Module, names: list[str], paths: list[str]) -> list[str]:
    """For each module path, the last listed layer inside it (in execution order)."""
    order = {n: i for i, n in enumerate(names)}
    ends = []
    for path in paths:
        inside = [n for n in names if n == path or n.startswith(path + ".")]
        if inside:
            ends.append(max(inside, key=order.get))
    return sorted(set(ends), key=order.get)


def family_defaults(model: nn.Module, layers: list[LayerRef], max_stages: int = 5) -> list[str]:
    """Default layers for any architecture: the output of each stage (the last top-level
    block at each map size; for a token trunk of one grid size, evenly spaced block
    outputs), then the penultimate layer and the logits."""
    maps = [l for l in layers if l.kind == "conv" and l.shape[1] * l.shape[2] > 1]
    vectors = [l for l in layers if l.kind == "fc"]
    names = [l.name for l in maps]
    shapes = {l.name: l.shape[1:] for l in maps}
    top = [p for p, _ in model.named_modules() if p and p.count(".") <= 1]
    blocks = _block_ends(model, names, top) or names
    stages = [n for i, n in enumerate(blocks) if i + 1 == len(blocks) or shapes[blocks[i + 1]] != shapes[n]]
    if len(stages) < 3:
        stages = _block_ends(model, names, _trunk(model)) or stages
    out = _evenly(stages, max_stages)
    pen = penultimate(layers)
    for extra in ([pen] if pen else []) + ([vectors[-1].name] if vectors else []):
        if extra not in out:
            out.append(extra)
    return out


def penultimate(layers: list[LayerRef]) -> str | None:
    """The last vector layer before the logits with another unit count (fc7, ResNet's pool)."""
    vectors = [l for l in layers if l.kind == "fc"]
    if not vectors:
        return None
    logits = vectors[-1]
    for layer in reversed(vectors[:-1]):
        if layer.units != logits.units and not re.search(r"drop", layer.name):
            return layer.name
    return None


def resolve_layers(model: nn.Module, spec: ModelSpec, requested: list[str] | None,
                   listed: list[LayerRef] | None = None) -> list[LayerRef]:
    """The LayerRef of each requested name or alias (default: the spec's, else the family
    rule); an unknown or unanalysable name fails with the reason and where to look."""
    every = listed if listed is not None else list_layers(model, spec, with_unanalysable=True)
    by_name = {info.name: info for info in every}
    wanted = list(requested) if requested else list(spec.default_layers) or \
        family_defaults(model, [l for l in every if l.layout != "none"])
    if not wanted:
        raise LayerError(f"model {spec.name!r} has no default layers; pass --layers")
    out: list[LayerRef] = []
    for name in wanted:
        node = spec.resolve_layer(name)
        info = by_name.get(node)
        if info is None:
            import difflib
            close = difflib.get_close_matches(node, list(by_name), n=4, cutoff=0.6)
            aliases = ", ".join(f"{a}={n}" for a, n in spec.aliases.items())
            raise LayerError(
                f"unknown layer {name!r} for model {spec.name!r}"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + f"; run `atlas layers {spec.name}` for the node names" + (f" (aliases: {aliases})" if aliases else ""))
        if info.layout == "none":
            raise LayerError(f"layer {name!r} of model {spec.name!r} cannot be analysed: its output "
                             f"{tuple(info.raw_shape)} per image is neither a map (C, H, W), a vector (C,) "
                             "nor a token grid (tokens, D)")
        if all(o.name != node for o in out):
            out.append(info)
    return out


class Extractor(nn.Module):
    """`extractor(x)` -> {node: canonical activation} for the wanted nodes."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: canonical(v) if isinstance(v, torch.Tensor) else v for k, v in self.inner(x).items()}


class HookExtractor(nn.Module):
    """The same, for a model the tracer cannot follow: forward hooks on the module calls
    named by `_call_names`, removed after every call; the forward stops once all are read."""

    def __init__(self, model: nn.Module, nodes: list[str]):
        super().__init__()
        self.model, self.nodes = model, list(nodes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        names, name_of = _call_names(self.model)
        wanted, got = set(self.nodes), {}

        def hook(module, args, output):
            name = name_of(module)
            if name in wanted:
                got[name] = output
                if len(got) == len(wanted):
                    raise _Done
        handles = [m.register_forward_hook(hook) for m in names]
        try:
            self.model(x)
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = wanted - set(got)
        if missing:
            raise LayerError(f"layers {sorted(missing)} were not reached in the forward pass")
        return {k: canonical(got[k]) for k in self.nodes}


def extractor(model: nn.Module, nodes: list[str]) -> nn.Module:
    """A module returning {node: canonical activation} for `nodes`; the graph past them is
    pruned (traced models) or the forward stopped (hooked models)."""
    from torchvision.models.feature_extraction import create_feature_extractor
    try:
        inner = create_feature_extractor(model, return_nodes={n: n for n in nodes})
    except Exception:  # noqa: BLE001 - untraceable: hooks
        return HookExtractor(model, nodes)
    return Extractor(inner)


_SHARED: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], nn.Module]]" = weakref.WeakKeyDictionary()


def shared_extractor(model: nn.Module, nodes: list[str]) -> nn.Module:
    """`extractor(model, nodes)`, built once per model object and node list in this process
    and handed to every caller after the first: callers must not change it (no `.to(dtype)`,
    no folding; `atlas.priors.target.NetTarget` builds its own). Building one traces the model
    twice (train and eval mode) and compiles the pruned graph, 10-25 ms of CPU for the world
    network; the evidence, top-k and maps passes asked for the same one in every chunk (86
    builds in a one-process quick demo, 61 of them evidence's, now 11)."""
    per_model = _SHARED.setdefault(model, {})
    key = tuple(nodes)
    if key not in per_model:
        per_model[key] = extractor(model, list(key))
    return per_model[key]


def probe_shapes(model: nn.Module, spec: ModelSpec, nodes: list[str]) -> dict[str, tuple[int, ...]]:
    x = torch.zeros(1, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        out = extractor(model, nodes)(x)
    return {n: tuple(v.shape[1:]) for n, v in out.items() if isinstance(v, torch.Tensor)}
