"""A top-k pass killed between chunks resumes from its last saved states (one state file per
fixed group of chunks, never one per image) and ends with the same artifacts as a pass
never stopped."""
from __future__ import annotations

from pathlib import Path

import pytest

import numpy as np

from atlas.artifacts import chunks
from atlas.config import Config
from atlas.pipeline import run
from atlas.stages import topk
from atlas.artifacts.store import RunStore
from test_resume import artifact_digests


def small(out: Path) -> Config:
    # 100 images in batches of 2: 8 chunks of 13 images (the last 9), one group each
    return Config(world_count=100, topk=3, out=str(out), layers=["conv2", "fc7"], batch_size=2,
                  workers=0, priors=[], maps=False)


def test_pass_resumes_from_its_last_chunk(tmp_path, monkeypatch):
    full = small(tmp_path / "full")
    run(full)

    cfg = small(tmp_path / "cut")
    calls = {"n": 0, "stop": 2 * 40 + 1}  # two layers per batch: stop in batch 41, inside chunk 5
    real_update = topk.RunningTopK.update

    def counting_update(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == calls["stop"]:
            raise KeyboardInterrupt
        return real_update(self, *a, **k)

    monkeypatch.setattr(topk.RunningTopK, "update", counting_update)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    spans = chunks.split(100, chunks.chunk_size(100, cfg.batch_size * topk.CHUNK_BATCHES))
    batches = [-(-(stop - start) // 2) for start, stop in spans]  # a chunk's batches of 2
    assert len(spans) == 8 and batches[:5] == [7] * 5  # 35 batches before chunk 5, 42 after it
    states = sorted((Path(cfg.out) / "stages" / ".partial" / "topk").glob("*/group-*.npz"))
    saved = sorted(int(i) for p in states for i in np.load(p)["chunks"])
    assert saved == list(range(5))  # chunks 0..4 finished and saved, chunk 5 was cut
    calls.update(n=0, stop=-1)
    run(cfg)
    assert calls["n"] == 2 * sum(batches[5:])  # only chunks 5, 6 and 7 were computed again
    assert RunStore(cfg.out).manifest("topk") is not None
    assert artifact_digests(Path(cfg.out)) == artifact_digests(Path(full.out))
