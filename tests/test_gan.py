"""The unconditional GAN prior (atlas/train/gan.py) and the device data pack."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas.data import world
from atlas.models import get_spec
from atlas.models.checkpoint import prepare_for_probing
from atlas.models.worldnet import WorldNet
from atlas.priors.dgn import DGNSettings, dgn_am, initial_codes
from atlas.priors.genfile import load_generator
from atlas.priors.objectives import unit_objective
from atlas.priors.target import NetTarget
from atlas.train.gan import GANConfig, SNDiscriminator, latent, train_gan

ROOT = Path(__file__).resolve().parents[1]


def _pixels(n=32):
    return np.stack([world.render(1, i, 32)[0] for i in range(n)])


def test_latent_is_nonnegative_and_seeded():
    a, b = latent(64, 8, torch.Generator().manual_seed(3)), latent(64, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and bool((a >= 0).all()) and 0.3 < float((a == 0).float().mean()) < 0.7


def test_discriminator_is_spectrally_normalized():
    d = SNDiscriminator(width=4, size=32)
    for _ in range(30):  # each training forward runs one power iteration
        assert d(torch.rand(3, 3, 32, 32)).shape == (3,)
    d.eval()
    with torch.no_grad():
        w = d.convs[1].weight  # the normalized weight, as a (out, in * k * k) matrix
        assert float(torch.linalg.matrix_norm(w.flatten(1), ord=2)) == pytest.approx(1.0, rel=0.05)


def test_gan_trains_and_serves_as_a_dgn_prior(tmp_path):
    cfg = GANConfig(code_dim=16, width=16, fc_width=32, d_width=4, steps=12, batch_size=8)
    out = tmp_path / "gan.pt"
    logs = []
    train_gan(_pixels(), cfg, out, tmp_path / "work", log=logs.append)
    assert (tmp_path / "work" / "samples_final.png").is_file() and "after 12 steps" in logs[-1]
    bundle = load_generator(out)
    assert bundle.code_dim == 16 and bundle.cfg.out_size == 32 and bundle.meta["kind"] == "gan"
    # the clip range DGN-AM uses is that of the latent ReLU(N(0, 1)): mean 0.40, std 0.58
    assert float(bundle.stats.mean.mean()) == pytest.approx(0.399, abs=0.02)
    torch.testing.assert_close(bundle.stats.ub, bundle.stats.mean + 3 * bundle.stats.std)
    torch.manual_seed(0)
    net = prepare_for_probing(WorldNet(num_classes=10, width=4, fc=16))
    target = NetTarget(net, get_spec("worldnet"))
    obj = unit_objective("classifier.fc8", torch.tensor([2, 5]))
    z0 = initial_codes([1, 2], 16)
    before = obj(target(bundle.images(z0).clamp(0, 1), obj.nodes))
    res = dgn_am(bundle, target, obj, z0, DGNSettings(iters=30, clip_image=True))
    assert bool((res.acts > before).all())
    assert bool((res.codes >= 0).all()) and bool((res.codes <= bundle.stats.ub).all())


def test_gan_time_budget_and_bad_images(tmp_path):
    cfg = GANConfig(code_dim=8, width=8, fc_width=16, d_width=4, steps=10_000, batch_size=4)
    bundle = train_gan(_pixels(8), cfg, tmp_path / "g.pt", tmp_path / "w", time_budget=1e-6, log=lambda s: None)
    assert bundle.meta["train_config"]["steps"] == 1
    with pytest.raises(ValueError, match="images are"):
        train_gan(np.zeros((4, 16, 16, 3), np.uint8), cfg, tmp_path / "h.pt", tmp_path / "w2")


def test_pack_and_unpack_keep_every_byte(tmp_path):
    src = tmp_path / "src"
    for i, name in enumerate(["a/x.jpg", "a/y.jpg", "b/z.png"]):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(bytes([i]) * (10 + i))
    script = ROOT / "scripts" / "device" / "pack_images.py"
    (tmp_path / "p").mkdir()
    subprocess.run([sys.executable, script, "pack", src, tmp_path / "p" / "pk"], check=True, capture_output=True)
    subprocess.run([sys.executable, script, "unpack", tmp_path / "p" / "pk", tmp_path / "dst"], check=True,
                   capture_output=True)
    for name in ["a/x.jpg", "a/y.jpg", "b/z.png"]:
        assert (tmp_path / "dst" / name).read_bytes() == (src / name).read_bytes()
    assert (tmp_path / "p" / "pk.bin").stat().st_size == 10 + 11 + 12
