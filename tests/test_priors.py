"""Image-space priors (pixel with Yosinski's regularizers, Lucid's Fourier), objectives, transforms."""
import numpy as np
import pytest
import torch

from atlas.models.checkpoint import prepare_for_probing
from atlas.models import get_spec
from atlas.models.worldnet import WorldNet
from atlas.priors.fourier import FourierSettings, fourier_param, fourier_visualize, rfft2d_freqs
from atlas.priors.objectives import Objective, diversity, unit_objective
from atlas.priors.pixel import PixelSettings, _zero_below_percentile, pixel_visualize
from atlas.priors.render import NormalizedAscent
from atlas.priors.target import NetTarget, to_uint8
from atlas.priors.transforms import RandomAffine, gaussian_blur, lucid_transforms


@pytest.fixture(scope="module")
def target():
    torch.manual_seed(0)
    return NetTarget(prepare_for_probing(WorldNet(width=4, fc=16)), get_spec("worldnet"))


def test_objectives_add_scale_negate():
    acts = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[10.0], [20.0]])}
    o1 = unit_objective("a", torch.tensor([1, 0]))
    o2 = unit_objective("b", torch.tensor([0, 0]))
    combo = o1 + 0.5 * o2 - 1.0
    assert combo(acts).tolist() == [2 + 5 - 1, 3 + 10 - 1]
    assert (-o1)(acts).tolist() == [-2.0, -3.0]
    assert combo.nodes == {"a", "b"}
    assert isinstance(combo, Objective)


def test_diversity_is_minus_mean_cosine_within_group():
    a = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    a[1] = a[0] * 2  # same Gram direction as element 0
    v = diversity("n", torch.tensor([0, 0, 1, 2]))({"n": a})
    assert v[0].item() == pytest.approx(-1.0) and v[1].item() == pytest.approx(-1.0)
    assert v[2].item() == 0 and v[3].item() == 0  # alone in their group


def test_pixel_regularizer_percentile_zeroing():
    x = torch.arange(1, 17.0).view(1, 1, 4, 4).repeat(1, 3, 1, 1)
    _zero_below_percentile(x, x.norm(dim=1), 50.0)
    assert (x[0, 0] == 0).sum() == 8 and x[0, 0].max() == 16


def test_pixel_raises_activation_and_stays_in_range(target):
    obj = unit_objective("classifier.fc8", torch.tensor([0, 3]))
    start = obj(target(torch.full((2, 3, 32, 32), 0.5), obj.nodes))
    images, acts = pixel_visualize(target, obj, [1, 2], PixelSettings(iters=15))
    assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert torch.all(acts > start + 0.1)


def test_pixel_decay_and_blur_act(target):
    obj = unit_objective("classifier.fc8", torch.tensor([1]))
    plain, _ = pixel_visualize(target, obj, [1], PixelSettings(iters=8, decay=0, blur_sigma=0, norm_pct=0))
    reg, _ = pixel_visualize(target, obj, [1], PixelSettings(iters=8, decay=0.2, blur_sigma=1.0, blur_every=1,
                                                             norm_pct=0))
    dev = lambda im: (im - 0.5).abs().mean()  # noqa: E731
    assert dev(reg) < dev(plain)
    # high frequencies are damped by the blur
    hf = lambda im: (im[..., 1:] - im[..., :-1]).abs().mean()  # noqa: E731
    assert hf(reg) < hf(plain)


def test_negative_images_minimize(target):
    obj = unit_objective("classifier.fc8", torch.tensor([2, 2]))
    _, up = pixel_visualize(target, obj, [1, 2], PixelSettings(iters=10))
    neg_images, _ = pixel_visualize(target, -obj, [1, 2], PixelSettings(iters=10))
    down = obj(target(neg_images, obj.nodes))
    assert torch.all(down < up)


