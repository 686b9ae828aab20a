"""Two processes (torchrun, gloo, CPU) share every stage whose cost grows with units or
images, and produce artifacts identical to one process; a killed job resumes from its chunks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_resume import artifact_digests

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("features.conv2", "features.conv5", "classifier.fc7")
# the stages whose cost grows with units or images: each must be shared
SHARED = ("topk", "concepts", "dissect", "maps", "thumbs",
          *(f"{kind}/{layer}" for kind in ("featvis", "evidence", "figures") for layer in LAYERS))


def torchrun(nproc: int, out: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATLAS_DIST_BACKEND": "gloo", "PYTHONPATH": str(ROOT)}
    env.pop("ATLAS_FAULT", None)
    if fault:
        env["ATLAS_FAULT"] = fault
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "atlas", "run", "--out", str(out), "--layers", "conv2", "conv5", "fc7", "--device", "cpu",
           "--set", "world_count=300", "batch_size=4", "workers=0", "topk=5", "maps=true",
           "featvis_batch=4", "units_limit=4", "seeds=2", "dgn_iters=6", "pixel_iters=6", "fourier_iters=6"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def work(run: Path, stage: str) -> dict:
    return json.loads((run / "stages" / stage / "summary.json").read_text()).get("work", {})


@pytest.mark.slow
def test_two_processes_share_the_work_and_match_one(tmp_path):
    one = torchrun(1, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = torchrun(2, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = artifact_digests(tmp_path / "one"), artifact_digests(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) > 10
    assert a == b
    assert two.stdout.strip().splitlines()[-1].endswith("index.html")
    for stage in SHARED:
        record = work(tmp_path / "two", stage)
        assert record, f"{stage}: no work record"
        for tag, done in record.items():
            total = sum(done["per_rank"])
            assert len(done["per_rank"]) == 2 and total > 0 and done["resumed"] == 0, (stage, tag, done)
            for n in done["per_rank"]:
                if done["items"] == "jobs":  # a few unlike tasks (the maps' t-SNE, UMAP, unit maps)
                    assert n >= 1, (stage, tag, done)
                else:  # each rank computed 40% to 60% of the stage's units or images
                    assert 0.4 <= n / total <= 0.6, (stage, tag, done)
        assert work(tmp_path / "one", stage)  # one process records its (whole) share too
    assert not work(tmp_path / "two", "dataset")  # cheap stages stay on rank 0


@pytest.mark.slow
def test_killed_sharded_stage_resumes_from_its_chunks(tmp_path):
    ref = torchrun(1, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    # each rank dies after finishing its third chunk (in the top-k pass, 8 chunks in all)
    cut = torchrun(2, tmp_path / "cut", fault="chunks:chunk:3")
    assert cut.returncode != 0
    assert (tmp_path / "cut" / "stages" / "topk" / "manifest.json").exists() is False
    again = torchrun(2, tmp_path / "cut")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[topk] resuming: " in again.stdout
    record = work(tmp_path / "cut", "topk")["chunk"]
    assert record["resumed"] > 0 and sum(record["per_rank"]) + record["resumed"] == 300
    assert artifact_digests(tmp_path / "ref") == artifact_digests(tmp_path / "cut")
