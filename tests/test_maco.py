"""The MACO prior: the spectrum from the data set, phase-only images under it, and the
featvis stage that depends on the dataset stage for it."""
from __future__ import annotations

import numpy as np
import torch

from atlas.config import Config
from atlas.context import Context
from atlas.models import get_spec, load_model
from atlas.priors.maco import color_matrix, data_spectrum, maco_param, maco_visualize, spatial
from atlas.priors.objectives import unit_objective
from atlas.priors.plugins.maco import MacoSettings, spectrum_ids
from atlas.priors.target import NetTarget
from atlas.priors.transforms import Noise, RandomCrop
from atlas.stages import dataset, featvis
from atlas.stages.base import run_stage
from atlas.artifacts.store import RunStore, read_json


def test_spectrum_of_a_grating_peaks_at_its_frequency():
    y, x = np.mgrid[0:16, 0:16]
    grating = 0.5 + 0.4 * np.cos(2 * np.pi * 3 * x / 16)            # 3 cycles across
    rgb = np.stack([grating, grating * 0.5 + 0.2, 1 - grating], -1)
    mag = data_spectrum((rgb[None] * 255).round().astype(np.uint8))
    assert mag.shape == (3, 16, 9)
    energy = mag.sum(0)
    energy[0, 0] = 0                                                  # the mean
    assert np.unravel_index(energy.argmax(), energy.shape) == (0, 3)
    assert energy[0, 3] > 20 * np.delete(energy.ravel(), 3).max()


def test_phase_only_images_keep_the_magnitude():
    rng = np.random.default_rng(0)
    mag = rng.uniform(0.5, 2.0, (3, 16, 9)).astype(np.float32)
    params, image_fn = maco_param([4, 5], mag)
    img = spatial(params[0], torch.tensor(mag), 16).detach().double()
    spec = torch.fft.rfft2(img).abs().numpy()
    inner = (slice(None), slice(None), slice(None), slice(1, 8))      # columns irfft2 keeps whole
    ratio = spec[inner] / mag[None][inner]
    for b in range(2):                                                # one scale per image
        np.testing.assert_allclose(ratio[b], ratio[b].mean(), rtol=1e-4)
    a, b = image_fn().detach(), maco_param([4], mag)[1]().detach()
    torch.testing.assert_close(a[:1], b)                              # an element's image: its seed only
    assert not torch.allclose(a[0], a[1])
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # the colour matrix maps the decorrelated image back to RGB
    rgb = torch.einsum("ij,bjhw->bihw", torch.tensor(color_matrix()), spatial(params[0], torch.tensor(mag), 16))
    torch.testing.assert_close(torch.sigmoid(rgb), a)


def test_crops_and_noise_are_seeded_per_element():
    img = torch.rand(3, 3, 12, 12)
    c1, c2 = RandomCrop([1, 2, 3], 4, 0.5, 0.9, 0.1), RandomCrop([2], 4, 0.5, 0.9, 0.1)
    torch.testing.assert_close(c1(img)[1:2], c2(img[1:2]))
    full = RandomCrop([1], 1, 1.0, 1.0, 0.0)(img[:1])
    torch.testing.assert_close(full, img[:1], atol=1e-5, rtol=0)      # a whole-image crop is the image
    n1, n2 = Noise([7, 8], 0.1), Noise([8], 0.1)
    torch.testing.assert_close(n1(img[:2])[1:], n2(img[1:2]))
    assert 0.05 < float((n1(img[:2]) - img[:2]).std()) < 0.2


def test_maco_raises_its_unit(tmp_path):
    spec = get_spec("worldnet")
    target = NetTarget(load_model(spec), spec)
    mag = data_spectrum(np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    obj = unit_objective("classifier.fc8", torch.tensor([2, 2]))
    _, before = maco_visualize(target, obj, [1, 2], mag, MacoSettings(iters=1, lr=1e-6))
    _, after = maco_visualize(target, obj, [1, 2], mag, MacoSettings(iters=30))
    assert (after > before + 1).all()


def test_featvis_stage_depends_on_the_dataset(tmp_path):
    cfg = Config(model="worldnet", layers=["fc8"], units_limit=2, seeds=1, priors=["maco", "fourier"],
                 maco_iters=3, fourier_iters=3, world_count=40, out=str(tmp_path / "run"))
    ctx = Context(cfg, RunStore(cfg.out))
    run_stage(ctx, dataset.make(ctx))
    (stage,) = featvis.make(ctx)
    assert stage.deps == ("dataset",)
    assert run_stage(ctx, stage) == "ran"
    out = ctx.store.stage_dir(stage.name)
    meta = read_json(out / "meta.json")
    assert meta["maco"]["spectrum_images"] == 40 and meta["labels"]["maco"]["column"] == "MACO"
    assert np.load(out / "maco.npy").shape == (2, 1, 32, 32, 3)
    fourier_only = featvis.make(Context(Config(**{**vars(cfg), "priors": ["fourier"]}), RunStore(cfg.out)))[0]
    assert fourier_only.deps == ()
    assert spectrum_ids(10, 4) == [0, 2, 5, 7] and spectrum_ids(3, 4) == [0, 1, 2]
