"""The featvis stage: artifacts as ARCHITECTURE.md says, receptive-field crops, resumable chunks."""
import numpy as np
import pytest
import torch

from atlas.config import Config
from atlas.context import Context
from atlas.priors.generator import DeePSiM, family_config
from atlas.priors.genfile import CodeStats, GeneratorBundle, save_generator
from atlas.priors.objectives import diversity, unit_objective
from atlas.stages import featvis
from atlas.stages.base import run_stage
from atlas.artifacts.store import RunStore, read_json


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "tiny-generator.pt"
    g = DeePSiM(family_config(128, 32, width=8, fc_width=32)).init_weights(torch.Generator().manual_seed(0))
    save_generator(path, GeneratorBundle(g, CodeStats(ub=torch.full((128,), 2.0)), {"code_node": "classifier.relu6"}))
    return path


def _ctx(tmp_path, gen_file, **kw) -> Context:
    torch.manual_seed(0)
    base = dict(model="worldnet", weights="random", layers=["conv2", "fc8"], units_limit=3, seeds=2,
                dgn_iters=3, pixel_iters=3, fourier_iters=3, featvis_batch=4, generator=str(gen_file),
                out=str(tmp_path / "run"))
    cfg = Config(**{**base, **kw})
    return Context(cfg, RunStore(cfg.out))


def _run_all(ctx):
    stages = featvis.make(ctx)
    return [run_stage(ctx, s) for s in stages], stages


def test_artifacts(tmp_path, gen_file):
    ctx = _ctx(tmp_path, gen_file)
    status, stages = _run_all(ctx)
    assert status == ["ran", "ran"] and [s.name for s in stages] == ["featvis/features.conv2", "featvis/classifier.fc8"]
    conv = ctx.store.stage_dir("featvis/features.conv2")
    fc = ctx.store.stage_dir("featvis/classifier.fc8")
    meta_c, meta_f = read_json(conv / "meta.json"), read_json(fc / "meta.json")
    # conv2's centre neuron (8, 8) of 16x16 sees input rows/cols 12..21 (conv1 5x5, pool 2, conv2 3x3)
    assert meta_c["crop"] == [12, 12, 22, 22] and meta_c["center"] == [8, 8] and meta_c["objective"] == "center"
    assert meta_f["crop"] is None and meta_f["iterations"] == {"dgn": 3, "pixel": 3, "fourier": 3}
    assert meta_f["priors"] == ["dgn", "pixel", "fourier"] and meta_f["seeds"] == 2 and meta_f["units"] == 3
    for prior in ("dgn", "pixel", "fourier"):
        a = np.load(conv / f"{prior}.npy")
        assert a.dtype == np.uint8 and a.shape == (3, 2, 10, 10, 3)
        b = np.load(fc / f"{prior}.npy")
        assert b.shape == (3, 2, 32, 32, 3)
        assert np.load(fc / f"{prior}_act.npy").shape == (3, 2) and np.load(fc / f"{prior}_act.npy").dtype == np.float32
    # the recorded activation is the stored image's
    target = featvis.NetTarget(ctx.model, ctx.spec)
    imgs = torch.from_numpy(np.load(fc / "dgn.npy")).reshape(6, 32, 32, 3)
    obj = unit_objective("classifier.fc8", torch.arange(3).repeat_interleave(2))
    np.testing.assert_allclose(target.activations_of_uint8(imgs, obj).numpy().reshape(3, 2),
                               np.load(fc / "dgn_act.npy"), rtol=1e-5, atol=1e-5)
    # the crop holds everything the centre neuron sees: pasted onto gray, same activation
    crops = np.load(conv / "pixel.npy").reshape(6, 10, 10, 3)
    canvas = np.full((6, 32, 32, 3), 128, np.uint8)
    canvas[:, 12:22, 12:22] = crops
    obj_c = unit_objective("features.conv2", torch.arange(3).repeat_interleave(2), "center")
    np.testing.assert_allclose(target.activations_of_uint8(torch.from_numpy(canvas), obj_c).numpy().reshape(3, 2),
                               np.load(conv / "pixel_act.npy"), rtol=1e-4, atol=1e-4)
    # seeds differ, and rerunning is skipped
    d = np.load(fc / "fourier.npy")
    assert not np.array_equal(d[0, 0], d[0, 1])
    assert _run_all(ctx)[0] == ["skipped", "skipped"]


