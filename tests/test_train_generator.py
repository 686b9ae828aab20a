"""Generator training: the losses go down, checkpoints resume, the file carries its statistics."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from atlas.data import world
from atlas.models.checkpoint import prepare_for_probing
from atlas.models import get_spec
from atlas.models.worldnet import WorldNet
from atlas.priors.genfile import load_generator
from atlas.train.generator import GeneratorTrainConfig, GeneratorTrainer, to_tensor01, train_generator


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    model = prepare_for_probing(WorldNet(width=4, fc=16))
    pixels = np.stack([world.render(1, i, 32)[0] for i in range(48)])
    return model, get_spec("worldnet"), pixels


def _cfg(**kw) -> GeneratorTrainConfig:
    base = dict(width=8, fc_width=32, batch_size=16, lr=3e-3, l_adv=0.01, d_width=4, epochs=1)
    base.update(kw)
    return GeneratorTrainConfig(**base)


def test_few_steps_lower_reconstruction_loss(parts):
    model, spec, pixels = parts
    trainer = GeneratorTrainer(model, spec, _cfg(l_feat=0.1), total_steps=40)
    x = to_tensor01(pixels[:16])
    before = trainer.reconstruction_loss(x)
    for _ in range(40):
        losses = trainer.step(x)
    after = trainer.reconstruction_loss(x)
    assert after < 0.93 * before
    assert set(losses) == {"loss", "img", "feat", "adv", "d"} and trainer.d_updates > 0


def test_feature_loss_uses_comparator(parts):
    model, spec, pixels = parts
    trainer = GeneratorTrainer(model, spec, _cfg(l_img=0.0, l_feat=1.0, l_adv=0.0), total_steps=30)
    x = to_tensor01(pixels[:16])
    first = trainer.step(x)["feat"]
    for _ in range(30):
        last = trainer.step(x)["feat"]
    assert last < first and trainer.d_updates == 0


def test_train_resume_and_file(parts, tmp_path):
    model, spec, pixels = parts
    out, work = tmp_path / "g.pt", tmp_path / "work"
    enc = {"model": "worldnet", "weights": "test"}
    train_generator(model, spec, pixels[:32], pixels[32:], _cfg(epochs=1), out, work, enc, log=lambda s: None)
    assert (work / "samples" / "epoch_01.png").is_file() and (work / "checkpoint.pt").is_file()
    messages = []
    bundle = train_generator(model, spec, pixels[:32], pixels[32:], _cfg(epochs=2), out, work, enc,
                             log=messages.append)
    assert any("resuming" in m and "epoch 1" in m for m in messages)
    assert [h["epoch"] for h in bundle.meta["history"]] == [1, 2]
    assert (work / "samples" / "epoch_02.png").is_file()
    with pytest.raises(ValueError, match="other settings"):
        train_generator(model, spec, pixels[:32], pixels[32:], _cfg(epochs=3, lr=1e-4), out, work, enc,
                        log=lambda s: None)
    loaded = load_generator(out)
    assert loaded.encoder["code_node"] == "classifier.relu6" and loaded.encoder["model"] == "worldnet"
    assert loaded.code_dim == 16 and loaded.stats.mean is not None and loaded.cfg.out_size == 32
    torch.testing.assert_close(loaded.stats.ub, loaded.stats.mean + 3 * loaded.stats.std)
    json.dumps(loaded.meta["history"])  # plain data


def test_time_budget_cuts_epochs(parts, tmp_path):
    """A budget shorter than one epoch keeps the first epoch only; the file says so."""
    model, spec, pixels = parts
    messages = []
    bundle = train_generator(model, spec, pixels[:32], pixels[32:], _cfg(epochs=4), tmp_path / "g.pt",
                             tmp_path / "work", {"model": "worldnet"}, log=messages.append, time_budget=1e-6)
    assert [h["epoch"] for h in bundle.meta["history"]] == [1]
    assert bundle.meta["train_config"]["epochs"] == 1
    assert any("time budget" in m and "1 epochs, not 4" in m for m in messages)
    bundle = train_generator(model, spec, pixels[:32], pixels[32:], _cfg(epochs=2), tmp_path / "h.pt",
                             tmp_path / "work2", {"model": "worldnet"}, log=lambda s: None, time_budget=1e6)
    assert [h["epoch"] for h in bundle.meta["history"]] == [1, 2]


def _train_cli(nproc: int, out, extra=()) -> "subprocess.CompletedProcess":
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATLAS_DIST_BACKEND": "gloo", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "atlas", "train-generator", "--images", "32", "--held-out", "16", "--epochs", "2",
           "--batch-size", "16", "--width", "8", "--fc-width", "32", "--device", "cpu", "--threads", "1",
           "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_data_parallel_training_matches_one_process(tmp_path):
    """Two processes, each on half of every batch with averaged gradients, train the same
    generator as one process on the whole batches (pixel loss alone: its full-batch
    gradient is exactly the mean of the halves'); one checkpoint per epoch, rank 0 writes."""
    plain = ["--l-feat", "0", "--l-adv", "0"]
    one = _train_cli(1, tmp_path / "one.pt", plain)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train_cli(2, tmp_path / "two.pt", plain)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.strip().splitlines()[-1].endswith("two.pt")
    state = torch.load(tmp_path / "two.pt.work" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 2 and [h["processes"] for h in state["history"]] == [2, 2]
    assert sorted(p.name for p in (tmp_path / "two.pt.work" / "samples").iterdir()) == ["epoch_01.png", "epoch_02.png"]
    a, b = load_generator(tmp_path / "one.pt", "cpu"), load_generator(tmp_path / "two.pt", "cpu")
    for (name, p), q in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    # the full losses (comparator and adversary) run data-parallel too
    full = _train_cli(2, tmp_path / "full.pt")
    assert full.returncode == 0, full.stderr[-3000:]
    # with its own encoder, the encoder is trained data-parallel too: the same generator
    own = ["--encoder", "own", "--code-dim", "16", *plain]
    runs = [_train_cli(n, tmp_path / f"own{n}.pt", own) for n in (1, 2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-3000:]
    a, b = load_generator(tmp_path / "own1.pt", "cpu"), load_generator(tmp_path / "own2.pt", "cpu")
    assert a.code_dim == 16 and a.encoder["code_node"] == "own encoder's code"
    for (name, p), q in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(a.stats.ub, b.stats.ub, rtol=1e-4, atol=1e-5)


def test_own_encoder_learns_with_the_generator(parts, tmp_path):
    """encoder = "own": a conv encoder trained with G (an autoencoder), ReLU'd codes of
    code_dim, the model still the comparator; the file carries the own code's statistics."""
    model, spec, pixels = parts
    cfg = _cfg(encoder="own", code_dim=24, l_feat=0.1, lr=1e-3)
    trainer = GeneratorTrainer(model, spec, cfg, total_steps=80)
    x = to_tensor01(pixels[:16])
    enc0 = [p.detach().clone() for p in trainer.own.parameters()]
    before = trainer.reconstruction_loss(x)
    for _ in range(80):
        trainer.step(x)
    assert trainer.reconstruction_loss(x) < 0.96 * before  # 0.94 measured
    assert all(not torch.equal(a, b) for a, b in zip(enc0, trainer.own.parameters()))  # the encoder learned
    code, feat = trainer.encode(x)
    assert code.shape == (16, 24) and bool((code >= 0).all()) and feat.shape[0] == 16 and feat.ndim == 4
    out, work = tmp_path / "g.pt", tmp_path / "work"
    train_generator(model, spec, pixels[:32], pixels[32:], replace(cfg, epochs=1), out, work, {"model": "worldnet"},
                    log=lambda s: None)
    state = torch.load(work / "checkpoint.pt", weights_only=False)["trainer"]
    assert "own" in state  # resumable with its encoder
    loaded = load_generator(out)
    assert loaded.code_dim == 24 and loaded.encoder["code_node"] == "own encoder's code"
    assert loaded.encoder["encoder"].startswith("own") and loaded.encoder["model"] == "worldnet"
    assert loaded.encoder["comparator_node"] == "features.relu5"
    with pytest.raises(ValueError, match="encoder"):
        GeneratorTrainConfig(encoder="pixels")
