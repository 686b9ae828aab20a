"""The shipped networks and generators load, fit each other, and the CIFAR-10 network is
the trained one (its generators record that network's weights and layers). The shipped
generators were trained with their own encoders (the network the comparator); the CIFAR-10
fc6 generator inverts the network's ReLU'd fc6."""
import pytest
import torch

from atlas.context import weights_identity
from atlas.models import get_spec, load_model
from atlas.models.layers import resolve_layers
from atlas.priors.dgn import center_crop
from atlas.priors.genfile import load_generator
from atlas.resources import weights_path


@pytest.mark.parametrize("name, units", [("worldnet", 442), ("cifarnet", 874)])
def test_network_generator_pair(name, units):
    spec = get_spec(name)
    model = load_model(spec).eval()
    layers = resolve_layers(model, spec, None)
    assert [l.alias for l in layers] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert sum(l.units for l in layers) == units
    bundle = load_generator(weights_path(spec.generator))
    assert bundle.encoder["model"] == name and bundle.encoder["encoder"].startswith("own")
    assert bundle.encoder["code_node"] == "own encoder's code"
    assert bundle.encoder["comparator_node"] == spec.generator_comparator
    assert bundle.encoder["weights"] == weights_identity(spec, None)  # trained against exactly the shipped weights
    assert bundle.code_dim == bundle.meta["train_config"]["code_dim"]
    code = torch.zeros(2, bundle.code_dim)
    images = center_crop(bundle.images(code), spec.input_size)
    assert images.shape == (2, 3, spec.input_size, spec.input_size)
    # clipping bound = mean + 3 std, never below zero (ReLU'd code)
    assert (bundle.stats.ub >= 0).all() and bundle.stats.ub.mean() > 0


def test_cifar_fc6_generator_inverts_the_network():
    spec = get_spec("cifarnet")
    model = load_model(spec).eval()
    bundle = load_generator(weights_path("cifarnet-fc6-generator.pt"))
    assert bundle.encoder["model"] == "cifarnet" and bundle.encoder["code_node"] == spec.generator_code
    assert bundle.encoder["weights"] == weights_identity(spec, None)  # inverts exactly the shipped weights
    assert bundle.code_dim == model.classifier.fc6.out_features and (bundle.stats.ub >= 0).all()


def test_cifar_judge_is_independent():
    from atlas.models.checkpoint import load_payload
    net, judge = load_payload(weights_path("cifarnet.pt")), load_payload(weights_path("cifarnet-judge.pt"))
    assert judge["config"]["width"] != net["config"]["width"]
    assert judge["meta"]["train_config"]["seed"] != net["meta"]["train_config"]["seed"]
    assert net["meta"]["test_accuracy"] > 0.8 and judge["meta"]["test_accuracy"] > 0.75
