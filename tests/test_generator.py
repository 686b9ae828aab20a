"""The DeePSiM generator family and its weight files (port, Caffe release, atlas format)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atlas.priors.caffe_proto import read_caffemodel, write_caffemodel
from atlas.priors.generator import FC6_FULL, DeePSiM, GeneratorConfig, family_config, from_rgb01, to_rgb01
from atlas.priors.genfile import (CodeStats, GeneratorBundle, bundle_from_state, caffe_state_dict, convert,
                                  load_generator, load_port_state_dict, read_upper_bounds, save_generator)

# the released fc6 generator, as listed in DeePSiM's deploy file and the PyTorch port
RELEASED = {
    "defc7.weight": (4096, 4096), "defc6.weight": (4096, 4096), "defc5.weight": (4096, 4096),
    "deconv5.weight": (256, 256, 4, 4), "conv5_1.weight": (256, 512, 3, 3), "deconv4.weight": (512, 256, 4, 4),
    "conv4_1.weight": (256, 256, 3, 3), "deconv3.weight": (256, 128, 4, 4), "conv3_1.weight": (128, 128, 3, 3),
    "deconv2.weight": (128, 64, 4, 4), "deconv1.weight": (64, 32, 4, 4), "deconv0.weight": (32, 3, 4, 4),
}

# a tiny generator with the released layer names, for files the tests write
TINY = GeneratorConfig(code_dim=8, fc=(("defc7", 16), ("defc6", 16), ("defc5", 4 * 2 * 2)),
                       start_channels=4, start_size=2,
                       convs=(("deconv5", 4, 4, 2), ("conv5_1", 6, 3, 1), ("deconv0", 3, 4, 2)),
                       output="caffe_bgr")


def _tiny(seed=0) -> DeePSiM:
    return DeePSiM(TINY).init_weights(torch.Generator().manual_seed(seed)).eval()


def test_fc6_full_is_the_released_layer_list():
    with torch.device("meta"):
        net = DeePSiM(FC6_FULL)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: s for k, s in shapes.items() if k.endswith("weight")} == RELEASED
    assert all(shapes[k.replace("weight", "bias")] == (s[0] if len(s) == 2 else s[1],) for k, s in RELEASED.items())
    assert list(dict.fromkeys(k.rsplit(".", 1)[0] for k in shapes)) == list(dict.fromkeys(
        k.rsplit(".", 1)[0] for k in RELEASED))  # same order
    assert FC6_FULL.out_size == 256
    assert 55e6 < sum(v.numel() for v in net.state_dict().values()) < 58e6  # "about 56M parameters"
    assert 0.9e9 < net.macs() < 1.1e9  # "1.0 GMAC per image"


def test_forward_shape_and_leaky_slope():
    net = _tiny()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    out = net(z)
    assert out.shape == (5, 3, TINY.out_size, TINY.out_size) == (5, 3, 8, 8)
    # by hand: LeakyReLU(0.3) after every layer but the last
    x = z
    for n in ("defc7", "defc6", "defc5"):
        x = F.leaky_relu(getattr(net, n)(x), 0.3)
    x = x.view(5, 4, 2, 2)
    x = F.leaky_relu(net.deconv5(x), 0.3)
    x = F.leaky_relu(net.conv5_1(x), 0.3)
    torch.testing.assert_close(out, net.deconv0(x))


@pytest.mark.parametrize("size, start", [(32, 4), (36, 9), (64, 4), (40, 5)])
def test_family_sizes(size, start):
    cfg = family_config(128, size, width=16)
    assert cfg.out_size == size and cfg.start_size == start
    assert DeePSiM(cfg)(torch.zeros(2, 128)).shape == (2, 3, size, size)


def test_family_rejects_odd_size():
    with pytest.raises(ValueError, match="even number"):
        family_config(128, 7)


def test_caffe_pixel_convention():
    raw = torch.zeros(1, 3, 2, 2)  # BGR, mean subtracted: the mean image
    rgb = to_rgb01(raw, "caffe_bgr")
    torch.testing.assert_close(rgb[0, :, 0, 0], torch.tensor([123.0, 117.0, 104.0]) / 255)
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(to_rgb01(from_rgb01(x, "caffe_bgr"), "caffe_bgr"), x)


def _stats(dim=8) -> CodeStats:
    return CodeStats.from_codes(torch.rand(50, dim, generator=torch.Generator().manual_seed(3)) * 4, "test")


def test_code_stats_bound_is_mean_plus_three_std():
    codes = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    s = CodeStats.from_codes(codes)
    torch.testing.assert_close(s.mean, torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(s.ub, torch.tensor([2.0 + 3 * (8 / 3) ** 0.5, 1.0]))


def test_atlas_file_round_trip(tmp_path):
    net = _tiny()
    bundle = GeneratorBundle(net, _stats(), {"model": "m", "code_node": "n"}, {"note": 1})
    save_generator(tmp_path / "g.pt", bundle)
    back = load_generator(tmp_path / "g.pt")
    z = torch.rand(3, 8)
    torch.testing.assert_close(back.net(z), net(z))
    torch.testing.assert_close(back.stats.ub, bundle.stats.ub)
    assert back.encoder == {"model": "m", "code_node": "n"} and back.cfg == TINY


@pytest.mark.parametrize("variant", ["plain", "G.", ".1."])
def test_port_state_dict_loads_unchanged(tmp_path, variant):
    net = _tiny()
    state = net.state_dict()
    if variant == "G.":
        state = {"G." + k: v for k, v in state.items()}
    elif variant == ".1.":
        state = {k.replace(".", ".1.", 1): v for k, v in state.items()}
    torch.save(state, tmp_path / "upconvGAN_fc6.pt")
    loaded = load_port_state_dict(tmp_path / "upconvGAN_fc6.pt", TINY)
    other = DeePSiM(TINY)
    other.load_state_dict(loaded)  # strict: exactly the layer list
    z = torch.rand(2, 8)
    torch.testing.assert_close(other(z), net(z))


def test_port_rejects_other_layouts(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not the fc6 generator layout"):
        load_port_state_dict(tmp_path / "x.pt", TINY)
    with pytest.raises(ValueError, match="bare upconvGAN state dict"):
        torch.save(_tiny().state_dict(), tmp_path / "bare.pt")
        load_generator(tmp_path / "bare.pt")


def _caffe_layers(net: DeePSiM, conv_as_convolution: bool) -> dict:
    layers = {}
    for name, _ in TINY.fc:
        m = getattr(net, name)
        layers[name] = ("InnerProduct", [m.weight.detach().numpy(), m.bias.detach().numpy()])
    for name, *_ in TINY.convs:
        m = getattr(net, name)
        w = m.weight.detach().numpy()
        if conv_as_convolution and name == "conv5_1":
            # a Caffe Convolution layer (out, in, k, k) computing the same map
            layers[name] = ("Convolution", [np.ascontiguousarray(np.flip(w, (2, 3)).transpose(1, 0, 2, 3)),
                                            m.bias.detach().numpy()])
        else:
            layers[name] = ("Deconvolution", [w, m.bias.detach().numpy()])
    return layers


@pytest.mark.parametrize("legacy", [False, True])
def test_caffe_release_converts(tmp_path, legacy):
    net = _tiny(5)
    layers = _caffe_layers(net, conv_as_convolution=True)
    write_caffemodel(tmp_path / "generator.caffemodel", layers, legacy=legacy)
    read = read_caffemodel(tmp_path / "generator.caffemodel")
    assert read["conv5_1"][0] == "Convolution" and read["defc7"][1][0].shape == (16, 8)
    state = caffe_state_dict(tmp_path / "generator.caffemodel", TINY)
    other = DeePSiM(TINY)
    other.load_state_dict(state)
    z = torch.rand(4, 8)
    torch.testing.assert_close(other(z), net(z), atol=1e-5, rtol=1e-5)
    # a Convolution blob really is a convolution: check that layer against F.conv2d
    h = torch.rand(1, 4, 4, 4)
    w_conv = torch.from_numpy(layers["conv5_1"][1][0])
    torch.testing.assert_close(other.conv5_1(h), F.conv2d(h, w_conv, net.conv5_1.bias, padding=1),
                               atol=1e-5, rtol=1e-5)


def test_convert_with_bounds_file(tmp_path):
    net = _tiny()
    torch.save(net.state_dict(), tmp_path / "port.pt")
    (tmp_path / "fc6.txt").write_text(" ".join(str(v) for v in range(1, 9)))
    stats = read_upper_bounds(tmp_path / "fc6.txt")
    bundle = bundle_from_state(load_port_state_dict(tmp_path / "port.pt", TINY), stats, TINY)
    save_generator(tmp_path / "g.pt", bundle)
    back = load_generator(tmp_path / "g.pt")
    torch.testing.assert_close(back.stats.ub, torch.arange(1, 9).float())
    with pytest.raises(ValueError, match="code bounds"):
        bundle_from_state(net.state_dict(), CodeStats(ub=torch.ones(3)), TINY)


@pytest.mark.slow
def test_full_size_port_round_trip(tmp_path):
    """The real thing: a full-size file in the port's layout loads into FC6_FULL unchanged."""
    net = DeePSiM(FC6_FULL).init_weights(torch.Generator().manual_seed(0))
    torch.save(net.state_dict(), tmp_path / "upconvGAN_fc6.pt")
    stats = CodeStats(ub=torch.full((4096,), 5.0))
    bundle = convert(tmp_path / "upconvGAN_fc6.pt", stats, tmp_path / "fc6.pt")
    z = torch.rand(1, 4096)
    torch.testing.assert_close(load_generator(tmp_path / "fc6.pt").net(z), net(z))
    assert bundle.cfg.out_size == 256
