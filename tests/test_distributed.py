"""Two processes (torchrun, gloo, CPU) produce artifacts identical to one process."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_resume import artifact_digests

ROOT = Path(__file__).resolve().parents[1]


def torchrun(nproc: int, out: Path, extra: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATLAS_DIST_BACKEND": "gloo", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "atlas", "run", "--out", str(out), "--layers", "conv2", "conv5", "fc7", "--device", "cpu",
           "--set", "world_count=300", "batch_size=4", "workers=0", "topk=5", "maps=false",
           "featvis_batch=4", "units_limit=4", "seeds=2", "dgn_iters=6", "pixel_iters=6", "fourier_iters=6",
           *(extra or [])]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    if shutil.which("torchrun") is None and sys.platform != "linux":
        pytest.skip("torch.distributed.run not available")
    one = torchrun(1, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(2, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = artifact_digests(tmp_path / "one"), artifact_digests(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) > 10
    assert a == b
    import json
    assert json.loads((tmp_path / "two" / "stages" / "topk" / "summary.json").read_text())["chunks"] >= 2
    assert two.stdout.strip().splitlines()[-1].endswith("index.html")
