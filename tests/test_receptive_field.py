"""Receptive fields from the graph contain every input pixel with a nonzero gradient."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from atlas.evidence.receptive_field import receptive_fields
from atlas.models.checkpoint import prepare_for_probing
from atlas.models.layers import extractor


def _neurons(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Corners (where padding clips the field), the centre, and random positions."""
    c, h, w = shape
    fixed = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2)]
    rand = [(int(rng.integers(h)), int(rng.integers(w))) for _ in range(count)]
    return [(int(rng.integers(c)), y, x) for y, x in fixed + rand]


def _input_gradients(net: nn.Module, layer: str, size: int, neurons, seed: int,
                     dtype: torch.dtype = torch.float32) -> np.ndarray:
    """|d neuron / d input| summed over colour, one row per neuron (rows are independent in eval)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, size, size, generator=g, dtype=dtype).repeat(len(neurons), 1, 1, 1).requires_grad_(True)
    out = net(x)[layer]
    idx = torch.arange(len(neurons))
    c, y, xx = (torch.tensor(v) for v in zip(*neurons))
    out[idx, c, y, xx].sum().backward()
    return x.grad.abs().sum(1).numpy()


CASES = [
    ("alexnet", 96, ["features.0", "features.2", "features.5", "features.10", "features.12", "avgpool"]),
    ("vgg11", 64, ["features.0", "features.2", "features.8", "features.15", "features.20"]),
    ("resnet18", 64, ["conv1", "maxpool", "layer1.0.relu_1", "layer2.0.add", "layer3.1.relu_1", "layer4.1.relu_1"]),
]


@pytest.mark.parametrize("arch,size,layers", CASES, ids=[c[0] for c in CASES])
def test_gradient_inside_field(arch: str, size: int, layers: list[str]):
    torch.manual_seed(0)
    model = prepare_for_probing(torchvision.models.get_model(arch, weights=None))
    fields = receptive_fields(model, size, layers)
    net = extractor(model, layers)
    shapes = {k: tuple(v.shape[1:]) for k, v in net(torch.zeros(1, 3, size, size)).items()}
    rng = np.random.default_rng(0)
    with_gradient = 0
    for layer in layers:
        rf = fields[layer]
        assert rf.spatial and not rf.notes, (layer, rf.notes)
        neurons = _neurons(shapes[layer], 2, rng)
        grads = _input_gradients(net, layer, size, neurons, seed=with_gradient)
        for (c, y, x), grad in zip(neurons, grads):
            y0, x0, y1, x1 = rf.box(y, x)
            inside = np.zeros_like(grad, dtype=bool)
            inside[y0:y1, x0:x1] = True
            assert not (grad[~inside] > 0).any(), f"{arch} {layer} neuron {(c, y, x)}: gradient outside {rf.box(y, x)}"
            with_gradient += bool((grad > 0).any())
    assert with_gradient >= 0.8 * 7 * len(layers)  # the check is not vacuous


class _Linear(nn.Module):
    """No ReLU, no max: the gradient of every neuron is nonzero on its whole field."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, dilation=2)
        self.b = nn.Conv2d(3, 4, 5, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.c = nn.Conv2d(4, 4, 3, stride=2)
        self.adapt = nn.AdaptiveAvgPool2d(3)

    def forward(self, x):
        y = self.a(x) + self.b(x)          # two branches: the union of their fields
        return self.adapt(self.c(self.pool(y)))


def test_field_is_tight_for_linear_net():
    torch.manual_seed(1)
    model = prepare_for_probing(_Linear().double())
    size = 29
    layers = ["add", "pool", "c", "adapt"]
    fields = receptive_fields(model, size, layers)
    net = extractor(model, layers)
    shapes = {k: tuple(v.shape[1:]) for k, v in net(torch.zeros(1, 3, size, size, dtype=torch.float64)).items()}
    for layer in layers:
        rf = fields[layer]
        _, h, w = shapes[layer]
        edge = lambda n: sorted({0, 1, 2, n // 2, n - 2, n - 1} & set(range(n)))  # noqa: E731
        neurons = [(0, y, x) for y in edge(h) for x in edge(w)]
        grads = _input_gradients(net, layer, size, neurons, seed=1, dtype=torch.float64)
        for (c, y, x), grad in zip(neurons, grads):
            ys, xs = np.nonzero(grad)
            assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == rf.box(y, x), (layer, y, x)


def test_known_alexnet_geometry():
    model = prepare_for_probing(torchvision.models.alexnet(weights=None))
    f = receptive_fields(model, 224, ["features.0", "features.10", "features.12", "classifier.1"])
    assert f["features.0"].nominal_size == (11, 11) and f["features.0"].jump == (4.0, 4.0)
    assert f["features.10"].nominal_size == (163, 163) and f["features.10"].jump == (16.0, 16.0)
    assert f["features.12"].nominal_size == (195, 195) and f["features.12"].jump == (32.0, 32.0)
    assert not f["classifier.1"].spatial and f["classifier.1"].box(0, 0) == (0, 0, 224, 224)
    # padding clips the corner neuron's field of conv1: rows -2..8 -> 0..8
    assert f["features.0"].box(0, 0) == (0, 0, 9, 9)


def test_global_operation_is_noted():
    model = prepare_for_probing(torchvision.models.mobilenet_v3_small(weights=None))
    rf = receptive_fields(model, 64, ["features.4.block.2"])["features.4.block.2"]
    assert rf.notes and rf.box(0, 0) == (0, 0, 64, 64)
