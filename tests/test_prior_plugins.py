"""Priors are plug-ins: the registry, the config keys they declare, and a toy prior added
from one file (tests/toy_prior.py) that is computed, stored and rendered."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas import config as C
from atlas.models import get_spec, load_model
from atlas.priors import registry
from atlas.priors.fourier import fourier_param
from atlas.priors.pixel import pixel_param
from atlas.priors.registry import Prior, Result

ROOT = Path(__file__).resolve().parents[1]
TOY = Path(__file__).with_name("toy_prior.py")


def test_builtin_priors_declare_their_keys():
    all_ = registry.priors()
    assert list(all_)[:3] == ["dgn", "pixel", "fourier"]
    for p in all_.values():
        assert p.iters_key in C.Config.__dataclass_fields__
        assert p.settings_from(C.Config()).iters == getattr(C.Config(), p.iters_key)
    # today's flat keys work as before, and a prior's default may depart from its dataclass's
    cfg = C.from_dict({"dgn_iters": 7, "pixel_iters": 3, "fourier_iters": 5})
    assert (cfg.dgn_iters, cfg.pixel_iters, cfg.fourier_iters) == (7, 3, 5)
    assert C.Config().dgn_clip_image is True and all_["dgn"].settings().clip_image is False
    assert C.quick(C.Config()).fourier_iters == C.QUICK_ITERS
    with pytest.raises(C.ConfigError, match="'fourier_iters' must be at least 1"):
        C.from_dict({"fourier_iters": 0})
    with pytest.raises(C.ConfigError, match="unknown prior 'nope'.*dgn, pixel, fourier"):
        C.from_dict({"priors": ["nope"]})


def test_registry_refuses_duplicates_and_bad_entries():
    pixel = registry.get("pixel")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(pixel)
    with pytest.raises(ValueError, match="already prior 'pixel'"):
        registry.register(dataclasses.replace(pixel, name="pixel2"))
    with pytest.raises(ValueError, match="names no settings field"):
        Prior(name="x", title="x", short="x", settings=pixel.settings, keys={"x_iters": "iterations"},
              visualize=pixel.visualize)
    with pytest.raises(ValueError, match="declare a config key for 'iters'"):
        Prior(name="x", title="x", short="x", settings=pixel.settings, keys={"x_lr": "lr"},
              visualize=pixel.visualize)


def test_parameterizations_return_the_same_shape():
    """Lucid's split: a parameterization is (params, image_fn); image_fn() is RGB in 0..1."""
    for params, image_fn in (pixel_param([1, 2], 16, (0.5, 0.5, 0.5), 0.02),
                             fourier_param([1, 2], 16)):
        assert isinstance(params, list) and all(p.requires_grad for p in params)
        img = image_fn()
        assert img.shape == (2, 3, 16, 16) and float(img.detach().min()) >= 0 and float(img.detach().max()) <= 1
        img.sum().backward()
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params)


