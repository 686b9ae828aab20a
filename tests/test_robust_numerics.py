"""Issue 8, numerics: a network whose weights were poisoned (NaN, overflow to infinity,
units that never fire) still gives a finished atlas; the top-k stage counts non-finite
activations per unit exactly (checked against a plain forward pass) and the unit pages
mark non-finite and dead units."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from atlas import cli
from atlas.data.loader import model_transform
from atlas.data.sources import WorldSource
from atlas.models import get_spec, load_model
from atlas.models.layers import extractor
from atlas.render.names import safe_name
from atlas.resources import weights_path

N = 60
QUICK = ["--set", f"world_count={N}", "topk=4", "workers=0", "batch_size=25", "seeds=1", "units_limit=2",
         "pixel_iters=1", "dgn_iters=1", "fourier_iters=1", 'priors=["pixel"]', "maps=false"]


def poisoned(path, edit) -> None:
    payload = torch.load(weights_path("worldnet.pt"), map_location="cpu", weights_only=True)
    sd = payload["state_dict"]
    with torch.no_grad():
        edit(sd)
    torch.save(payload, path)


def conv_poison(sd) -> None:
    sd["features.conv4.weight"][5] = 0.0          # conv4 unit 5: constant -1, never above zero
    sd["features.conv4.bias"][5] = -1.0
    sd["features.conv5.bias"][3] = float("nan")   # conv5 unit 3: NaN everywhere
    sd["features.conv5.weight"][6] *= 1e38        # conv5 unit 6: overflows on some images


def fc_poison(sd) -> None:
    sd["classifier.fc7.weight"][5] = 0.0          # fc7 unit 5: dead
    sd["classifier.fc7.bias"][5] = -1.0
    sd["classifier.fc8.weight"][7] = float("nan")  # fc8 unit 7: NaN on every image
    sd["classifier.fc8.weight"][2] = 0.0          # fc8 unit 2: dead
    sd["classifier.fc8.bias"][2] = -5.0


def brute_nonfinite(weights, nodes) -> dict[str, np.ndarray]:
    """Images per unit with any NaN/inf, from one plain forward pass over all images."""
    spec = get_spec("worldnet")
    src = WorldSource(seed=2, count=N, size=32)
    x = torch.stack([model_transform(spec)(src.load(i)) for i in range(N)])
    with torch.inference_mode():
        acts = extractor(load_model(spec, str(weights)), nodes)(x)
    return {n: (~torch.isfinite(a.reshape(N, a.shape[1], -1))).any(dim=2).sum(dim=0).numpy()
            for n, a in acts.items()}


@pytest.mark.parametrize("edit,layers,marks", [
    (conv_poison, ["conv4", "conv5"], {"features.conv4": {5: "dead"}, "features.conv5": {3: "nan", 6: "some"}}),
    (fc_poison, ["fc7", "fc8"], {"classifier.fc7": {5: "dead"}, "classifier.fc8": {7: "nan", 2: "dead"}}),
], ids=["conv", "fc"])
def test_poisoned_weights_are_counted_and_marked(edit, layers, marks, tmp_path, capsys):
    weights, out = tmp_path / "poisoned.pt", tmp_path / "run"
    poisoned(weights, edit)
    rc = cli.main(["run", "--data", "world", "--weights", str(weights), "--out", str(out),
                   "--layers", *layers, *QUICK])
    printed = capsys.readouterr()
    assert rc == 0, printed.err[-3000:]
    assert "NaN or infinite activations" in printed.out
    brute = brute_nonfinite(weights, list(marks))
    for node, units in marks.items():
        d = out / "stages" / "topk" / node
        counts = np.load(d / "nonfinite.npy")
        assert counts.dtype == np.int64 and counts.shape == (brute[node].shape[0],)
        np.testing.assert_array_equal(counts, brute[node])
        values = np.load(d / "values.npy")
        for unit, kind in units.items():
            page = (out / "site" / "layers" / safe_name(node) / f"{unit}.html").read_text(encoding="utf-8")
            if kind == "dead":
                assert counts[unit] == 0 and values[unit, 0] <= 0
                assert 'class="warn dead"' in page and 'class="warn nonfinite"' not in page
            elif kind == "nan":
                assert counts[unit] == N and np.all(values[unit] == -np.inf)
                assert f"NaN or infinite activation on {N} of {N} images" in page
            else:
                assert 0 < counts[unit] <= N, counts[unit]
                assert 'class="warn nonfinite"' in page
        healthy = [u for u in range(len(counts)) if counts[u] == 0 and values[u, 0] > 0]
        assert healthy, node
        page = (out / "site" / "layers" / safe_name(node) / f"{healthy[0]}.html").read_text(encoding="utf-8")
        assert 'class="warn' not in page
