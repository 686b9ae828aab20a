"""The models atlas registers by hand: the shipped networks and the torchvision classifiers
whose friendly aliases (conv1..fc8) and DGN-AM nodes the atlas has always used. Every other
torchvision model is opened by `atlas.models.tv` on demand."""
from __future__ import annotations

import torch.nn as nn

from atlas.data.world import SHAPES
from atlas.models.checkpoint import load_payload, load_state_dict_file
from atlas.models.spec import ModelSpec
from atlas.models.tv import IMAGENET_MEAN, IMAGENET_STD, torchvision_spec  # noqa: F401 (re-exported)
from atlas.models.worldnet import WORLD_ALIASES, WorldNet

WORLD_MEAN = (0.5, 0.5, 0.5)
WORLD_STD = (0.25, 0.25, 0.25)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


def _worldnet_builder(default_file: str, default_config: dict):
    def build(weights: str | None) -> nn.Module:
        from atlas.resources import weights_path
        if weights == "random":
            return WorldNet(**default_config)
        path = weights or str(weights_path(default_file))
        payload = load_payload(path) if not str(path).endswith(".safetensors") else {}
        config = payload.get("config", default_config) if isinstance(payload, dict) else default_config
        model = WorldNet(**config)
        model.load_state_dict(load_state_dict_file(path))
        return model
    return build


SPECS: list[ModelSpec] = [
    ModelSpec(
        name="worldnet", build=_worldnet_builder("worldnet.pt", {"num_classes": 10, "width": 16, "fc": 128}),
        input_size=32, mean=WORLD_MEAN, std=WORLD_STD, aliases=dict(WORLD_ALIASES),
        default_layers=tuple(WORLD_ALIASES), penultimate="classifier.fc7", class_names=SHAPES,
        description="AlexNet-style net trained on the embedded procedural world (ships with atlas)",
        generator="worldnet-generator.pt", generator_code="classifier.relu6", generator_comparator="features.relu5"),
    ModelSpec(
        name="cifarnet", build=_worldnet_builder("cifarnet.pt", {"num_classes": 10, "width": 32, "fc": 256}),
        input_size=32, mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261),
        aliases=dict(WORLD_ALIASES), default_layers=tuple(WORLD_ALIASES),
        penultimate="classifier.fc7", class_names=CIFAR10_CLASSES,
        description="AlexNet-style CIFAR-10 classifier (ships with atlas)",
        generator="cifarnet-generator.pt", generator_code="classifier.relu6", generator_comparator="features.relu5"),
]

_ALEXNET = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
            "conv4": "features.8", "conv5": "features.10",
            "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}
_VGG11 = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.8",
          "conv4": "features.13", "conv5": "features.18",
          "fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"}
_VGG16 = {"conv1": "features.2", "conv2": "features.7", "conv3": "features.14",
          "conv4": "features.21", "conv5": "features.28",
          "fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"}

# (ReLU'd fc6, conv5-level comparator) for generators inverting fc6 (DeePSiM's fc6 setup)
_GENERATOR_NODES = {"alexnet": ("classifier.2", "features.12"), "vgg11": ("classifier.1", "features.20"),
                    "vgg16": ("classifier.1", "features.30")}


def _resnet_aliases(last: str, blocks: tuple[int, int, int, int]) -> dict[str, str]:
    stages = {f"conv{i + 2}": f"layer{i + 1}.{n - 1}.{last}" for i, n in enumerate(blocks)}
    return {"conv1": "conv1", **stages, "fc7": "flatten", "fc8": "fc"}


for _arch, _aliases, _pen in (("alexnet", _ALEXNET, "classifier.4"), ("vgg11", _VGG11, "classifier.3"),
                              ("vgg16", _VGG16, "classifier.3"),
                              ("resnet18", _resnet_aliases("relu_1", (2, 2, 2, 2)), "flatten"),
                              ("resnet50", _resnet_aliases("relu_2", (3, 4, 6, 3)), "flatten")):
    SPECS.append(torchvision_spec(
        _arch, aliases=dict(_aliases), default_layers=tuple(_aliases), penultimate=_pen,
        description=f"torchvision {_arch} (friendly aliases conv1..fc8)",
        generator_code=_GENERATOR_NODES.get(_arch, (None, None))[0],
        generator_comparator=_GENERATOR_NODES.get(_arch, (None, None))[1]))
