"""Models by name, from files and modules, and every way naming one can go wrong: each bad
input exits 2 with a message naming the file, function, key or layer, before any compute."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from atlas.cli import main
from atlas.models import get_spec, load_model
from atlas.models.checkpoint import load_weights
from atlas.models.layers import canonical, extractor, family_defaults, layout_of, list_layers, resolve_layers
from atlas.units import UnitsError, parse_units, units_for

USER_MODEL = Path(__file__).parent / "data" / "user_model.py"


def _fails(argv: list[str], capsys, *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _write(tmp_path: Path, body: str, name: str = "net.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_unknown_name_suggests_close_matches(capsys):
    _fails(["layers", "efficientnet_b9"], capsys, "unknown model 'efficientnet_b9'", "efficientnet_b7")
    _fails(["layers", "timm:resnet1888"], capsys, "unknown timm model", "timm:resnet18")


def test_torchvision_preprocessing_comes_from_the_weights():
    from torchvision.models import get_model_weights
    spec = get_spec("vit_b_16")
    t = get_model_weights("vit_b_16").DEFAULT.transforms()
    assert (spec.input_size, spec.resize, spec.interpolation) == (t.crop_size[0], t.resize_size[0], "bilinear")
    assert spec.class_names[:2] == ("tench", "goldfish") and len(spec.class_names) == 1000
    eff = get_spec("efficientnet_b3")  # a non-default size and filter, read not assumed
    assert (eff.input_size, eff.resize, eff.interpolation) == (300, 320, "bicubic")


def test_timm_spec_from_data_config():
    spec = get_spec("timm:resnet18")
    assert spec.source == "timm" and spec.input_size == 224 and spec.interpolation == "bicubic"
    assert spec.resize == round(224 / 0.95) or spec.resize == int(224 / 0.95)


def test_user_model_spec_and_content_hash(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(USER_MODEL.read_text())
    spec = get_spec(f"{path}:make")
    assert (spec.input_size, spec.class_names[0], spec.aliases["conv2"]) == (32, "c0", "features.4")
    path.write_text(USER_MODEL.read_text() + "\n# edited\n")
    assert get_spec(f"{path}:make").identity != spec.identity  # editing the file changes the stage keys


@pytest.mark.parametrize("body,needles", [
    ("def make():\n    raise RuntimeError('boom')\n", ["make() raised RuntimeError: boom"]),
    ("def make():\n    return 42\n", ["make() returned int, not an nn.Module"]),
    ("def other():\n    pass\n", ["no function 'make'", "other"]),
    ("import no_such_module_xyz\n", ["importing the file failed", "no_such_module_xyz"]),
])
def test_bad_factories_exit_2_before_compute(tmp_path, capsys, body, needles):
    path = _write(tmp_path, body)
    out = tmp_path / "run"
    _fails(["run", "--model", f"{path}:make", "--weights", "random", "--out", str(out)], capsys, str(path), *needles)
    assert not out.exists()  # nothing computed, no run folder


def test_missing_file_and_module(tmp_path, capsys):
    _fails(["layers", f"{tmp_path}/nope.py:make"], capsys, "model file not found", "nope.py")
    _fails(["layers", "no_such_pkg.models:make"], capsys, "module 'no_such_pkg.models'")


def test_weights_that_do_not_fit_name_the_keys(tmp_path, capsys):
    spec = get_spec(f"{USER_MODEL}:make")
    state = load_model(spec, "random").state_dict()
    state.pop("fc.bias")
    state["head.weight"] = torch.zeros(3)
    state["features.0.weight"] = torch.zeros(2, 3, 3, 3)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    _fails(["run", "--model", f"{USER_MODEL}:make", "--weights", str(bad), "--out", str(tmp_path / "run")], capsys,
           "missing keys: fc.bias", "unexpected keys: head.weight", "features.0.weight (2, 3, 3, 3) vs (8, 3, 3, 3)")
    assert not (tmp_path / "run").exists()


def test_safetensors_and_state_dict_weights_load(tmp_path):
    from safetensors.torch import save_file
    spec = get_spec(f"{USER_MODEL}:make")
    src = load_model(spec, "random")
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "w.safetensors")
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pt")
    for f in ("w.safetensors", "w.pt"):
        model = load_model(spec, str(tmp_path / f))
        assert torch.equal(model.fc.weight, src.fc.weight)


def test_unknown_and_unanalysable_layers(tmp_path, capsys):
    path = _write(tmp_path, """
        import torch.nn as nn
        class Odd(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.fc = nn.Linear(4, 2)
            def forward(self, x):
                y = self.conv(x)
                z = y.unsqueeze(1)          # (1, 4, H, W) per image: not analysable
                return self.fc(z.mean((1, 3, 4)))
        def make():
            return Odd()
        """)
    common = ["run", "--model", f"{path}:make", "--weights", "random", "--input-size", "16", "--out", str(tmp_path / "r")]
    _fails(common + ["--layers", "conv", "unsqueeze"], capsys, "'unsqueeze'", "cannot be analysed", "(1, 4, 14, 14)")
    _fails(common + ["--layers", "conv", "convv"], capsys, "unknown layer 'convv'", "did you mean conv")
    _fails(common + ["--layers", "conv", "--units", "conv:3-9"], capsys, "unit 4 is past the layer's 4 units")
    _fails(common + ["--layers", "conv", "--units", "fc:0"], capsys, "'units': layer 'fc' is not among")
    assert not (tmp_path / "r").exists()


def test_token_layouts_become_unit_grids():
    vit = torch.arange(2 * 5 * 3.0).view(2, 5, 3)      # class token + 2x2 patch tokens, D = 3
    assert layout_of((5, 3)) == "tokens+cls" and layout_of((4, 3)) == "tokens"
    grid = canonical(vit)
    assert grid.shape == (2, 3, 2, 2)
    assert torch.equal(grid[:, :, 0, 1], vit[:, 2, :])  # token 1 + 1 (after the class token) is (0, 1)
    swin = torch.randn(2, 4, 4, 7)
    assert layout_of((4, 4, 7)) == "nhwc" and torch.equal(canonical(swin)[:, 5, 1, 2], swin[:, 1, 2, 5])
    assert layout_of((7, 4, 4)) == "conv" and layout_of((1, 4, 4, 4)) is None


class _Untraceable(nn.Module):
    """Data-dependent control flow (the FX tracer fails) and one module called twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = self.act(self.conv(x))
        if y.sum() > -1:                 # data-dependent: not traceable
            y = self.act(self.conv(y) - 1.0)
        return self.fc(y.mean((2, 3)))


def test_hook_fallback_lists_and_keeps_repeated_calls_apart():
    from atlas.models.spec import ModelSpec
    model = _Untraceable().eval()
    spec = ModelSpec("untraceable", lambda w: model, 16, (0.5,) * 3, (0.25,) * 3)
    names = [l.name for l in list_layers(model, spec)]
    assert names == ["conv", "act", "conv_1", "act_1", "fc"]
    x = torch.randn(2, 3, 16, 16)
    out = extractor(model, ["act", "act_1"])(x)
    first = model.act(model.conv(x))
    torch.testing.assert_close(out["act"], first)
    torch.testing.assert_close(out["act_1"], model.act(model.conv(first) - 1.0))
    assert resolve_layers(model, spec, None)  # default layers found without a trace


def test_family_default_layers():
    spec = get_spec("resnet50").at_input_size(64)
    model = load_model(spec, "random")
    layers = list_layers(model, spec)
    assert family_defaults(model, layers) == ["relu", "layer1.2.relu_2", "layer2.3.relu_2", "layer3.5.relu_2",
                                              "layer4.2.relu_2", "flatten", "fc"]


def test_units_selection():
    assert parse_units(["fc8:0-2,7", "conv5:all"]) == {"fc8": [0, 1, 2, 7], "conv5": None}
    assert units_for("classifier.6", "fc8", 10, ["fc8:8-9"], 3) == [8, 9]
    assert units_for("features.10", "conv5", 10, ["fc8:8-9"], 3) == [0, 1, 2]
    for bad in (["fc8"], ["fc8:3-1"], ["fc8:a"], ["fc8:1", "fc8:2"]):
        with pytest.raises(UnitsError):
            parse_units(bad)


def test_convert_generator_refuses_a_statistics_model_that_is_not_the_encoder(tmp_path, capsys):
    src = tmp_path / "upconvGAN_fc6.pt"
    torch.save({"defc7.weight": torch.zeros(1)}, src)
    _fails(["convert-generator", str(src), "--out", str(tmp_path / "g.pt"), "--stats-model", "alexnet",
            "--stats-data", str(tmp_path)], capsys, "not the encoder", "CaffeNet", "--bounds")
    assert not (tmp_path / "g.pt").exists()


def test_models_and_layers_commands(capsys):
    assert main(["models", "--filter", "vit_b"]) == 0
    out = capsys.readouterr().out
    assert "vit_b_16" in out and "224px" in out and "torchvision" in out
    _fails(["models", "--filter", "no-such-family"], capsys, "no model name matches")
    assert main(["layers", "vit_b_16", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "tokens+cls" in out and "class token" in out and "* encoder.layers.encoder_layer_11.add_1" in out
    assert "* heads.head" in out and "768 x 2x2" in out
