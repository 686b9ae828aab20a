"""Faster optimization steps that compute the same thing: batch norm folded into the
convolution before it, and `featvis_dtype` (bfloat16 autocast of the network's steps)."""
import copy

import pytest
import torch
import torch.fx as fx
import torch.nn as nn

from atlas.config import ConfigError, from_dict
from atlas.models import get_spec
from atlas.models.checkpoint import prepare_for_probing
from atlas.models.fold import SpaceToDepthConv, fold_batchnorm, pool_before_relu, space_to_depth
from atlas.models.layers import extractor
from atlas.models.worldnet import WorldNet
from atlas.priors.fourier import FourierSettings, fourier_visualize
from atlas.priors.objectives import unit_objective
from atlas.priors.target import NetTarget, bf16_native, compute_dtype, to_uint8


def _net() -> nn.Module:
    """A small WorldNet whose batch norms have non-trivial running statistics."""
    torch.manual_seed(0)
    net = WorldNet(width=4, fc=16)
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return prepare_for_probing(net)


def test_fold_computes_the_same_function_and_leaves_the_model_alone():
    net = _net()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    plain = extractor(net, ["classifier.fc8"])
    folded = extractor(net, ["classifier.fc8"])
    assert fold_batchnorm(folded.inner) == 5
    called = [folded.inner.get_submodule(n.target) for n in folded.inner.graph.nodes if n.op == "call_module"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in called)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 5   # the model keeps its own
    torch.testing.assert_close(folded(x)["classifier.fc8"], plain(x)["classifier.fc8"], rtol=1e-4, atol=1e-5)
    # gradients with respect to the image, which is what the priors use, agree too
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ga, = torch.autograd.grad(folded(xa)["classifier.fc8"][:, 1].sum(), xa)
    gb, = torch.autograd.grad(plain(xb)["classifier.fc8"][:, 1].sum(), xb)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_fold_keeps_an_extracted_convolution_and_folds_an_extracted_batch_norm():
    net = _net()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    reads_conv = extractor(net, ["features.conv1", "features.conv2"])
    reads_bn = extractor(net, ["features.bn2"])
    want_conv = {k: v.clone() for k, v in reads_conv(x).items()}
    want_bn = reads_bn(x)["features.bn2"].clone()
    # conv1 and conv2 are read: neither folds (conv3..5 have nothing extracted past them: pruned)
    assert fold_batchnorm(reads_conv.inner) == 0
    assert fold_batchnorm(reads_bn.inner) == 2     # bn1, and bn2 whose value is then conv2's
    for k, v in reads_conv(x).items():
        torch.testing.assert_close(v, want_conv[k])
    torch.testing.assert_close(reads_bn(x)["features.bn2"], want_bn, rtol=1e-4, atol=1e-5)


def test_fold_skips_a_training_batch_norm():
    gm = fx.symbolic_trace(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train())
    assert fold_batchnorm(gm) == 0


def test_compute_dtype_names():
    assert compute_dtype("float32", "cpu") is None
    assert compute_dtype("bfloat16", "cpu") is torch.bfloat16
    assert compute_dtype("auto", "cpu") is (torch.bfloat16 if bf16_native() else None)
    with pytest.raises(ValueError, match="featvis_dtype"):
        compute_dtype("half", "cpu")


def test_config_refuses_an_unknown_dtype():
    with pytest.raises(ConfigError, match="featvis_dtype"):
        from_dict({"featvis_dtype": "fp8"})


