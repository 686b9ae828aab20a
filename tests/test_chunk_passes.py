"""`run_passes`: several chunked passes of one stage dealt and awaited together; the chunks,
their folders and the work records are those of one `run_chunks` per pass."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from atlas.artifacts import chunks
from atlas.artifacts.store import RunStore


def context(tmp_path: Path, rank: int = 0, world_size: int = 1) -> SimpleNamespace:
    # barriers are no-ops unless a process group is up, so one process can play any rank
    return SimpleNamespace(store=RunStore(tmp_path / "run"), rank=rank, world_size=world_size, work={})


def squares(log: list, tag: str):
    def compute(start: int, stop: int, _folder: Path) -> dict[str, np.ndarray]:
        log.append((tag, start, stop))
        return {"x": np.arange(start, stop) ** 2}
    return compute


def test_passes_deal_one_list_and_record_each_tag(tmp_path):
    log: list = []
    passes = [chunks.Pass("a", 8, 2, squares(log, "a")), chunks.Pass("b", 5, 2, squares(log, "b"), "images")]
    # one list, pass after pass: a[0,2) a[2,4) a[4,6) a[6,8) b[0,2) b[2,4) b[4,5); rank 1 of 2
    # takes every other one from the second (each run_chunks call would restart the rotation)
    ctx = context(tmp_path, rank=1, world_size=2)
    chunks.run_passes(ctx, "stage", "k", passes)  # only rank 0 checks that every chunk is there
    assert ctx.work == {}
    assert log == [("a", 2, 4), ("a", 6, 8), ("b", 2, 4)]
    # rank 0 (same folder) computes the rest, sees rank 1's chunks as resumed, and returns all
    log.clear()
    ctx0 = context(tmp_path)
    done = chunks.run_passes(ctx0, "stage", "k", passes)
    assert log == [("a", 0, 2), ("a", 4, 6), ("b", 0, 2), ("b", 4, 5)]
    assert [[(c.start, c.stop) for c in d] for d in done] == [chunks.split(8, 2), chunks.split(5, 2)]
    assert np.concatenate([c.arrays()["x"] for c in done[0]]).tolist() == [i * i for i in range(8)]
    assert ctx0.work == {"a": {"items": "units", "chunks": 4, "per_rank": [4], "resumed": 4},
                         "b": {"items": "images", "chunks": 3, "per_rank": [3], "resumed": 2}}
    assert done[1][0].path.name == "b-0000000-0000002"  # the folder run_chunks(tag="b") would use


def test_run_chunks_is_one_pass(tmp_path):
    log: list = []
    done = chunks.run_chunks(context(tmp_path), "stage", "k", 5, 2, squares(log, "c"), tag="c")
    assert log == [("c", 0, 2), ("c", 2, 4), ("c", 4, 5)]
    assert [c.path.name for c in done] == ["c-0000000-0000002", "c-0000002-0000004", "c-0000004-0000005"]


def test_deal_by_cost_evens_out_the_ranks_and_keeps_libraries_together():
    # a long job alone on one rank, the short ones (which share a library) on the other
    costs, needs = [4.0, 1.0, 1.0, 1.0], [("a",), ("b",), ("b",), ("b",)]
    assert chunks.deal_by_cost(costs, needs, {"a": 0.5, "b": 1.0}, 2) == [1, 0, 0, 0]
    # the last job goes where its library is loaded already (rank 0: 1.0 + 1.5 so far), not to
    # the rank with less to do (rank 1: 2.0), which would load it again
    assert chunks.deal_by_cost([2.0, 1.0, 0.5], [(), ("x",), ("x",)], {"x": 1.5}, 2) == [1, 0, 0]
    # jobs of no cost still spread (ties go to the higher rank), and one rank takes everything
    assert sorted(chunks.deal_by_cost([0.01] * 4, [()] * 4, {}, 2)) == [0, 0, 1, 1]
    assert chunks.deal_by_cost([3.0, 1.0], [(), ()], {}, 1) == [0, 0]


def test_run_chunks_follows_a_deal(tmp_path):
    log: list = []
    ctx = context(tmp_path, rank=0, world_size=2)
    with pytest.raises(RuntimeError, match="chunks missing"):  # rank 1's chunk is not computed here
        chunks.run_chunks(ctx, "stage", "k", 3, 1, squares(log, "j"), tag="j", items="jobs",
                          deal=lambda missing, world: [0 if c.start != 1 else 1 for c in missing])
    assert log == [("j", 0, 1), ("j", 2, 3)]
