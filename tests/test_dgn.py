"""DGN-AM: each element of act_max.py's recipe, and batched == one at a time."""
import pytest
import torch

from atlas.models.checkpoint import prepare_for_probing
from atlas.models import get_spec
from atlas.models.worldnet import WorldNet
from atlas.priors.dgn import (AUTO_CODE_ITERS, FC6_MEAN_BOUND, DGNSettings, center_crop, dgn_am, initial_codes,
                              lr_scale, normalized_step, step_size)
from atlas.priors.generator import DeePSiM, family_config
from atlas.priors.genfile import CodeStats, GeneratorBundle
from atlas.priors.objectives import center_of, unit_objective
from atlas.priors.target import NetTarget

D = torch.float64


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = prepare_for_probing(WorldNet(num_classes=10, width=4, fc=16)).to(D)
    spec = get_spec("worldnet")
    target = NetTarget(net, spec, dtype=D)
    # output 36, cropped to the network's 32 (as 256 -> 227)
    g = DeePSiM(family_config(16, 36, width=8, fc_width=32)).init_weights(torch.Generator().manual_seed(1))
    g = g.to(D).eval().requires_grad_(False)
    ub = torch.linspace(0.5, 3.0, 16, dtype=D)
    bundle = GeneratorBundle(g, CodeStats(ub=ub))
    return target, bundle


def test_schedule_values():
    assert step_size(0, 200, 8.0, 1e-10) == 8.0
    assert step_size(100, 200, 8.0, 1e-10) == pytest.approx(4.0 + 0.5e-10)
    assert step_size(199, 200, 8.0, 1e-10) == pytest.approx(8.0 * 1 / 200 + 1e-10 * 199 / 200)
    s = DGNSettings()
    assert (s.iters, s.lr_start, s.lr_end, s.decay) == (200, 8.0, 1e-10, 0.99)


def test_step_is_normalized_by_mean_absolute_gradient():
    g = torch.tensor([[1.0, -3.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, float("nan")]])
    step, ok = normalized_step(g, 8.0)
    assert ok.tolist() == [True, False, False]
    torch.testing.assert_close(step[0], 8.0 / 2.0 * g[0])  # mean |g| = 2
    assert step[0].abs().mean() == pytest.approx(8.0)
    assert torch.all(step[1:] == 0)


def test_center_crop_offsets():
    x = torch.arange(256 * 256.0).view(1, 1, 256, 256)
    c = center_crop(x, 227)
    assert c.shape[-1] == 227 and c[0, 0, 0, 0] == 14 * 256 + 14  # act_max.py's topleft (14, 14)
    with pytest.raises(ValueError, match="smaller"):
        center_crop(torch.zeros(1, 3, 16, 16), 32)


def test_center_neuron_and_mean():
    acts = torch.arange(2 * 3 * 13 * 13.0).view(2, 3, 13, 13)
    assert center_of(acts.shape) == (6, 6)
    units = torch.tensor([2, 0])
    v = unit_objective("n", units, "center")({"n": acts})
    torch.testing.assert_close(v, torch.stack([acts[0, 2, 6, 6], acts[1, 0, 6, 6]]))
    m = unit_objective("n", units, "mean")({"n": acts})
    torch.testing.assert_close(m, torch.stack([acts[0, 2].mean(), acts[1, 0].mean()]))
    fc = unit_objective("f", units)({"f": torch.arange(20.0).view(2, 10)})
    assert fc.tolist() == [2.0, 10.0]


def test_one_iteration_by_hand(setup):
    """z1 = clip(z0 + lr g_z / mean|g_z|, 0, ub) * 0.99, g_z the gradient of the unit through crop(G)."""
    target, bundle = setup
    obj = unit_objective("classifier.fc8", torch.tensor([3, 7]))
    z0 = initial_codes([11, 12], 16, dtype=D)
    res = dgn_am(bundle, target, obj, z0, DGNSettings(iters=1))
    z = z0.clone().requires_grad_(True)
    a = obj(target(center_crop(bundle.images(z), 32), obj.nodes))
    gz, = torch.autograd.grad(a.sum(), z)
    expected = torch.minimum(torch.maximum(z0 + 8.0 * gz / gz.abs().mean(1, keepdim=True), torch.zeros(16, dtype=D)),
                             bundle.stats.ub) * 0.99
    torch.testing.assert_close(res.codes, expected)
    assert torch.all(res.codes >= 0) and torch.all(res.codes <= 0.99 * bundle.stats.ub + 1e-12)
    assert (res.codes == 0).any() and torch.isclose(res.codes, 0.99 * bundle.stats.ub).any()  # both bounds bite
    # the returned image is the one fed to the network in that (last) iteration
    torch.testing.assert_close(res.images, center_crop(bundle.images(z0), 32))
    torch.testing.assert_close(res.acts, a.detach())