def test_a_prior_from_one_file_is_computed_stored_and_rendered(tmp_path):
    env = {**os.environ, registry.PLUGIN_ENV: str(TOY)}
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "atlas", "run", "--quick", "--model", "worldnet", "--layers", "fc8",
            "--out", str(out), "--set", 'priors=["toy", "pixel"]', "toy_iters=6", "toy_lr=0.2",
            "seeds=1", "units_limit=2", "maps=false"]
    r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    fv = out / "stages" / "featvis" / "classifier.fc8"
    meta = json.loads((fv / "meta.json").read_text())
    assert meta["priors"] == ["toy", "pixel"] and meta["iterations"]["toy"] == 6
    assert meta["settings"]["toy"] == {"iters": 6, "lr": 0.2}
    assert meta["labels"]["toy"]["title"] == "Toy flat-colour prior"
    images, acts, colors = np.load(fv / "toy.npy"), np.load(fv / "toy_act.npy"), np.load(fv / "toy_color.npy")
    assert images.shape == (2, 1, 32, 32, 3) and acts.shape == (2, 1) and colors.shape == (2, 1, 3)
    # computed: each image is its stored flat colour, and ascent raised the unit over its start
    np.testing.assert_allclose(images[:, 0, 5, 7] / 255.0, colors[:, 0], atol=1 / 255)
    model = load_model(get_spec("worldnet"))
    from atlas.priors.objectives import unit_objective
    from atlas.priors.target import NetTarget
    target = NetTarget(model, get_spec("worldnet"))
    obj = unit_objective("classifier.fc8", torch.arange(2))
    sys.path.insert(0, str(TOY.parent))
    from atlas.stages.featvis import element_seed
    from toy_prior import start_logits
    start = torch.sigmoid(start_logits([element_seed(0, "classifier.fc8", u, 0) for u in range(2)]))
    start_u8 = (start.expand(-1, -1, 32, 32).permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    assert (acts[:, 0] > target.activations_of_uint8(start_u8, obj).numpy() + 0.1).all()
    # rendered: the unit page names the prior by the title its plug-in declared
    page = (out / "site" / "layers" / "classifier.fc8" / "0.html").read_text()
    assert "Toy flat-colour prior" in page
    # a bad value of the plug-in's own key is a clear config error
    bad = subprocess.run(argv[:8] + [str(tmp_path / "bad"), "--set", "toy_iters=0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "'toy_iters' must be at least 1" in bad.stderr


def _tiny_generator(tmp_path):
    from atlas.priors.generator import DeePSiM, family_config
    from atlas.priors.genfile import CodeStats, GeneratorBundle, save_generator
    path = tmp_path / "tiny-generator.pt"
    g = DeePSiM(family_config(128, 32, width=8, fc_width=32)).init_weights(torch.Generator().manual_seed(0))
    save_generator(path, GeneratorBundle(g, CodeStats(ub=torch.full((128,), 2.0)), {"code_node": "classifier.relu6"}))
    return path


def test_dgn_restarts_store_the_best_and_keep_the_last(tmp_path):
    from atlas.context import Context
    from atlas.stages import featvis
    from atlas.stages.base import run_stage
    from atlas.artifacts.store import RunStore
    gen = _tiny_generator(tmp_path)
    out = {}
    for name, kw in {"plain": {"dgn_keep": "last"}, "restarts": {"dgn_restarts": 3, "dgn_keep": "last"},
                     "best": {}}.items():  # the atlas's default is the best iterate
        cfg = C.Config(model="worldnet", layers=["fc8"], units_limit=3, seeds=2, dgn_iters=4,
                       priors=["dgn"], featvis_batch=6, generator=str(gen), out=str(tmp_path / name), **kw)
        ctx = Context(cfg, RunStore(cfg.out))
        (stage,) = featvis.make(ctx)
        run_stage(ctx, stage)
        out[name] = ctx.store.stage_dir(stage.name)
    assert not (out["plain"] / "dgn_last.npy").exists()
    plain_img, plain_act = np.load(out["plain"] / "dgn.npy"), np.load(out["plain"] / "dgn_act.npy")
    r_acts = np.load(out["restarts"] / "dgn_restart_acts.npy")
    assert r_acts.shape == (3, 2, 3)
    # restart 0 is act_max.py's run with the element's own seed: its last iterate is kept as such
    np.testing.assert_array_equal(np.load(out["restarts"] / "dgn_last.npy"), plain_img)
    # (restart_acts are the float images' objective; *_act.npy the stored uint8 image's)
    np.testing.assert_allclose(r_acts[..., 0], plain_act, atol=0.05)
    # the stored image is the best restart's
    np.testing.assert_allclose(np.load(out["restarts"] / "dgn_act.npy"), r_acts.max(-1), atol=0.05)
    best_act = np.load(out["best"] / "dgn_act.npy")
    assert (best_act >= plain_act - 0.05).all()
    np.testing.assert_array_equal(np.load(out["best"] / "dgn_last.npy"), plain_img)


def test_dgn_data_init_starts_among_real_codes():
    from atlas.priors.genfile import CodeStats
    from atlas.priors.plugins.dgn import data_codes
    codes = torch.relu(torch.randn(500, 16, generator=torch.Generator().manual_seed(0)) + 0.5)
    stats = CodeStats.from_codes(codes)
    z = data_codes(torch.randn(2000, 16, generator=torch.Generator().manual_seed(1)), stats)
    assert (z >= 0).all() and (z <= stats.ub).all()
    assert torch.allclose(z.mean(0), stats.mean, atol=0.15)
    with pytest.raises(ValueError, match="needs the code mean and std"):
        data_codes(torch.zeros(1, 16), CodeStats(ub=stats.ub))
    with pytest.raises(C.ConfigError, match="'init' must be 'normal' or 'data'"):
        C.from_dict({"dgn_init": "zeros"})
