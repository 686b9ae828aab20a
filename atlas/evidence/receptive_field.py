"""Receptive fields of any traceable network, computed from its graph.

The model is traced with torchvision's `NodePathTracer` (the same tracer that names the
layers), its tensor shapes are recorded for one input, and every node gets, per image
axis, the inclusive input interval `[lo, hi]` that each of its output positions can see.
Convolutions and pools read input positions `i*stride - padding + m*dilation`; positions
that fall into the padding are dropped, so boxes near the border are clipped to the image.
Elementwise operations and additions take the union (hull) of their inputs' boxes, adaptive
pools use their bins, and anything that leaves the (N, C, H, W) layout (flatten, linear,
global means) sees the whole image. An operation the analysis does not know is treated as
seeing the whole image, which is always safe; such operations are listed in `notes`.

Boxes are hulls: every input pixel with a nonzero gradient for the neuron lies inside its
box (the tests check this against autograd for AlexNet, VGG-11 and ResNet-18).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from atlas.models.layers import CLASS_TOKEN_NOTE

VERSION = 2  # 2: token layers get patch boxes, whole-image fields the effective field

@dataclass(frozen=True)
class Axis:
    """One image axis of a layer's geometry.

    `box[i]` is the inclusive input interval [lo, hi] that output position i sees, clipped to
    the image (exact). `a`, `b`, `jump` are the classic unclipped arithmetic: position i's
    field spans [a + i*jump, b + i*jump] if padding were image, so `b - a + 1` is the nominal
    receptive field size (it may exceed the image) and `jump` the accumulated stride.
    """
    box: np.ndarray
    a: float
    b: float
    jump: float
    whole: bool = False   # every position sees the whole image (after a global operation)

    def __len__(self) -> int:
        return len(self.box)


@dataclass(frozen=True)
class ReceptiveField:
    """Input boxes of every output position of one layer, for a square input of `input_size`."""
    layer: str
    input_size: int
    rows: Axis | None     # None for vector outputs: every unit sees the whole image
    cols: Axis | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def spatial(self) -> bool:
        return self.rows is not None

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(y0, x0, y1, x1), half-open, in input pixels, of output position (y, x)."""
        return tuple(int(v) for v in self.boxes(np.array([y, x])))

    def boxes(self, pos: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) as (y0, x0, y1, x1), half-open, for positions (..., 2) given as (y, x)."""
        pos = np.asarray(pos)
        if not self.spatial:
            out = np.zeros(pos.shape[:-1] + (4,), np.int32)
            out[..., 2:] = self.input_size
            return out
        r, c = self.rows.box[pos[..., 0]], self.cols.box[pos[..., 1]]
        return np.stack([r[..., 0], c[..., 0], r[..., 1] + 1, c[..., 1] + 1], axis=-1).astype(np.int32)

    @property
    def size(self) -> tuple[int, int]:
        """The largest clipped box (rows, cols): the most of the image one neuron sees."""
        if not self.spatial:
            return self.input_size, self.input_size
        return tuple(int((ax.box[:, 1] - ax.box[:, 0]).max()) + 1 for ax in (self.rows, self.cols))

    @property
    def nominal_size(self) -> tuple[int, int]:
        """The unclipped receptive field (rows, cols); larger than the image for deep layers."""
        if not self.spatial:
            return self.input_size, self.input_size
        return tuple(int(round(ax.b - ax.a + 1)) for ax in (self.rows, self.cols))

    @property
    def jump(self) -> tuple[float, float]:
        """Input pixels between neighbouring output positions (the accumulated stride)."""
        if not self.spatial:
            return float(self.input_size), float(self.input_size)
        return float(self.rows.jump), float(self.cols.jump)

    def summary(self) -> dict:
        h, w = (len(self.rows), len(self.cols)) if self.spatial else (0, 0)
        return {"spatial": self.spatial, "size": list(self.size), "nominal_size": list(self.nominal_size),
                "jump": list(self.jump), "input_size": self.input_size, "map": [h, w],
                "center_box": list(self.box(h // 2, w // 2)), "notes": list(self.notes)}


def _identity(n: int) -> Axis:
    i = np.arange(n)
    return Axis(np.stack([i, i], axis=1), 0.0, 0.0, 1.0)


def _whole(out_len: int, n: int) -> Axis:
    return Axis(np.tile(np.array([[0, n - 1]]), (out_len, 1)), 0.0, n - 1.0, float(n), whole=True)


def _keeps_whole(rule):
    """Once every position sees the whole image, every later position does too."""
    def apply(src: Axis, out_len: int, *args) -> Axis:
        if src.whole:
            n = int(src.box[0, 1]) + 1
            return _whole(out_len, n)
        return rule(src, out_len, *args)
    apply.__doc__, apply.__name__ = rule.__doc__, rule.__name__
    return apply


@_keeps_whole
def _window(src: Axis, out_len: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> Axis:
    """Output i reads src positions i*stride - pad + m*dilation (m < kernel) that exist."""
    n = len(src)
    out = np.empty((out_len, 2), dtype=np.int64)
    for i in range(out_len):
        taps = [t for t in (i * stride - pad + m * dilation for m in range(kernel)) if 0 <= t < n]
        if not taps:  # an output made of padding alone sees nothing; keep the nearest input
            taps = [min(max(i * stride - pad, 0), n - 1)]
        out[i] = src.box[taps, 0].min(), src.box[taps, 1].max()
    j = src.jump
    return Axis(out, src.a - pad * j, src.b + ((kernel - 1) * dilation - pad) * j, j * stride)


@_keeps_whole
def _adaptive(src: Axis, out_len: int) -> Axis:
    """Adaptive pooling bins: [floor(i*n/m), ceil((i+1)*n/m))."""
    n = len(src)
    if n % out_len == 0:
        return _window(src, out_len, n // out_len, n // out_len, 0)
    out = np.empty((out_len, 2), dtype=np.int64)
    for i in range(out_len):
        a, b = (i * n) // out_len, -(-((i + 1) * n) // out_len)
        out[i] = src.box[a:b, 0].min(), src.box[a:b, 1].max()
    return Axis(out, src.a, src.b + math.ceil(n / out_len) * src.jump, src.jump * n / out_len)


@_keeps_whole
def _transposed(src: Axis, out_len: int, kernel: int, stride: int, pad: int, dilation: int) -> Axis:
    """Transposed conv: output o receives input i when o = i*stride - pad + m*dilation."""
    n = len(src)
    lo = np.full(out_len, np.iinfo(np.int64).max)
    hi = np.full(out_len, -1)
    for i in range(n):
        for m in range(kernel):
            o = i * stride - pad + m * dilation
            if 0 <= o < out_len:
                lo[o], hi[o] = min(lo[o], src.box[i, 0]), max(hi[o], src.box[i, 1])
    empty = hi < 0
    lo[empty], hi[empty] = src.box[:, 0].min(), src.box[:, 1].max()
    j = src.jump / stride
    return Axis(np.stack([lo, hi], axis=1), src.a - (kernel - 1) * dilation * j, src.b + pad * j, j)


@_keeps_whole
def _resample(src: Axis, out_len: int) -> Axis:
    """Interpolation (nearest or linear): output o reads around input (o + 0.5) * n / m - 0.5."""
    n = len(src)
    out = np.empty((out_len, 2), dtype=np.int64)
    for o in range(out_len):
        c = (o + 0.5) * n / out_len - 0.5
        a, b = max(0, math.floor(c) - 1), min(n - 1, math.ceil(c) + 1)
        out[o] = src.box[a:b + 1, 0].min(), src.box[a:b + 1, 1].max()
    return Axis(out, src.a - src.jump, src.b + src.jump, src.jump * n / out_len)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


# modules and functions that act on each spatial position separately (in eval mode)
POINTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
    nn.Tanhshrink, nn.Threshold, nn.Identity, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)
POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.iadd,
    operator.imul, torch.add, torch.sub, torch.mul, torch.div, torch.relu, torch.sigmoid,
    torch.tanh, torch.cat, torch.clamp, torch.maximum, torch.minimum, torch.where,
    F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.hardswish, F.hardsigmoid, F.sigmoid,
    F.tanh, F.elu, F.dropout, F.batch_norm, F.mish, F.softplus, F.hardtanh,
}

def _functions(*names: str) -> set:
    """The functions of that name in torch.nn.functional and torch that exist in this version."""
    return {f for n in names for f in (getattr(F, n, None), getattr(torch, n, None)) if f is not None}


_MAX_POOL_FUNCTIONS = _functions("max_pool2d")
_POOL_FUNCTIONS = _MAX_POOL_FUNCTIONS | _functions("avg_pool2d")
_CONV_FUNCTIONS = _functions("conv2d")
_ADAPTIVE_FUNCTIONS = _functions("adaptive_avg_pool2d", "adaptive_max_pool2d")
_RESAMPLE_FUNCTIONS = _functions("interpolate", "upsample")
POINTWISE_METHODS = {"add", "sub", "mul", "div", "relu", "sigmoid", "tanh", "clamp", "contiguous",
                     "clone", "float", "half", "to", "type_as", "add_", "mul_", "relu_", "detach"}


def _pointwise_module(m: nn.Module) -> bool:
    if isinstance(m, POINTWISE_MODULES):
        return True
    name = type(m).__name__
    # torchvision leaf modules that are identities or per-pixel in eval mode
    return name in ("FrozenBatchNorm2d", "StochasticDepth", "DropBlock2d")


class _Analysis:
    """Walks the traced graph once, assigning (rows, cols) to every spatial tensor node."""

    def __init__(self, model: nn.Module, input_size: int):
        from atlas.models.tracing import trace
        traced = trace(model, input_size)
        self.qualname = traced.qualname
        self.gm = traced.gm
        self.n = input_size
        self.axes: dict[torch.fx.Node, tuple[Axis, Axis] | None] = {}
        self.notes: dict[torch.fx.Node, str] = {}
        self.modules = dict(self.gm.named_modules())
        for node in self.gm.graph.nodes:
            self.axes[node] = self._visit(node)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _hw(node) -> tuple[int, int] | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
        if meta is None or not hasattr(meta, "shape"):
            return None
        shape = tuple(meta.shape)
        return (int(shape[2]), int(shape[3])) if len(shape) == 4 else None

    def _is_tensor(self, node) -> bool:
        return isinstance(node, torch.fx.Node) and hasattr(node.meta.get("tensor_meta"), "shape")

    def _global(self, node, why: str | None = None) -> tuple[Axis, Axis] | None:
        if why:
            self.notes[node] = why
        hw = self._hw(node)
        if hw is None:
            return None
        return _whole(hw[0], self.n), _whole(hw[1], self.n)

    def _label(self, node: torch.fx.Node) -> str:
        return self.qualname.get(node, node.name)

    def _inputs(self, node) -> list[torch.fx.Node]:
        found: list[torch.fx.Node] = []
        torch.fx.node.map_arg((node.args, node.kwargs), lambda a: found.append(a) if self._is_tensor(a) else None)
        return found

    def _union(self, node, sources: list[torch.fx.Node]) -> tuple[Axis, Axis] | None:
        """Elementwise op: each output position sees the union of its inputs' boxes there."""
        hw = self._hw(node)
        if hw is None:
            return None
        out = []
        for k in range(2):
            box = np.full((hw[k], 2), [self.n, -1])
            a, b, j = math.inf, -math.inf, 0.0
            for s in sources:
                ax = self.axes.get(s)
                if ax is None:  # a vector (e.g. a gate) broadcast over space: whole image
                    return self._global(node)
                src = ax[k]
                if len(src) == hw[k]:
                    box[:, 0], box[:, 1] = np.minimum(box[:, 0], src.box[:, 0]), np.maximum(box[:, 1], src.box[:, 1])
                elif len(src) == 1:  # broadcast over this axis
                    box[:, 0], box[:, 1] = np.minimum(box[:, 0], src.box[0, 0]), np.maximum(box[:, 1], src.box[0, 1])
                else:
                    return self._global(node, f"{self._label(node)}: inputs of different sizes")
                if src.whole:
                    return self._global(node)
                a, b, j = min(a, src.a), max(b, src.b), max(j, src.jump)
            out.append(Axis(box, a, b, j))
        return out[0], out[1]

    def _apply_module(self, m: nn.Module, src: tuple[Axis, Axis], out_hw: tuple[int, int]):
        """(rows, cols) after module m, or None when m is not understood."""
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            if isinstance(m, nn.Conv2d):
                k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
                if isinstance(m.padding, str):
                    p = (0, 0) if m.padding == "valid" else tuple((d[i] * (k[i] - 1)) // 2 for i in range(2))
                else:
                    p = _pair(m.padding)
            else:
                k, s, p = _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)
                d = _pair(getattr(m, "dilation", 1))
            return tuple(_window(src[i], out_hw[i], k[i], s[i], p[i], d[i]) for i in range(2))
        if isinstance(m, nn.ConvTranspose2d):
            k, s, p, d = (_pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
            return tuple(_transposed(src[i], out_hw[i], k[i], s[i], p[i], d[i]) for i in range(2))
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return tuple(_adaptive(src[i], out_hw[i]) for i in range(2))
        if isinstance(m, (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)):
            return tuple(_resample(src[i], out_hw[i]) for i in range(2))
        if _pointwise_module(m) and (len(src[0]), len(src[1])) == out_hw:
            return src
        return None

    def _visit(self, node: torch.fx.Node) -> tuple[Axis, Axis] | None:
        if node.op == "placeholder":
            return _identity(self.n), _identity(self.n)
        if node.op in ("output", "get_attr") or not self._is_tensor(node):
            return None
        out_hw = self._hw(node)
        if out_hw is None:
            return None  # a vector: sees the whole image (handled by ReceptiveField.spatial)
        srcs = self._inputs(node)
        if node.op == "call_module":
            m = self.modules[node.target]
            if not srcs or self.axes.get(srcs[0]) is None:
                return self._global(node, f"{self._label(node)}: {type(m).__name__} of a non-spatial input")
            if isinstance(m, nn.Sequential):
                return self._sequential(m, self.axes[srcs[0]], node)
            res = self._apply_module(m, self.axes[srcs[0]], out_hw)
            if res is None:
                return self._global(node, f"{self._label(node)}: {type(m).__name__} treated as seeing the whole image")
            return res
        if node.op == "call_function":
            return self._function(node, srcs, out_hw)
        if node.op == "call_method":
            if node.target in POINTWISE_METHODS:
                return self._union(node, srcs)
            if node.target in ("view", "reshape", "flatten", "squeeze", "unsqueeze") and srcs \
                    and self._hw(srcs[0]) == out_hw:
                return self._union(node, srcs[:1])
            return self._global(node, f"{self._label(node)}: method {node.target!r} treated as seeing the whole image")
        return self._global(node, f"{self._label(node)}: {node.op} treated as seeing the whole image")

    def _sequential(self, m: nn.Sequential, src: tuple[Axis, Axis], node) -> tuple[Axis, Axis] | None:
        """A leaf container (e.g. Conv2dNormActivation): its children in turn, shapes from a probe."""
        x = torch.zeros(1, *node.args[0].meta["tensor_meta"].shape[1:])
        cur = src
        with torch.no_grad():
            for child in m:
                x = child(x)
                if x.ndim != 4:
                    return self._global(node, f"{self._label(node)}: {type(child).__name__} leaves the image layout")
                if isinstance(child, nn.Sequential):
                    return self._global(node, f"{self._label(node)}: nested container treated as seeing the whole image")
                cur = self._apply_module(child, cur, (x.shape[2], x.shape[3]))
                if cur is None:
                    return self._global(node, f"{self._label(node)}: {type(child).__name__} treated as seeing the whole image")
        return cur

    def _function(self, node, srcs, out_hw):
        fn = node.target
        first = self.axes.get(srcs[0]) if srcs else None
        if fn in _POOL_FUNCTIONS and first is not None:
            args = list(node.args) + [None] * 6
            k = _pair(node.kwargs.get("kernel_size", args[1]))
            s = _pair(node.kwargs.get("stride", args[2]) or k)
            p = _pair(node.kwargs.get("padding", args[3] if args[3] is not None else 0))
            d = _pair(node.kwargs.get("dilation", args[4] if fn in _MAX_POOL_FUNCTIONS
                                      and args[4] is not None else 1))
            return tuple(_window(first[i], out_hw[i], k[i], s[i], p[i], d[i]) for i in range(2))
        if fn in _CONV_FUNCTIONS and first is not None:
            w = node.args[1] if len(node.args) > 1 else node.kwargs["weight"]
            kshape = w.meta["tensor_meta"].shape[2:]
            args = list(node.args) + [None] * 7
            s = _pair(node.kwargs.get("stride", args[3] if args[3] is not None else 1))
            p = node.kwargs.get("padding", args[4] if args[4] is not None else 0)
            d = _pair(node.kwargs.get("dilation", args[5] if args[5] is not None else 1))
            if isinstance(p, str):
                p = (0, 0) if p == "valid" else tuple((d[i] * (int(kshape[i]) - 1)) // 2 for i in range(2))
            p = _pair(p)
            return tuple(_window(first[i], out_hw[i], int(kshape[i]), s[i], p[i], d[i]) for i in range(2))
        if fn in _ADAPTIVE_FUNCTIONS and first is not None:
            return tuple(_adaptive(first[i], out_hw[i]) for i in range(2))
        if fn in _RESAMPLE_FUNCTIONS and first is not None:
            return tuple(_resample(first[i], out_hw[i]) for i in range(2))
        if fn in POINTWISE_FUNCTIONS:
            return self._union(node, srcs)
        if fn in (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze) and srcs \
                and self._hw(srcs[0]) == out_hw:
            return self._union(node, srcs[:1])
        name = getattr(fn, "__name__", str(fn))
        return self._global(node, f"{self._label(node)}: {name} treated as seeing the whole image")

    def _notes_above(self, node: torch.fx.Node) -> tuple[str, ...]:
        """Notes of the node and everything it depends on, in graph order."""
        seen, todo = set(), [node]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(n.all_input_nodes)
        return tuple(why for n, why in self.notes.items() if n in seen)

    def field(self, layer: str) -> ReceptiveField:
        for node, q in self.qualname.items():
            if q != layer:
                continue
            ax, notes = self.axes.get(node), self._notes_above(node)
            if ax is None:
                return ReceptiveField(layer, self.n, None, None, notes=notes)
            return ReceptiveField(layer, self.n, ax[0], ax[1], notes=notes)
        raise ValueError(f"layer {layer!r} is not a node of the traced model; "
                         f"nodes: {', '.join(list(self.qualname.values())[:12])}...")


TOKEN_NOTE = ("token layer: the box is the token's patch; attention lets every token see the "
              "whole image")
WHOLE_NOTE = ("every unit here sees the whole image (squeeze-excitation, attention or another global "
              "operation): patches use the effective field, the box around the input pixels whose "
              "gradient is at least 1% of the largest, measured at the centre position")


def token_field(layer: str, input_size: int, grid: tuple[int, int], notes: tuple[str, ...] = ()) -> ReceptiveField:
    """Each token's patch: the grid tiles the image (ViT's patches, Swin's merged windows)."""
    axes = []
    for n in grid:
        p = input_size / n
        lo = np.floor(np.arange(n) * p).astype(np.int64)
        hi = np.minimum(np.ceil((np.arange(n) + 1) * p).astype(np.int64), input_size) - 1
        axes.append(Axis(np.stack([lo, hi], axis=1), 0.0, p - 1, p))
    return ReceptiveField(layer, input_size, axes[0], axes[1], notes=(TOKEN_NOTE, *notes))


def effective_field(net: nn.Module, layer: str, input_size: int, grid: tuple[int, int], seed: int = 0,
                    probes: int = 4, share: float = 0.01) -> ReceptiveField:
    """The effective field: pixels whose input gradient for the centre neuron (all channels,
    random probe images) reaches `share` of the largest, as a box translated along the grid
    (stride input_size / grid) and clipped to the image. `net(x)` -> {layer: (B, C, H, W)}."""
    g = torch.Generator().manual_seed(seed)
    param = next(iter(net.parameters()), None)
    x = torch.randn(probes, 3, input_size, input_size, generator=g)
    if param is not None:
        x = x.to(param.device, param.dtype)
    x.requires_grad_(True)
    with torch.enable_grad():
        act = net(x)[layer]
        cy, cx = act.shape[2] // 2, act.shape[3] // 2
        grad, = torch.autograd.grad(act[:, :, cy, cx].float().sum(), x)
    mag = grad.abs().sum((0, 1)).float()
    keep = mag >= share * mag.max().clamp_min(1e-30)
    ys, xs = torch.nonzero(keep, as_tuple=True)
    if len(ys) == 0:
        ys, xs = torch.tensor([0, input_size - 1]), torch.tensor([0, input_size - 1])
    axes = []
    for n, c, lo0, hi0 in ((grid[0], cy, int(ys.min()), int(ys.max())), (grid[1], cx, int(xs.min()), int(xs.max()))):
        jump = input_size / n
        shift = (np.arange(n) - c) * jump
        lo = np.clip(np.round(lo0 + shift), 0, input_size - 1).astype(np.int64)
        hi = np.clip(np.round(hi0 + shift), 0, input_size - 1).astype(np.int64)
        axes.append(Axis(np.stack([lo, np.maximum(lo, hi)], axis=1), lo0 - c * jump, hi0 - c * jump, jump))
    return ReceptiveField(layer, input_size, axes[0], axes[1], notes=(WHOLE_NOTE,))


def receptive_fields(model: nn.Module, input_size: int, layers: list) -> dict[str, ReceptiveField]:
    """The receptive field of every layer in `layers` for a square input.

    `layers` are node names, or LayerRefs: then token layers get their patch boxes and a map
    layer whose every field is the whole image gets its effective field. A model the tracer
    cannot follow gets whole-image fields with a note (and effective fields for maps)."""
    names = [getattr(layer, "name", layer) for layer in layers]
    try:
        analysis = _Analysis(model, input_size)
        fields = {name: analysis.field(name) for name in names}
    except Exception as exc:  # noqa: BLE001 - untraceable model: no analytic geometry
        if all(isinstance(layer, str) for layer in layers):
            raise
        why = f"the model cannot be traced ({type(exc).__name__}); no analytic receptive field"
        fields = {name: ReceptiveField(name, input_size, None, None, notes=(why,)) for name in names}
    for layer in layers:
        if isinstance(layer, str) or layer.kind != "conv":
            continue
        rf, grid = fields[layer.name], tuple(layer.shape[1:])
        if layer.tokens:
            fields[layer.name] = token_field(layer.name, input_size, grid,
                                             () if layer.layout != "tokens+cls" else (CLASS_TOKEN_NOTE,))
        elif not rf.spatial or rf.rows.whole or rf.cols.whole:
            from atlas.models.layers import extractor
            fields[layer.name] = effective_field(extractor(model, [layer.name]), layer.name, input_size, grid)
    return fields


def receptive_field(model: nn.Module, input_size: int, layer: str) -> ReceptiveField:
    return receptive_fields(model, input_size, [layer])[layer]
