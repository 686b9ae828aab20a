"""A wide world-sized network for benchmarks/data_scale.py: `--model benchmarks/widenet.py:make`.

WorldNet's layer list (conv1..conv5, fc6..fc8) at 32 px with fc6 and fc7 2,560 units wide:
the analysed layers conv5, fc6, fc7, fc8 hold 64 + 2,560 + 2,560 + 10 = 5,194 units, so
anything of size images x units shows, while one image costs about 10 M multiply-adds
(AlexNet at 224 px: 0.7 G), so tens of thousands of images fit in minutes on a 2-core CPU.
Random weights (kaiming): what is measured is memory, disk and time, not what units mean."""
from __future__ import annotations

import torch

from atlas.data.world import SHAPES
from atlas.models.user import UserModel
from atlas.models.worldnet import WORLD_ALIASES, WorldNet

LAYERS = ("conv5", "fc6", "fc7", "fc8")


def make() -> UserModel:
    torch.manual_seed(0)
    net = WorldNet(num_classes=len(SHAPES), width=32, fc=2560).eval()
    return UserModel(net, input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), class_names=tuple(SHAPES),
                     aliases=dict(WORLD_ALIASES), default_layers=LAYERS)
