"""Any model end to end: `atlas run` (random weights, the embedded world, tiny inputs, one unit
per layer, every prior including DGN-AM through a small generator file made here) for a
matrix of torchvision families, a timm model and a user module from a file; then the
receptive field of the map layer is checked against autograd (or its caveat is stated).

Each model runs its own default layers' second stage output and its logits, so the family
rule for default layers is exercised on every architecture."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas.cli import main
from atlas.evidence.receptive_field import receptive_fields
from atlas.models import get_spec, load_model
from atlas.models.layers import extractor, resolve_layers
from atlas.render.names import unit_page

USER_MODEL = Path(__file__).parent / "data" / "user_model.py"
MATRIX = [("alexnet", 64), ("vgg16", 32), ("resnet50", 32), ("densenet121", 32), ("mobilenet_v3_small", 32),
          ("efficientnet_b0", 32), ("convnext_tiny", 32), ("vit_b_16", 32), ("swin_t", 32),
          ("regnet_y_400mf", 32), ("timm:test_vit", 32), (f"{USER_MODEL}:make", 32)]
SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    """A small DeePSiM-family generator (16-d code, 36 px): DGN-AM must fit it to any input."""
    from atlas.priors.generator import DeePSiM, family_config
    from atlas.priors.genfile import CodeStats, GeneratorBundle, save_generator
    g = DeePSiM(family_config(16, 36, width=8, fc_width=32)).init_weights(torch.Generator().manual_seed(1)).eval()
    path = tmp_path_factory.mktemp("gen") / "tiny-generator.pt"
    save_generator(path, GeneratorBundle(g, CodeStats(ub=torch.full((16,), 2.0))))
    return path


def _layers(name: str, size: int):
    spec = get_spec(name).at_input_size(size)
    model = load_model(spec, "random")
    defaults = resolve_layers(model, spec, None)
    maps = [l for l in defaults if l.kind == "conv" and l.shape[1] > 1]
    return spec, model, [maps[min(1, len(maps) - 1)], defaults[-1]]


def _gradient_box(net, layer: str, size: int, y: int, x: int) -> tuple[int, int, int, int] | None:
    g = torch.Generator().manual_seed(0)
    inp = torch.randn(4, 3, size, size, generator=g, requires_grad=True)
    act = net(inp)[layer]
    grad, = torch.autograd.grad(act[:, :, y, x].sum(), inp)
    ys, xs = np.nonzero(grad.abs().sum((0, 1)).numpy())
    return None if len(ys) == 0 else (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


@pytest.mark.parametrize("name,size", MATRIX, ids=[m[0].split("/")[-1] for m in MATRIX])
def test_atlas_run_any_model(name, size, tmp_path, generator_file):
    t0 = time.time()
    spec, model, layers = _layers(name, size)
    out = tmp_path / "run"
    rc = main(["run", "--model", name, "--weights", "random", "--data", "world", "--out", str(out),
               "--input-size", str(size), "--layers", *[l.name for l in layers],
               "--units", f"{layers[0].name}:0", f"{layers[1].name}:0-1",
               "--set", "world_count=6", "topk=2", "seeds=1", "dgn_iters=2", "pixel_iters=2", "fourier_iters=2",
               "workers=0", "batch_size=6", "maps=false", "fc_heatmaps=gradcam", f"generator={json.dumps(str(generator_file))}"])
    assert rc == 0
    stages = out / "stages"
    for layer in layers:
        meta = json.loads((stages / "featvis" / layer.name / "meta.json").read_text())
        assert meta["priors"] == ["dgn", "pixel", "fourier"]
        for prior in meta["priors"]:
            images = np.load(stages / "featvis" / layer.name / f"{prior}.npy")
            assert images.shape[0] == (1 if layer is layers[0] else 2) and images.shape[-1] == 3
        ev = json.loads((stages / "evidence" / layer.name / "meta.json").read_text())
        assert ev["shape"] == list(layer.shape)
    assert (out / "site" / "index.html").is_file()
    # the receptive field of the map layer: contains the gradient's support, or says why not
    map_layer = layers[0]
    rf = receptive_fields(model, size, [map_layer])[map_layer.name]
    page = (out / "site" / unit_page(map_layer.slug, 0)).read_text()
    if map_layer.tokens:
        assert any("token" in n for n in rf.notes) and "the box is the token&#39;s patch" in page
        if map_layer.layout == "tokens+cls":
            assert any("class token" in n for n in rf.notes) and "class token" in page
    elif any("effective field" in n for n in rf.notes):
        assert rf.spatial and "effective field" in page  # patches still get a box, and the page says which
    else:
        net = extractor(model, [map_layer.name])
        h, w = map_layer.shape[1:]
        for y, x in ((h // 2, w // 2), (0, 0), (h - 1, w - 1)):
            box = _gradient_box(net, map_layer.name, size, y, x)
            if box is not None:
                y0, x0, y1, x1 = rf.box(y, x)
                assert y0 <= box[0] and x0 <= box[1] and box[2] <= y1 and box[3] <= x1, (name, y, x, box, rf.box(y, x))
    SECONDS[name] = time.time() - t0
    print(f"\n{name}: {SECONDS[name]:.1f} s")
