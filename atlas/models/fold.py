"""Cheaper graphs computing the same function, for eval-mode feature extractors.

Batch norm folded into the convolution before it:

An eval-mode BatchNorm is a per-channel affine map, so `bn(conv(x))` equals one
convolution with scaled weights and a shifted bias (`torch.nn.utils.fusion`). Folding
removes the batch norm's forward and backward from every optimization step of the image
priors (a tenth of a step for the CIFAR-10 network at 32 px) and computes the same
function up to float rounding.

Max pooling moved before the ReLU that feeds it: `relu(maxpool(x)) == maxpool(relu(x))`
exactly (ReLU is monotone), and so are the image gradients (both route a window's
gradient to its largest input, and to nothing when that is <= 0); the ReLU then runs on
the pooled map, a quarter of the size after a 2x2 pool.
"""
from __future__ import annotations

from collections import Counter

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

_PAIRS = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))


def fold_batchnorm(gm: fx.GraphModule) -> int:
    """Fold every `conv -> bn` pair of `gm` (eval mode) whose conv output feeds only the bn;
    the graph's submodules are replaced, never changed in place (they are the model's own).
    A conv whose output is also read elsewhere (an extracted node) is left alone.
    Returns the number of pairs folded."""
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        prev = node.args[0]
        if prev.op != "call_module" or len(prev.users) != 1 or calls[prev.target] != 1 or calls[node.target] != 1:
            continue   # a module called twice (shared weights) keeps its own
        conv, bn = modules.get(prev.target), modules.get(node.target)
        if not any(isinstance(conv, c) and type(bn) is b for c, b in _PAIRS):
            continue
        if conv.training or bn.training or not bn.track_running_stats:
            continue
        _replace(gm, prev.target, fuse_conv_bn_eval(conv, bn))
        modules[prev.target] = gm.get_submodule(prev.target)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded += 1
    if folded:
        gm.graph.lint()
        gm.recompile()
    return folded


def _replace(gm: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)


_RELU_FUNCTIONS = (F.relu, torch.relu)
_POOL_FUNCTIONS = (F.max_pool1d, F.max_pool2d, F.max_pool3d)


def pool_before_relu(gm: fx.GraphModule) -> int:
    """Swap every `relu -> max pool` pair of `gm` whose ReLU output feeds only the pool (an
    extracted ReLU is left alone); returns the number of pairs swapped."""
    modules = dict(gm.named_modules())
    graph, swapped = gm.graph, 0
    for pool in list(graph.nodes):
        if not _is_pool(pool, modules) or not pool.args or not isinstance(pool.args[0], fx.Node):
            continue
        relu = pool.args[0]
        if not _is_relu(relu, modules) or len(relu.users) != 1 or len(relu.args) != 1:
            continue
        with graph.inserting_after(pool):
            after = graph.create_node(relu.op, relu.target, (pool,), {})
        pool.replace_all_uses_with(after, delete_user_cb=lambda user: user is not after)
        pool.args = (relu.args[0], *pool.args[1:])
        graph.erase_node(relu)
        swapped += 1
    if swapped:
        graph.lint()
        gm.recompile()
    return swapped


def _is_relu(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        m = modules.get(node.target)
        return type(m) is nn.ReLU and not m.inplace
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS and not node.kwargs
    return node.op == "call_method" and node.target == "relu" and not node.kwargs


def _is_pool(node: fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        m = modules.get(node.target)
        return isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) and not m.return_indices
    return (node.op == "call_function" and node.target in _POOL_FUNCTIONS
            and not node.kwargs.get("return_indices", False) and not any(a is True for a in node.args[6:7]))


class SpaceToDepthConv(nn.Module):
    """A strided convolution over few input channels (AlexNet's conv1: 3 -> 64, 11x11,
    stride 4) as pixel_unshuffle + a stride-1 convolution over s*s times the channels:
    the same sums (up to their order), but oneDNN's gradient with respect to a 3-channel
    strided input ran at a quarter of its rate on other convolutions (32 ms against 8 ms
    for 8 images at 224 px in bfloat16, one thread)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        s, k, p = conv.stride[0], conv.kernel_size[0], conv.padding[0]
        kk = -(-k // s) * s                                   # kernel padded to a multiple of s
        w = F.pad(conv.weight.detach(), (0, kk - k, 0, kk - k))
        self.weight = nn.Parameter(F.pixel_unshuffle(w, s), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.s, self.k, self.kk, self.p = s, k, kk, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, p = self.s, self.p
        h, w = x.shape[-2:]
        ho, wo = (h + 2 * p - self.k) // s + 1, (w + 2 * p - self.k) // s + 1
        lh, lw = (ho - 1) * s + self.kk, (wo - 1) * s + self.kk   # padded input the outputs read
        x = F.pad(x, (p, lw - w - p, p, lh - h - p))               # negative: trailing pixels no output reads
        x = F.pixel_unshuffle(x, s)
        return F.conv2d(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


def space_to_depth(gm: fx.GraphModule, max_in_channels: int = 4) -> int:
    """Replace every square, strided, zero-padded, ungrouped Conv2d of `gm` over at most
    `max_in_channels` channels by a SpaceToDepthConv; returns the number replaced."""
    replaced = 0
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        conv = gm.get_submodule(node.target)
        if (type(conv) is nn.Conv2d and conv.in_channels <= max_in_channels and conv.groups == 1
                and conv.stride[0] > 1 and conv.stride[0] == conv.stride[1]
                and conv.kernel_size[0] == conv.kernel_size[1] and conv.dilation == (1, 1)
                and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
                and conv.padding[0] == conv.padding[1]):
            _replace(gm, node.target, SpaceToDepthConv(conv))
            replaced += 1
    return replaced
