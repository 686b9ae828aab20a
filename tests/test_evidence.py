"""Evidence stages on a tiny world run: artifacts per the contract, patches at the receptive
field of the max, statistics that agree with the data, and the pieces on hand-made data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from atlas.config import Config
from atlas.context import Context
from atlas.data.loader import display_transform
from atlas.data.world import SHAPES
from atlas.evidence.gradcam import gradcam, split_head
from atlas.evidence.heatmaps import overlay, unit_scale
from atlas.evidence.patches import PAD_VALUE, crop_patch
from atlas.artifacts.pictures import load as load_pictures
from atlas.evidence.receptive_field import receptive_fields
from atlas.evidence.stats import selectivity, unit_statistics
from atlas.models.checkpoint import prepare_for_probing
from atlas.models.layers import extractor
from atlas.stages import concepts, dataset, dissect, evidence, topk
from atlas.stages.dataset import thumb_size
from atlas.pipeline import run_stages
from atlas.artifacts.store import RunStore, read_json

LAYERS = ["features.conv1", "features.conv3", "classifier.fc7", "classifier.fc8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evidence-run")
    cfg = Config(world_count=40, topk=4, layers=["conv1", "conv3", "fc7", "fc8"], out=str(root),
                 maps=False, workers=0, batch_size=16)
    ctx = Context(cfg, RunStore(root))
    run_stages(ctx, (dataset.make, topk.make, concepts.make, dissect.make, evidence.make))
    return ctx


def _load(ctx, layer, name):
    return np.load(ctx.store.stage_dir(f"evidence/{layer}") / name)


def test_artifacts_follow_the_contract(run):
    n = read_json(run.store.stage_dir("dataset") / "images.json")["count"]
    t = thumb_size(run)
    for info in run.layers:
        c, k = info.units, 4
        meta = read_json(run.store.stage_dir(f"evidence/{info.name}") / "meta.json")
        folder = run.store.stage_dir(f"evidence/{info.name}")
        assert meta["display_size"] == t == 32 and meta["patch_size"] == 64   # the field, at least 64 px shown
        views = sorted(int(f.stem) for f in (folder / "views").iterdir())
        ids = np.load(run.store.stage_dir("topk") / info.name / "ids.npy")
        assert views == sorted(set(ids.ravel().tolist()))                     # each top image stored once
        heat = _load(run, info.name, "heat.npy")
        grid = info.shape[1:] if info.kind == "conv" else (32, 32)           # activation map / saliency grid
        assert heat.shape == (c, k, *grid) and heat.dtype == np.uint8
        assert _load(run, info.name, "boxes.npy").shape == (c, k, 4)
        assert not (folder / "patches.npy").exists() and not (folder / "heatmaps.npy").exists()
        hist, edges = _load(run, info.name, "hist.npy"), _load(run, info.name, "hist_edges.npy")
        assert hist.shape == (c, meta["bins"]) and edges.shape == (c, meta["bins"] + 1)
        assert hist.dtype == np.int64 and edges.dtype == np.float32
        assert (hist.sum(axis=1) == n).all()  # every image counted once (no non-finite values here)
        stats = read_json(run.store.stage_dir(f"evidence/{info.name}") / "stats.json")
        labels = read_json(run.store.stage_dir(f"evidence/{info.name}") / "labels.json")
        assert [s["unit"] for s in stats] == list(range(c)) == [lab["unit"] for lab in labels]
        top = np.load(run.store.stage_dir("topk") / info.name / "values.npy")
        np.testing.assert_allclose([s["max"] for s in stats], top[:, 0], rtol=1e-6)  # the top-1 value
        assert all(s["min"] <= s["mean"] <= s["max"] for s in stats)
        assert meta["heatmap"] == ("activation" if info.kind == "conv" else "saliency")


def test_labels_by_layer_kind(run):
    fc8 = read_json(run.store.stage_dir("evidence/classifier.fc8") / "labels.json")
    assert [lab["label"] for lab in fc8] == list(SHAPES) and {lab["method"] for lab in fc8} == {"class"}
    conv = read_json(run.store.stage_dir("evidence/features.conv3") / "labels.json")
    assert {lab["method"] for lab in conv} == {"netdissect"} and all(lab["best"] for lab in conv)
    fc7 = read_json(run.store.stage_dir("evidence/classifier.fc7") / "labels.json")
    assert {lab["method"] for lab in fc7} == {"top-class"} and all(lab["label"] in SHAPES for lab in fc7)


def test_patches_are_the_field_of_the_max(run):
    """Each patch is the model's image cropped at the receptive field of the top-k position
    (within the codec's error: the stored views are JPEG)."""
    view = display_transform(run.spec)   # what the model sees, 32 px: the world's images whole
    thumbs = {int(i): view(run.source.load(int(i))).permute(1, 2, 0).numpy()
              for i in np.unique(np.load(run.store.stage_dir("topk") / "features.conv3" / "ids.npy"))}
    rf = receptive_fields(run.model, 32, ["features.conv3"])["features.conv3"]
    top = run.store.stage_dir("topk") / "features.conv3"
    ids, pos = np.load(top / "ids.npy"), np.load(top / "pos.npy")
    pics = load_pictures(run.store.stage_dir("evidence/features.conv3"))
    boxes = _load(run, "features.conv3", "boxes.npy")
    np.testing.assert_array_equal(boxes, rf.boxes(pos))
    for u in (0, 7, 21):
        for r in range(ids.shape[1]):
            want = crop_patch(thumbs[ids[u, r]], rf.box(*pos[u, r]), rf.size, 64)
            got = pics.patch(u, r)
            assert got.shape == want.shape
            assert np.abs(got.astype(int) - want.astype(int)).mean() < 10  # JPEG of a noisy 32-px image


def test_stages_are_skipped_when_current(run):
    for stage in evidence.make(run):
        assert run.store.is_current(stage.name, stage.key(run)), stage.name


def test_crop_patch_pads_the_clipped_side():
    img = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    patch = crop_patch(img, (0, 0, 3, 4), (5, 5), 5)     # clipped at the top-left corner
    assert (patch[:2] == PAD_VALUE).all() and (patch[:, :1] == PAD_VALUE).all()
    np.testing.assert_array_equal(patch[2:, 1:], img[0:3, 0:4])
    patch = crop_patch(img, (7, 8, 10, 10), (5, 5), 5)   # clipped at the bottom-right
    np.testing.assert_array_equal(patch[:3, :2], img[7:10, 8:10])
    assert (patch[3:] == PAD_VALUE).all() and (patch[:, 2:] == PAD_VALUE).all()


def test_statistics_on_hand_made_values():
    maxact = np.array([[1, 0, np.nan], [3, 0, 2], [5, 0, np.inf], [7, 0, 4]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    rows, hist, edges = unit_statistics(maxact, labels, ["a", "b"], np.array([[3, 2], [0, 1], [3, 1]]), bins=4)
    assert rows[0]["mean"] == 4 and rows[0]["max"] == 7 and not rows[0]["dead"] and not rows[0]["constant"]
    assert rows[1]["dead"] and rows[1]["constant"] and rows[1]["selectivity"] == 0.0
    assert rows[2]["nonfinite"] == 2 and rows[2]["mean"] == 3 and hist[2].sum() == 2
    # class means of unit 0: a = 2, b = 6 -> (6 - 2) / (6 + 2)
    assert rows[0]["selectivity"] == pytest.approx(0.5)
    assert rows[0]["top_classes"] == [["b", 1.0]] and rows[1]["top_classes"] == [["a", 1.0]]
    np.testing.assert_allclose(edges[0], [1, 2.5, 4, 5.5, 7])
    assert selectivity(np.array([1.0, 1.0]), np.array([0, 0]), 2) is None  # one class only
    negative = unit_statistics(np.array([[-1.0], [-2.0]], np.float32), labels[:2], ["a", "b"], np.array([[0]]), 2)[0]
    assert negative[0]["dead"] and not negative[0]["constant"]
    counted = unit_statistics(maxact, labels, ["a", "b"], np.array([[0], [0], [0]]), 4, np.array([0, 0, 3]))[0]
    assert counted[2]["nonfinite"] == 3   # the top-k pass's per-position count wins


def test_heatmap_scale_and_overlay():
    maps = np.zeros((1, 2, 4, 4), np.float32)
    maps[0, 0, 1, 1], maps[0, 1, 2, 2] = 4.0, 2.0
    scaled = unit_scale(maps)
    assert scaled.max() == 1.0 and scaled[0, 1].max() == 0.5   # one scale per unit
    img = np.full((4, 4, 3), 200, np.uint8)
    out = overlay(img, scaled[0, 0])
    assert out[1, 1].sum() > out[0, 0].sum()                    # where the unit fires stays bright


class _QuadrantNet(nn.Module):
    """A 1x1 conv, then an fc unit that reads only the top-left quarter of the map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.fc = nn.Linear(2 * 8 * 8, 3)
        with torch.no_grad():
            w = torch.zeros(3, 2, 8, 8)
            w[0, :, :4, :4] = 1.0      # unit 0: top-left
            w[1, :, 4:, 4:] = 1.0      # unit 1: bottom-right
            w[2] = 0.1                 # unit 2: everywhere
            self.fc.weight.copy_(w.flatten(1))

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_gradcam_head_and_maps():
    torch.manual_seed(0)
    model = prepare_for_probing(_QuadrantNet())
    head = split_head(model, "fc", 8)
    assert head.cut == "relu" and head.cut_shape == (2, 8, 8)
    x = torch.rand(3, 3, 8, 8) + 0.5
    acts = extractor(model, ["relu", "fc"])(x)
    torch.testing.assert_close(head.module(acts["relu"]), acts["fc"])   # the head is the rest of the net
    model.conv.weight.data.abs_()   # positive activations everywhere
    acts = extractor(model, ["relu"])(x)
    cam = gradcam(head.module, acts["relu"], torch.tensor([0, 1, 2]))
    assert cam[0, :4, :4].min() > 0 and cam[0, 4:].max() == 0 and cam[0, :, 4:].max() == 0
    assert cam[1, 4:, 4:].min() > 0 and cam[1, :4].max() == 0
    assert cam[2].min() > 0 and cam.max() <= 1
    assert split_head(model, "conv", 8).cut == "x"   # below the first conv only the input is left