def test_mean_objective_has_no_crop(tmp_path, gen_file):
    ctx = _ctx(tmp_path, gen_file, dgn_conv_objective="mean", priors=["pixel"])
    stage = featvis.make(ctx)[0]
    run_stage(ctx, stage)
    meta = read_json(ctx.store.stage_dir(stage.name) / "meta.json")
    assert meta["crop"] is None and meta["objective"] == "mean" and meta["priors"] == ["pixel"]
    assert np.load(ctx.store.stage_dir(stage.name) / "pixel.npy").shape == (3, 2, 32, 32, 3)


def test_interrupted_run_reuses_finished_chunks(tmp_path, gen_file, monkeypatch):
    clean = _ctx(tmp_path / "clean", gen_file, priors=["dgn", "pixel"])
    run_stage(clean, featvis.make(clean)[1])
    reference = np.load(clean.store.stage_dir("featvis/classifier.fc8") / "dgn.npy")

    ctx = _ctx(tmp_path / "resumed", gen_file, priors=["dgn", "pixel"])
    stage = featvis.make(ctx)[1]
    real, calls = featvis.optimize, []

    def interrupted(*args, **kw):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(featvis, "optimize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_stage(ctx, stage)
    assert ctx.store.manifest(stage.name) is None  # nothing half-written in place
    kept = sorted(p.name for p in ctx.store.partial_dir(stage.name, stage.key(ctx)).iterdir())
    # 3 units in two chunks (featvis.MIN_CHUNKS), per prior: dgn's two and pixel's first done
    assert kept == ["dgn-0000000-0000002", "dgn-0000002-0000003", "pixel-0000000-0000002"]
    calls.clear()
    monkeypatch.setattr(featvis, "optimize", lambda *a, **k: (calls.append(a[0]), real(*a, **k))[1])
    assert run_stage(ctx, stage) == "ran"
    assert calls == ["pixel"]  # only the missing chunk was computed
    np.testing.assert_array_equal(np.load(ctx.store.stage_dir(stage.name) / "dgn.npy"), reference)


def test_element_seeds_do_not_depend_on_chunking():
    a = featvis.element_seed(0, "fc8", 5, 1)
    assert a == featvis.element_seed(0, "fc8", 5, 1)
    assert len({featvis.element_seed(0, "fc8", u, s) for u in range(20) for s in range(3)}) == 60


def test_model_without_generator_skips_dgn(tmp_path, capsys):
    cfg = Config(model="resnet18", weights="random", layers=["fc"], units_limit=2, out=str(tmp_path / "run"))
    ctx = Context(cfg, RunStore(cfg.out))
    (stage,) = featvis.make(ctx)
    assert stage.params["priors"] == ["pixel", "fourier"] and stage.params["generator"] is None
    assert "skipping the dgn prior" in capsys.readouterr().out
    missing = Context(Config(model="cifarnet", weights="random", generator=str(tmp_path / "nope.pt"),
                             out=str(tmp_path / "r2")), RunStore(tmp_path / "r2"))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        featvis.make(missing)


def test_diversity_spreads_the_seeds(tmp_path, gen_file):
    """The stage wires featvis_diversity into the optimization: with it, a unit's two seeds
    have less alike Gram matrices at the layer (the term's own measure, on the stored
    images). Mean pixel distance is not that measure: it moved either way between seeds
    and precisions."""
    spread = []
    term = diversity("classifier.fc7", torch.arange(3).repeat_interleave(2))
    for w in (0.0, 50.0):
        ctx = _ctx(tmp_path / str(w), gen_file, priors=["fourier"], fourier_iters=15, featvis_diversity=w,
                   layers=["fc7"])
        stage = featvis.make(ctx)[0]
        run_stage(ctx, stage)
        images = torch.from_numpy(np.load(ctx.store.stage_dir(stage.name) / "fourier.npy")).reshape(6, 32, 32, 3)
        with torch.no_grad():
            x = images.permute(0, 3, 1, 2).float() / 255
            spread.append(float(term(featvis.NetTarget(ctx.model, ctx.spec)(x, term.nodes)).mean()))
        assert read_json(ctx.store.stage_dir(stage.name) / "meta.json")["diversity"] == w
    assert spread[1] > spread[0] + 0.2     # measured: -0.83 -> -0.09 (float32), -0.81 -> -0.12 (bfloat16)