def test_decay_and_clip_switches(setup):
    target, bundle = setup
    obj = unit_objective("classifier.fc8", torch.tensor([1]))
    z0 = initial_codes([5], 16, dtype=D)
    a = dgn_am(bundle, target, obj, z0, DGNSettings(iters=1, decay=0.99)).codes
    b = dgn_am(bundle, target, obj, z0, DGNSettings(iters=1, decay=1.0)).codes
    torch.testing.assert_close(a, 0.99 * b)
    free = dgn_am(bundle, target, obj, z0, DGNSettings(iters=1, decay=1.0, clip=False)).codes
    assert (free < 0).any() and not (b < 0).any()


def test_lr_in_units_of_the_bounds(setup):
    """lr_units = "bounds" is act_max.py's schedule times mean(ub) / 11.85: equal to "code"
    with the step sizes scaled by hand, and to "code" itself for CaffeNet's fc6 bounds."""
    target, bundle = setup
    obj = unit_objective("classifier.fc8", torch.tensor([1, 4]))
    z0 = initial_codes([3, 8], 16, dtype=D)
    c = float(bundle.stats.ub.mean()) / FC6_MEAN_BOUND  # ub 0.5..3.0: mean 1.75
    assert lr_scale(bundle.stats.ub, "bounds") == pytest.approx(1.75 / 11.85)
    assert lr_scale(bundle.stats.ub, "code") == 1.0
    got = dgn_am(bundle, target, obj, z0, DGNSettings(iters=5, lr_units="bounds"))
    ref = dgn_am(bundle, target, obj, z0, DGNSettings(iters=5, lr_start=8.0 * c, lr_end=1e-10 * c))
    act_max = dgn_am(bundle, target, obj, z0, DGNSettings(iters=5))
    torch.testing.assert_close(got.codes, ref.codes)
    assert not torch.allclose(got.codes, act_max.codes)
    caffe = GeneratorBundle(bundle.net, CodeStats(ub=torch.full((16,), FC6_MEAN_BOUND, dtype=D)))
    torch.testing.assert_close(dgn_am(caffe, target, obj, z0, DGNSettings(iters=5, lr_units="bounds")).codes,
                               dgn_am(caffe, target, obj, z0, DGNSettings(iters=5)).codes)
    with pytest.raises(ValueError, match="lr_units"):
        DGNSettings(lr_units="pixels")


def test_lr_units_auto_follows_the_schedule_length(setup):
    """lr_units = "auto" is act_max.py's own steps ("code") for 100 iterations or more and
    "bounds" for shorter schedules (the quick demo's 40)."""
    target, bundle = setup
    ub = bundle.stats.ub
    assert lr_scale(ub, "auto", 200) == lr_scale(ub, "auto", AUTO_CODE_ITERS) == lr_scale(ub, "code") == 1.0
    assert lr_scale(ub, "auto", 40) == lr_scale(ub, "auto", AUTO_CODE_ITERS - 1) == lr_scale(ub, "bounds")
    with pytest.raises(ValueError, match="iterations"):
        lr_scale(ub, "auto")
    obj = unit_objective("classifier.fc8", torch.tensor([1, 4]))
    z0 = initial_codes([3, 8], 16, dtype=D)
    for iters, same_as in ((5, "bounds"), (AUTO_CODE_ITERS, "code")):
        torch.testing.assert_close(dgn_am(bundle, target, obj, z0, DGNSettings(iters=iters, lr_units="auto")).codes,
                                   dgn_am(bundle, target, obj, z0, DGNSettings(iters=iters, lr_units=same_as)).codes)


