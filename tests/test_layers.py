"""Layer listing and aliases, for the world network and torchvision models (random weights)."""
import subprocess
import sys

import pytest

from atlas.models import get_spec, load_model
from atlas.models.layers import list_layers, resolve_layers


@pytest.mark.parametrize("name,units", [("alexnet", {"conv5": 256, "fc7": 4096, "fc8": 1000}),
                                        ("vgg11", {"conv1": 64, "fc6": 4096}),
                                        ("resnet18", {"conv5": 512, "fc7": 512, "fc8": 1000})])
def test_torchvision_layers_random_weights(name, units):
    spec = get_spec(name)
    model = load_model(spec, "random")
    layers = list_layers(model, spec)
    assert len(layers) > 8
    resolved = {l.alias: l for l in resolve_layers(model, spec, list(units))}
    for alias, n in units.items():
        assert resolved[alias].units == n


def test_world_network_layers_and_aliases():
    spec = get_spec("worldnet")
    model = load_model(spec)
    layers = resolve_layers(model, spec, None)
    assert [l.alias for l in layers] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert sum(l.units for l in layers) == 442
    assert layers[4].name == "features.conv5" and layers[4].shape == (32, 8, 8)


def test_unknown_layer_names_choices():
    spec = get_spec("worldnet")
    with pytest.raises(ValueError, match="unknown layer 'conv9'.*conv5=features.conv5"):
        resolve_layers(load_model(spec), spec, ["conv9"])


def test_unknown_model_lists_choices():
    with pytest.raises(KeyError, match="alexnet"):
        get_spec("no-such-net")


def test_cli_layers_alexnet():
    out = subprocess.run([sys.executable, "-m", "atlas", "layers", "alexnet"], capture_output=True, text=True,
                         check=True).stdout
    assert "features.10" in out and "conv5" in out and "13x13" in out and "4096" in out


def test_in_place_relu_does_not_corrupt_extracted_conv_output():
    """torchvision's alexnet uses ReLU(inplace=True); the extractor must still see negative conv outputs."""
    import torch
    from atlas.models.layers import extractor
    spec = get_spec("alexnet")
    model = load_model(spec, "random")
    out = extractor(model, ["features.0"])(torch.randn(1, 3, 224, 224))["features.0"]
    assert (out < 0).any()


def test_shared_extractor_is_built_once_per_model_and_nodes():
    import gc

    import torch

    from atlas.models.layers import _SHARED, extractor, shared_extractor
    spec = get_spec("worldnet")
    model, other = load_model(spec), load_model(spec)
    gc.collect()
    before = len(_SHARED)
    nodes = ["features.conv2", "classifier.fc7"]
    net = shared_extractor(model, nodes)
    assert shared_extractor(model, list(nodes)) is net  # the same module for every caller
    assert shared_extractor(model, nodes[:1]) is not net and shared_extractor(other, nodes) is not net
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        got, fresh = net(x), extractor(model, nodes)(x)
    assert all(torch.equal(got[n], fresh[n]) for n in nodes)
    del model, net
    gc.collect()
    assert len(_SHARED) == before + 1  # a model's extractors go with it (`other`'s stay)