def test_bfloat16_steps_raise_the_unit_and_measure_in_float32():
    """bfloat16 steps still climb; the values returned and stored are float32 and equal a
    float32 network's on the same images, even when called inside an autocast region."""
    spec = get_spec("worldnet")
    net = _net()
    fast = NetTarget(net, spec, channels_last=True, compute_dtype=torch.bfloat16)
    exact = NetTarget(net, spec, fold=False)
    obj = unit_objective("classifier.fc8", torch.tensor([0, 1, 2]))
    start = obj(exact(torch.full((3, 3, 32, 32), 0.5), obj.nodes))
    images, acts = fourier_visualize(fast, obj, [5, 6, 7], FourierSettings(iters=20))
    assert acts.dtype == torch.float32 and torch.all(acts > start)
    again, _ = fourier_visualize(fast, obj, [5, 6, 7], FourierSettings(iters=20))
    assert torch.equal(images, again)                       # deterministic: the same chunk, the same pixels
    stored = to_uint8(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        measured = fast.activations_of_uint8(stored, obj)
    assert measured.dtype == torch.float32
    torch.testing.assert_close(measured, exact.activations_of_uint8(stored, obj), rtol=1e-4, atol=1e-4)


def test_stored_low_precision_weights_compute_what_autocast_computes():
    """The steps' copy with bfloat16 weights gives bit for bit what autocast gives on the
    float32 network (it only saves re-casting the weights every step)."""
    spec = get_spec("worldnet")
    fast = NetTarget(_net(), spec, channels_last=True, compute_dtype=torch.bfloat16)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    nodes = {"features.conv3", "classifier.fc8"}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = fast.net_for(nodes)(fast.normalize(x).contiguous(memory_format=torch.channels_last))
    got = fast(x, nodes, steps=True)
    for k in nodes:
        assert got[k].dtype == torch.float32 and torch.equal(got[k], want[k].float())
    assert fast(x, nodes)["classifier.fc8"].dtype == torch.float32   # measuring: float32 weights


def test_pool_before_relu_is_exact_in_values_and_gradients():
    net = _net()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    for dtype in (torch.float32, torch.bfloat16):
        copy_ = copy.deepcopy(net).to(dtype)
        plain = extractor(copy_, ["classifier.fc8", "features.relu5"])
        swapped = extractor(copy_, ["classifier.fc8", "features.relu5"])
        # relu1 -> pool1 and relu2 -> pool2 swap; relu5 is read: it stays before pool5
        assert pool_before_relu(swapped.inner) == 2
        xa, xb = x.to(dtype).requires_grad_(True), x.to(dtype).requires_grad_(True)
        a, b = swapped(xa), plain(xb)
        for k in a:
            assert torch.equal(a[k], b[k])
        ga, = torch.autograd.grad(a["classifier.fc8"][:, 2].sum(), xa)
        gb, = torch.autograd.grad(b["classifier.fc8"][:, 2].sum(), xb)
        assert torch.equal(ga, gb)
    assert pool_before_relu(fx.symbolic_trace(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True)))) == 0


@pytest.mark.parametrize("cin,cout,k,s,p,h", [(3, 16, 11, 4, 2, 67), (3, 8, 5, 2, 1, 33), (2, 4, 3, 3, 0, 17),
                                              (3, 5, 4, 2, 3, 20)])
def test_space_to_depth_convolution_is_the_strided_convolution(cin, cout, k, s, p, h):
    torch.manual_seed(6)
    conv = nn.Conv2d(cin, cout, k, s, p).double().eval().requires_grad_(False)
    x = torch.randn(2, cin, h, h, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    gm = fx.symbolic_trace(nn.Sequential(conv, nn.ReLU()))
    assert space_to_depth(gm) == 1 and isinstance(gm.get_submodule("0"), SpaceToDepthConv)
    z = gm(x)
    assert z.shape == y.shape
    torch.testing.assert_close(z, torch.relu(y), rtol=0, atol=1e-12)
    g1, = torch.autograd.grad(z.sum(), x)
    g2, = torch.autograd.grad(torch.relu(conv(x)).sum(), x)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)
    # a stride-1 or many-channel convolution stays as it is
    assert space_to_depth(fx.symbolic_trace(nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1)))) == 0
    assert space_to_depth(fx.symbolic_trace(nn.Sequential(nn.Conv2d(16, 4, 3, 2, 1)))) == 0


def test_fold_leaves_a_shared_convolution_alone():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn_a, self.bn_b = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn_a(self.conv(x)) + self.bn_b(self.conv(x))

    gm = fx.symbolic_trace(prepare_for_probing(Shared()))
    assert fold_batchnorm(gm) == 0