def test_last_iterate_returned(setup):
    target, bundle = setup
    obj = unit_objective("classifier.fc8", torch.tensor([2, 5]))
    z0 = initial_codes([1, 2], 16, dtype=D)
    s = DGNSettings(iters=6)
    res = dgn_am(bundle, target, obj, z0, s)
    prev = dgn_am(bundle, target, obj, z0, DGNSettings(iters=6, lr_start=8.0, lr_end=1e-10))
    torch.testing.assert_close(res.images, prev.images)  # deterministic
    # run 5 iterations of the same schedule by hand: the 6th image is G(z after 5 steps)
    z = z0.clone()
    for i in range(5):
        zi = z.clone().requires_grad_(True)
        a = obj(target(center_crop(bundle.images(zi), 32), obj.nodes))
        gz, = torch.autograd.grad(a.sum(), zi)
        lr = step_size(i, 6, 8.0, 1e-10)
        z = torch.minimum(torch.maximum(z + lr * gz / gz.abs().mean(1, keepdim=True), torch.zeros_like(z)),
                          bundle.stats.ub) * 0.99
    torch.testing.assert_close(res.images, center_crop(bundle.images(z), 32))
    torch.testing.assert_close(res.acts, obj(target(res.images, obj.nodes)))


@pytest.mark.parametrize("clip_image", [False, True])
def test_batched_equals_one_at_a_time(setup, clip_image):
    """Each batch element is optimized as if alone, with and without `dgn_clip_image` (the
    default: the generated image clipped to the valid pixel range each step)."""
    target, bundle = setup
    units = [0, 4, 9, 4, 7]
    seeds = [10, 11, 12, 13, 14]
    s = DGNSettings(iters=12, clip_image=clip_image)
    z0 = initial_codes(seeds, 16, dtype=D)
    batched = dgn_am(bundle, target, unit_objective("classifier.fc8", torch.tensor(units)), z0, s)
    for b, (u, sd) in enumerate(zip(units, seeds)):
        one = dgn_am(bundle, target, unit_objective("classifier.fc8", torch.tensor([u])),
                     initial_codes([sd], 16, dtype=D), s)
        torch.testing.assert_close(batched.images[b:b + 1], one.images, atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(batched.codes[b:b + 1], one.codes, atol=1e-9, rtol=1e-7)
        torch.testing.assert_close(batched.acts[b:b + 1], one.acts, atol=1e-9, rtol=1e-7)


def test_batched_equals_one_at_a_time_conv_centre(setup):
    target, bundle = setup
    units = [1, 3, 0]
    s = DGNSettings(iters=8)
    batched = dgn_am(bundle, target, unit_objective("features.conv4", torch.tensor(units)),
                     initial_codes([1, 2, 3], 16, dtype=D), s)
    for b, u in enumerate(units):
        one = dgn_am(bundle, target, unit_objective("features.conv4", torch.tensor([u])),
                     initial_codes([b + 1], 16, dtype=D), s)
        torch.testing.assert_close(batched.images[b:b + 1], one.images, atol=1e-9, rtol=1e-7)


def test_zero_gradient_stops_that_element_only(setup):
    target, bundle = setup
    fc7 = target.model.classifier.fc7
    saved = fc7.bias[5].item(), fc7.weight[5].clone()
    with torch.no_grad():  # unit 5 of relu7 is dead for every input: its gradient is exactly zero
        fc7.weight[5].zero_()
        fc7.bias[5] = -1.0
    try:
        res = dgn_am(bundle, target, unit_objective("classifier.relu7", torch.tensor([5, 2])),
                     initial_codes([1, 2], 16, dtype=D), DGNSettings(iters=7))
    finally:
        with torch.no_grad():
            fc7.bias[5], fc7.weight[5] = saved[0], saved[1]
    assert res.iterations.tolist()[0] == 1
    assert res.iterations.tolist()[1] == 7 or res.acts[1] == 0


def test_initial_codes_depend_on_seed_only():
    a = initial_codes([3, 4], 32)
    b = initial_codes([4], 32)
    torch.testing.assert_close(a[1:], b)
    assert not torch.allclose(a[0], a[1])
    assert abs(float(initial_codes(list(range(50)), 64).std()) - 1.0) < 0.05


def test_clip_image_option(setup):
    """Off (act_max.py): the network sees G's raw output; on: the displayable image."""
    target, bundle = setup
    obj = unit_objective("classifier.fc8", torch.tensor([3]))
    z0 = initial_codes([2], 16, dtype=D) * 5
    raw = center_crop(bundle.images(z0), 32)
    assert raw.min() < 0 or raw.max() > 1  # the test generator leaves the range
    off = dgn_am(bundle, target, obj, z0, DGNSettings(iters=1))
    on = dgn_am(bundle, target, obj, z0, DGNSettings(iters=1, clip_image=True))
    torch.testing.assert_close(off.images, raw)
    torch.testing.assert_close(on.images, raw.clamp(0, 1))
    torch.testing.assert_close(on.acts, obj(target(raw.clamp(0, 1), obj.nodes)))
