"""A top-k pass killed between chunks resumes from its last saved state (one state file per
rank, never one per chunk) and ends with the same artifacts as a pass never stopped."""
from __future__ import annotations

from pathlib import Path

import pytest

from atlas.config import Config
from atlas.pipeline import run
from atlas.stages import topk
from atlas.stages.store import RunStore
from test_resume import artifact_digests


def small(out: Path) -> Config:
    # 100 images in batches of 2: chunks of 64 images, so two chunks
    return Config(world_count=100, topk=3, out=str(out), layers=["conv2", "fc7"], batch_size=2,
                  workers=0, priors=[], maps=False)


def test_pass_resumes_from_its_last_chunk(tmp_path, monkeypatch):
    full = small(tmp_path / "full")
    run(full)

    cfg = small(tmp_path / "cut")
    calls = {"n": 0, "stop": 2 * 40 + 1}  # two layers per batch: stop in batch 41, inside chunk 1
    real_update = topk.RunningTopK.update

    def counting_update(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == calls["stop"]:
            raise KeyboardInterrupt
        return real_update(self, *a, **k)

    monkeypatch.setattr(topk.RunningTopK, "update", counting_update)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    partial = list((Path(cfg.out) / "stages" / ".partial" / "topk").glob("*/chunk-*.npz"))
    assert [p.name for p in partial] == ["chunk-00000.npz"]  # the state after chunk 0, alone
    calls.update(n=0, stop=-1)
    run(cfg)
    assert calls["n"] == 2 * (100 - 64) // 2  # only chunk 1 was computed again
    assert RunStore(cfg.out).manifest("topk") is not None
    assert artifact_digests(Path(cfg.out)) == artifact_digests(Path(full.out))
