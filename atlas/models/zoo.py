"""The models atlas knows by name: the embedded world network and torchvision classifiers."""
from __future__ import annotations

import torch.nn as nn

from atlas.data.world import SHAPES
from atlas.models.checkpoint import load_payload, load_state_dict_file
from atlas.models.spec import ModelSpec, register
from atlas.models.worldnet import WORLD_ALIASES, WorldNet
from atlas.resources import weights_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WORLD_MEAN = (0.5, 0.5, 0.5)
WORLD_STD = (0.25, 0.25, 0.25)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


def _worldnet_builder(default_file: str, default_config: dict):
    def build(weights: str | None) -> nn.Module:
        if weights == "random":
            return WorldNet(**default_config)
        path = weights or str(weights_path(default_file))
        payload = load_payload(path)
        config = payload.get("config", default_config) if isinstance(payload, dict) else default_config
        model = WorldNet(**config)
        model.load_state_dict(load_state_dict_file(path))
        return model
    return build


register(ModelSpec(
    name="worldnet", build=_worldnet_builder("worldnet.pt", {"num_classes": 10, "width": 16, "fc": 128}),
    input_size=32, mean=WORLD_MEAN, std=WORLD_STD, aliases=dict(WORLD_ALIASES),
    default_layers=tuple(WORLD_ALIASES), penultimate="classifier.fc7", class_names=SHAPES,
    description="AlexNet-style net trained on the embedded procedural world (ships with atlas)",
    generator="worldnet-generator.pt", generator_code="classifier.relu6", generator_comparator="features.relu5",
))

register(ModelSpec(
    name="cifarnet", build=_worldnet_builder("cifarnet.pt", {"num_classes": 10, "width": 32, "fc": 256}),
    input_size=32, mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261),
    aliases=dict(WORLD_ALIASES), default_layers=tuple(WORLD_ALIASES),
    penultimate="classifier.fc7", class_names=CIFAR10_CLASSES,
    description="AlexNet-style CIFAR-10 classifier",
    generator="cifarnet-generator.pt", generator_code="classifier.relu6", generator_comparator="features.relu5",
))


def _torchvision_builder(arch: str):
    def build(weights: str | None) -> nn.Module:
        from torchvision.models import get_model
        if weights == "random":
            return get_model(arch, weights=None)
        if weights is None:  # the weights API: downloads online, reads the torch hub cache offline
            return get_model(arch, weights="DEFAULT")
        model = get_model(arch, weights=None)
        model.load_state_dict(load_state_dict_file(weights))
        return model
    return build


def _imagenet_classes(arch: str) -> tuple[str, ...] | None:
    try:
        from torchvision.models import get_model_weights
        return tuple(get_model_weights(arch).DEFAULT.meta["categories"])
    except Exception:  # noqa: BLE001 - class names are optional metadata
        return None


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
                              ("vgg16", _VGG16, "classifier.3"), ("resnet18", _resnet_aliases("relu_1", (2, 2, 2, 2)), "flatten"),
                              ("resnet50", _resnet_aliases("relu_2", (3, 4, 6, 3)), "flatten")):
    register(ModelSpec(
        name=_arch, build=_torchvision_builder(_arch), input_size=224, resize=256,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, aliases=dict(_aliases),
        default_layers=tuple(_aliases), penultimate=_pen, class_names=_imagenet_classes(_arch),
        description=f"torchvision {_arch} (ImageNet weights through the weights API)",
        generator_code=_GENERATOR_NODES.get(_arch, (None, None))[0],
        generator_comparator=_GENERATOR_NODES.get(_arch, (None, None))[1],
    ))