def test_fourier_param_shapes_and_seeds():
    params, image_fn = fourier_param([1, 2, 1], 16)
    assert params[0].shape == (3, 3, 16, 9, 2)
    img = image_fn()
    assert img.shape == (3, 3, 16, 16) and img.min() > 0 and img.max() < 1
    torch.testing.assert_close(img[0], img[2])
    assert not torch.allclose(img[0], img[1])
    f = rfft2d_freqs(4, 4)
    assert f.shape == (4, 3) and f[0, 0] == 0 and f[0, 2] == pytest.approx(0.5)


def test_fourier_raises_activation(target):
    obj = unit_objective("features.conv3", torch.tensor([0, 1]), "center")
    start = obj(target(torch.full((2, 3, 32, 32), 0.5), obj.nodes))
    images, acts = fourier_visualize(target, obj, [3, 4], FourierSettings(iters=15))
    assert images.shape == (2, 3, 32, 32)
    assert torch.all(acts > start)


def test_fourier_with_diversity_pushes_seeds_apart(target):
    """The diversity term couples the seeds of a unit: with it, the two seeds' images end up
    less alike (higher diversity score, i.e. lower Gram similarity) than without it, from
    the same starting parameters."""
    unit = unit_objective("classifier.fc8", torch.tensor([0, 0]))
    spread = diversity("features.conv2", torch.tensor([0, 0]))
    plain, _ = fourier_visualize(target, unit, [1, 2], FourierSettings(iters=30))
    diverse, _ = fourier_visualize(target, unit + 2.0 * spread, [1, 2], FourierSettings(iters=30))
    assert diverse.shape == (2, 3, 32, 32) and not torch.allclose(plain, diverse)
    with torch.no_grad():
        score_plain = spread(target(plain, spread.nodes)).mean()
        score_diverse = spread(target(diverse, spread.nodes)).mean()
    assert score_diverse > score_plain


def test_affine_identity_and_randomness():
    img = torch.rand(2, 3, 8, 8)
    ident = RandomAffine([1, 2], 3, 8, jitter=0, scales=[1.0], angles=[0.0])
    torch.testing.assert_close(ident(img), img, atol=1e-5, rtol=1e-5)
    shift = RandomAffine([1], 1, 8, jitter=0, scales=[1.0], angles=[0.0])
    shift.params[0, 0, 1] = 1.0  # dx = 1 pixel: content moves right, gray comes in on the left
    out = shift(img[:1])
    torch.testing.assert_close(out[..., 1:], img[:1, ..., :-1], atol=1e-5, rtol=1e-5)
    assert torch.allclose(out[..., 0], torch.full_like(out[..., 0], 0.5))
    t1 = lucid_transforms(32, [5, 6], 4)[0]
    t2 = lucid_transforms(32, [6], 4)[0]
    torch.testing.assert_close(t1.params[:, 1], t2.params[:, 0])  # per-element streams


def test_gaussian_blur_keeps_constants_and_mass():
    const = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 1.0), const)
    spike = torch.zeros(1, 1, 15, 15)
    spike[0, 0, 7, 7] = 1
    out = gaussian_blur(spike, 1.0)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5) and out[0, 0, 7, 7] < 0.2


def test_normalized_ascent_step_size():
    p = torch.zeros(2, 4, requires_grad=True)
    opt = NormalizedAscent([p], lr=0.5)
    p.grad = torch.tensor([[1.0, 1.0, -2.0, 0.0], [1e-6, 0, 0, 0]])
    opt.step()
    assert p[0].abs().mean().item() == pytest.approx(0.5) and p[1].abs().mean().item() == pytest.approx(0.5)
    assert p[0, 2] > 0  # minimizes: steps against the gradient


def test_to_uint8_and_activation_of_stored(target):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    u8 = to_uint8(x)
    assert u8.dtype == torch.uint8 and u8.shape == (2, 32, 32, 3)
    obj = unit_objective("classifier.fc8", torch.tensor([1, 2]))
    a = target.activations_of_uint8(u8, obj)
    b = obj(target(torch.from_numpy(np.asarray(u8)).permute(0, 3, 1, 2).float() / 255, obj.nodes))
    torch.testing.assert_close(a, b)
