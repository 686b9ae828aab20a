"""Issue 8, config and command line: every wrong key, type, model, layer, weight file or
data path fails before any compute (the run folder is never created), with exit code 2
and a message naming the key or value and the valid choices."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atlas import cli

ROOT = Path(__file__).resolve().parents[1]


def _files(tmp: Path) -> dict[str, list[str]]:
    """Config files and weight files the cases below refer to (made here)."""
    (tmp / "unknown.toml").write_text("topkk = 3\n")
    (tmp / "badtype.toml").write_text('topk = "nine"\n')
    (tmp / "layers.toml").write_text('layers = "conv5"\n')
    (tmp / "table.toml").write_text("[model_opts]\ndepth = 3\n")
    (tmp / "broken.toml").write_text("topk = \n")
    (tmp / "device.toml").write_text('device = "gpu"\n')
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp / "other.pt")
    (tmp / "text.pt").write_text("not a checkpoint")
    (tmp / "afile").write_text("x")
    return {}


CASES = [  # (name, argv after `run`, words the message must contain)
    ("unknown key", ["{tmp}/unknown.toml"], ["unknown key 'topkk'", "did you mean 'topk'", "valid keys"]),
    ("unknown --set key", ["--set", "seedz=3"], ["unknown key 'seedz'", "'seeds'"]),
    ("wrong type", ["{tmp}/badtype.toml"], ["'topk' must be an integer", "'nine'"]),
    ("string for a list", ["{tmp}/layers.toml"], ["'layers' must be a list of strings", "'conv5'"]),
    ("unknown table", ["{tmp}/table.toml"], ["unknown table 'model_opts'"]),
    ("not TOML", ["{tmp}/broken.toml"], ["broken.toml", "not valid TOML"]),
    ("no config file", ["{tmp}/missing.toml"], ["config file not found", "missing.toml"]),
    ("bad device in TOML", ["{tmp}/device.toml"], ["'device' must be one of auto, cpu, cuda", "'gpu'"]),
    ("zero topk", ["--set", "topk=0"], ["'topk' must be at least 1"]),
    ("unknown prior", ["--set", 'priors=["dream"]'], ["unknown prior 'dream'", "dgn, pixel, fourier"]),
    ("unknown model", ["--model", "nosuchnet"], ["unknown model 'nosuchnet'", "worldnet", "resnet18"]),
    ("unknown layer", ["--layers", "conv9"], ["unknown layer 'conv9'", "conv5=features.conv5", "atlas layers worldnet"]),
    ("missing weights", ["--weights", "{tmp}/nope.pt"], ["weight file not found", "nope.pt"]),
    ("weights of another model", ["--weights", "{tmp}/other.pt"], ["other.pt", "worldnet", "cannot load"]),
    ("not a checkpoint", ["--weights", "{tmp}/text.pt"], ["cannot read weight file", "text.pt"]),
    ("missing data", ["--data", "{tmp}/nodata"], ["'{tmp}/nodata'", "neither 'world'"]),
    ("unknown torchvision set", ["--data", "torchvision:ImageNot"], ["'ImageNot'", "CIFAR10"]),
    ("missing generator", ["--set", 'generator="{tmp}/gen.pt"'], ["'generator'", "gen.pt", "not found"]),
    ("unknown map layer", ["--set", 'map_layer="fc9"'], ["'map_layer'", "unknown layer 'fc9'", "fc7=classifier.fc7"]),
    ("out is a file", ["--out", "{tmp}/afile"], ["'out'", "afile", "not a folder"]),
]


@pytest.mark.parametrize("name,args,words", CASES, ids=[c[0] for c in CASES])
def test_bad_config_fails_before_compute(name, args, words, tmp_path, capsys):
    _files(tmp_path)
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), *[a.format(tmp=tmp_path) for a in args]]
    if name == "out is a file":
        argv = ["run", *[a.format(tmp=tmp_path) for a in args]]
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (rc, err)
    assert err.startswith("atlas run: error: ") and "Traceback" not in err
    for word in words:
        assert word.format(tmp=tmp_path) in err, (word, err)
    assert not out.exists(), "the run folder was created before the config was checked"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present, so device cuda is valid")
def test_cuda_without_gpu_fails_before_compute(tmp_path, capsys):
    rc = cli.main(["run", "--out", str(tmp_path / "run"), "--device", "cuda"])
    assert rc == 2 and "torch sees no GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_real_command_lines_exit_2_without_traceback(tmp_path):
    """The same checks through `python -m atlas` processes (started together: each pays the
    torch import), including argparse's own refusals."""
    _files(tmp_path)
    runs = {
        "unknown key": (["run", str(tmp_path / "unknown.toml")], "did you mean 'topk'"),
        "unknown model": (["run", "--model", "nosuchnet"], "choose one of: alexnet"),
        "missing weights": (["run", "--weights", str(tmp_path / "nope.pt")], "weight file not found"),
        "bad --device": (["run", "--device", "gpu"], "invalid choice: 'gpu'"),
        "unknown flag": (["run", "--topk", "3"], "unrecognized arguments: --topk"),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = {name: subprocess.Popen([sys.executable, "-m", "atlas", *argv, "--out", str(tmp_path / "run")],
                                    cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
             for name, (argv, _) in runs.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, proc.returncode, err)
        assert runs[name][1] in err and "Traceback" not in err, (name, err)
    assert not (tmp_path / "run").exists()
