"""AlexNet-style classifier sized for the embedded world (32x32 input).

Same layer list as AlexNet (conv1..conv5, fc6, fc7, fc8), with batch norm after each conv
and narrower, so that every unit of
every layer can be visualized on a 2-core CPU in minutes.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

WORLD_ALIASES = {
    "conv1": "features.conv1", "conv2": "features.conv2", "conv3": "features.conv3",
    "conv4": "features.conv4", "conv5": "features.conv5",
    "fc6": "classifier.fc6", "fc7": "classifier.fc7", "fc8": "classifier.fc8",
}


class WorldNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, fc: int = 128, dropout: float = 0.3):
        super().__init__()
        w = width
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, w, 5, padding=2)), ("bn1", nn.BatchNorm2d(w)), ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(w, 2 * w, 3, padding=1)), ("bn2", nn.BatchNorm2d(2 * w)), ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(2 * w, 3 * w, 3, padding=1)), ("bn3", nn.BatchNorm2d(3 * w)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(3 * w, 3 * w, 3, padding=1)), ("bn4", nn.BatchNorm2d(3 * w)), ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(3 * w, 2 * w, 3, padding=1)), ("bn5", nn.BatchNorm2d(2 * w)), ("relu5", nn.ReLU()),
            ("pool5", nn.MaxPool2d(2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("drop6", nn.Dropout(dropout)), ("fc6", nn.Linear(2 * w * 16, fc)),
            ("relu6", nn.ReLU()),
            ("drop7", nn.Dropout(dropout)), ("fc7", nn.Linear(fc, fc)),
            ("relu7", nn.ReLU()),
            ("fc8", nn.Linear(fc, num_classes)),
        ]))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.config = {"num_classes": num_classes, "width": width, "fc": fc, "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))
