"""Interrupted runs resume: finished stages are kept and skipped, results are identical."""
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from atlas.config import Config
from atlas.context import Context
from atlas.pipeline import run
from atlas.stages import dataset, topk
from atlas.stages.base import run_stage
from atlas.artifacts.store import RunStore

TIMING_FILES = {"summary.json", "manifest.json"}


def artifact_digests(run_dir: Path) -> dict[str, str]:
    out = {}
    for f in sorted((run_dir / "stages").rglob("*")):
        rel = f.relative_to(run_dir)
        if f.is_file() and f.name not in TIMING_FILES and not any(p.startswith(".") for p in rel.parts):
            out[rel.as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def small(out: Path, **kw) -> Config:
    return Config(world_count=80, topk=4, out=str(out), layers=["conv1", "conv5", "fc8"], batch_size=16,
                  workers=0, priors=[], maps=False, **kw)


def test_interrupted_run_resumes_identically(tmp_path, monkeypatch):
    full = small(tmp_path / "full")
    run(full)

    cfg = small(tmp_path / "cut")
    calls = {"n": 0}
    real_update = topk.RunningTopK.update

    def dying_update(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # the process is stopped in the middle of the top-k pass
        return real_update(self, *a, **k)

    monkeypatch.setattr(topk.RunningTopK, "update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    store = RunStore(cfg.out)
    assert store.manifest("dataset") is not None
    assert store.manifest("topk") is None and not store.stage_dir("topk").exists()
    monkeypatch.setattr(topk.RunningTopK, "update", real_update)

    dataset_manifest = (store.stage_dir("dataset") / "manifest.json").read_text()
    run(cfg)
    assert (store.stage_dir("dataset") / "manifest.json").read_text() == dataset_manifest  # not recomputed
    assert artifact_digests(Path(cfg.out)) == artifact_digests(Path(full.out))


def test_skip_recompute_and_rerun_only_dependents(tmp_path, capsys):
    """One run, then: the same command skips every stage; a stage with a file missing is
    recomputed (its inputs are not); a changed parameter reruns that stage, not its inputs."""
    cfg = small(tmp_path / "r")
    run(cfg)
    capsys.readouterr()
    run(cfg)
    assert "0 stages computed" in capsys.readouterr().out
    assert json.loads((Path(cfg.out) / "config.json").read_text())["topk"] == 4

    store = RunStore(cfg.out)
    (store.stage_dir("topk") / "features.conv1" / "ids.npy").unlink()
    assert store.manifest("topk") is None
    ctx = Context(cfg, store)
    assert run_stage(ctx, dataset.make(ctx)) == "skipped"
    assert run_stage(ctx, topk.make(ctx)) == "ran"

    before = {s: store.key(s) for s in ("dataset", "topk")}
    capsys.readouterr()
    run(dataclasses.replace(cfg, topk=5))
    after = {s: store.key(s) for s in ("dataset", "topk")}
    assert after["dataset"] == before["dataset"] and after["topk"] != before["topk"]
    assert "[dataset] up to date, skipped" in capsys.readouterr().out
