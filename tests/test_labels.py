"""Unit labels: NetDissect on the world's masks, class names, dominant classes."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from atlas.config import Config
from atlas.context import Context
from atlas.data import world
from atlas.evidence.dissect import RunningTopValues, concept_labels, dissect, values_to_keep
from atlas.evidence.labels import class_labels, top_class_labels
from atlas.models import ModelSpec, register, registry
from atlas.models.zoo import WORLD_MEAN, WORLD_STD
from atlas.stages import concepts, dataset, evidence, topk
from atlas.stages import dissect as dissect_stage
from atlas.pipeline import run_stages
from atlas.artifacts.store import RunStore, read_json

SIZES = [len(world.SHAPES), len(world.COLORS), len(world.TEXTURES)]


def color_net() -> nn.Module:
    """A 1x1 conv whose units answer to red (R-G-B), blue (B-R-G) and green (G-R-B)."""
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1., -1, -1], [-1, -1, 1], [-1, 1, -1]]).view(3, 3, 1, 1))
        conv.bias.zero_()
    return nn.Sequential(OrderedDict(detect=conv)).eval()


if "test-colors" not in registry():
    register(ModelSpec(name="test-colors", build=lambda weights: color_net(), input_size=32, mean=WORLD_MEAN,
                       std=WORLD_STD, default_layers=("detect",), description="hand-built colour detectors"))


def test_hand_built_color_units_get_their_colors(tmp_path):
    """Through the real stages: dataset, topk, concepts, dissect, evidence."""
    cfg = Config(model="test-colors", world_count=150, topk=3, out=str(tmp_path), maps=False, workers=0)
    ctx = Context(cfg, RunStore(tmp_path))
    run_stages(ctx, (dataset.make, topk.make, concepts.make, dissect_stage.make, evidence.make))
    labels = read_json(tmp_path / "stages" / "evidence" / "detect" / "labels.json")
    assert [(lab["label"], lab["category"], lab["method"]) for lab in labels] == \
        [("red", "color", "netdissect"), ("blue", "color", "netdissect"), ("green", "color", "netdissect")]
    assert all(lab["score"] > cfg.dissect_iou for lab in labels)
    iou = np.load(tmp_path / "stages" / "evidence" / "detect" / "iou.npy")
    names = read_json(tmp_path / "stages" / "dissect" / "meta.json")["concepts"]
    assert iou.shape == (3, len(names))
    # the red unit's IoU with red is well above its IoU with any other concept
    others = np.delete(iou[0], names.index("color:red"))
    assert iou[0, names.index("color:red")] > 2 * others.max()


def _brute_iou(act: np.ndarray, masks: np.ndarray, q: float) -> np.ndarray:
    """NumPy reference of NetDissect: quantile threshold, bilinear upsampling, data-set IoU."""
    units = act.shape[1]
    thr = np.array([np.sort(act[:, u].ravel())[::-1][values_to_keep(act.shape[0], act[0, 0].size, q) - 1]
                    for u in range(units)])
    up = F.interpolate(torch.from_numpy(act), size=masks.shape[-2:], mode="bilinear", align_corners=False).numpy()
    hit = up > thr[None, :, None, None]
    out = np.zeros((units, sum(SIZES)))
    col = 0
    for kind, n in enumerate(SIZES):
        for c in range(n):
            m = masks[:, kind] == c
            for u in range(units):
                inter = (hit[:, u] & m).sum()
                union = (hit[:, u] | m).sum()
                out[u, col] = inter / union if union else 0.0
            col += 1
    return out


def test_iou_matches_brute_force():
    rng = np.random.default_rng(0)
    act = rng.normal(size=(12, 4, 5, 5)).astype(np.float32)
    masks = np.stack([rng.integers(-1, n, size=(12, 16, 16)) for n in SIZES], axis=1).astype(np.int8)
    q = 0.02
    running = RunningTopValues(4, values_to_keep(12, 25, q), torch.device("cpu"))
    for start in range(0, 12, 5):  # several batches, as the stage streams them
        running.update(torch.from_numpy(act[start:start + 5]))
    batches = [(torch.from_numpy(act[s:s + 5]), torch.from_numpy(masks[s:s + 5])) for s in range(0, 12, 5)]
    got = dissect(batches, running.thresholds(), SIZES)
    np.testing.assert_allclose(got, _brute_iou(act, masks, q), atol=1e-6)


def test_concept_label_threshold():
    names = ["shape:circle", "color:red", "texture:dots"]
    iou = np.array([[0.01, 0.05, 0.02], [0.01, 0.03, 0.02]])
    out = concept_labels(iou, names, 0.04)
    assert (out[0]["label"], out[0]["category"], out[0]["score"]) == ("red", "color", 0.05)
    assert out[1]["label"] is None and out[1]["best"] == "color:red" and out[1]["score"] == pytest.approx(0.03)


def test_class_and_top_class_labels():
    labels = np.array([0, 1, 1, 2, 2, 2])
    top = np.array([[0, 1, 2], [3, 4, 5]])
    out = class_labels(2, ["b", "c"], ["a", "b", "c"], labels, top)
    assert [(o["label"], o["score"]) for o in out] == [("b", pytest.approx(2 / 3, abs=1e-4)), ("c", 1.0)]
    assert class_labels(2, None, ["a", "b", "c"], labels, top) is None  # no name list fits
    dom = top_class_labels(top, labels, ["a", "b", "c"])
    assert [(o["label"], o["score"]) for o in dom] == [("b", pytest.approx(0.6667, abs=1e-4)), ("c", 1.0)]
    unlabelled = top_class_labels(top, np.full(6, -1), [])
    assert unlabelled[0]["label"] is None and unlabelled[0]["score"] is None
