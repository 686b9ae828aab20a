"""Classifier training (atlas/train/classifier.py): the augmentation by hand, a tiny judge run."""
import torch
import torch.nn.functional as F

from atlas.data.sources import WorldSource
from atlas.models.checkpoint import load_payload
from atlas.models.judge_resnet import JudgeResNet
from atlas.models.zoo import WORLD_MEAN, WORLD_STD
from atlas.train.classifier import TrainConfig, _augment, train_classifier


def test_crop_flip_is_a_reflect_padded_crop_of_the_flipped_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    out = _augment(x, "crop_flip", torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws, in the same order
    flip = torch.rand(2, generator=gen) < 0.5
    dx, dy = torch.randint(0, 9, (2,), generator=gen), torch.randint(0, 9, (2,), generator=gen)
    for i in range(2):
        img = x[i].flip(2) if flip[i] else x[i]
        pad = F.pad(img[None], (4, 4, 4, 4), mode="reflect")[0]
        assert torch.equal(out[i], pad[:, dy[i]:dy[i] + 6, dx[i]:dx[i] + 6])


def test_tiny_judge_trains_and_records_its_device(tmp_path):
    out = tmp_path / "judge.pt"
    cfg = TrainConfig(epochs=1, batch_size=16, seed=3, augment="flip")
    meta = train_classifier(WorldSource(seed=1, count=64), WorldSource(seed=2, count=32), cfg, out, "judge_resnet",
                            WORLD_MEAN, WORLD_STD, workers=1, build=lambda n: JudgeResNet(n, width=4),
                            device="cpu")
    assert meta["device"] == "cpu" and 0.0 <= meta["test_accuracy"] <= 1.0
    payload = load_payload(out)
    assert payload["arch"] == "judge_resnet" and payload["config"]["width"] == 4
