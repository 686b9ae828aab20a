"""Issue 8, interruption: real `python -m atlas` processes are SIGKILLed at many points
(while checking images, between a stage's files and its manifest, between replacing an old
stage folder and moving the new one in, mid top-k pass twice, before and during the site
render, while holding the lock) and the same command is run again. The final artifacts
must equal, byte for byte, those of a run that was never interrupted; a partial stage is
never taken as complete; a second run on a busy folder refuses; a dead run's lock is taken."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from atlas.artifacts.store import RunLockedError, RunStore, read_json, write_json
from robust_util import artifacts

ROOT = Path(__file__).resolve().parents[1]
# 200 world images in batches of 4; the top-k pass cuts them into 8 chunks of 25 images
# (7 batches each: 6 of 4 and 1 of 1);
# featvis/maps (when present) cut to almost nothing
ARGS = ["run", "--data", "world", "--layers", "conv1", "conv5", "fc7", "--set", "world_count=200",
        "workers=2", "batch_size=4", "topk=5", "seeds=1", "units_limit=2", "pixel_iters=1",
        "dgn_iters=1", "fourier_iters=1", 'priors=["pixel"]', "maps=false"]
OLD = ["world_count=150", "topk=4"]  # a finished earlier run with other parameters


def env(fault: str | None = None) -> dict:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    e.pop("ATLAS_FAULT", None)
    if fault:
        e["ATLAS_FAULT"] = fault
    return e


def start(out: Path, fault: str | None = None, extra: list[str] = ()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "atlas", *ARGS, *extra, "--out", str(out)], cwd=ROOT,
                            env=env(fault), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def atlas(out: Path, fault: str | None = None, extra: list[str] = ()) -> tuple[int, str]:
    return finish(start(out, fault, extra))


def killed(rc: int, log: str) -> None:
    assert rc == -signal.SIGKILL, f"expected a SIGKILL, got exit {rc}:\n{log[-3000:]}"


def current(out: Path, name: str) -> str | None:
    return RunStore(out).key(name)


def test_kills_at_every_stage_then_rerun_gives_identical_artifacts(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    p_ref, p_old = start(ref), start(out, extra=OLD)
    rc, log = finish(p_ref)
    assert rc == 0, log[-3000:]
    rc, log = finish(p_old)
    assert rc == 0, log[-3000:]
    old = {s: current(out, s) for s in ("dataset", "topk")}
    want = {s: current(ref, s) for s in ("dataset", "topk")}
    assert old["dataset"] != want["dataset"]

    # 1. while writing the new listing (its files written, no manifest yet): the old, finished
    # dataset stage is kept as it was
    rc, log = atlas(out, "store:files-written")
    killed(rc, log)
    assert current(out, "dataset") == old["dataset"]
    assert any((out / "stages" / ".tmp").iterdir())  # the unfinished folder, under a temporary name

    # 2. old dataset folder moved aside, the new complete one not yet in place: no dataset at all
    rc, log = atlas(out, "store:swap")
    killed(rc, log)
    assert current(out, "dataset") is None and (out / "stages" / ".trash").is_dir()

    # 3. mid top-k pass, at batch 40: five chunks (35 batches) are folded into saved states
    # (one per group of chunks; here 8 groups of one chunk), the sixth is not
    rc, log = atlas(out, "topk:batch:40")
    killed(rc, log)
    assert "took over a stale lock" in log and "unfinished temporary item" in log
    assert current(out, "dataset") == want["dataset"] and current(out, "topk") == old["topk"]
    saved = sorted(p.name for p in (out / "stages" / ".partial" / "topk").glob("*/group-*.npz"))
    assert saved == [f"group-{g:04d}.npz" for g in range(5)]

    # 4. resumed from the saved chunks, killed again three batches later
    rc, log = atlas(out, "topk:batch:3")
    killed(rc, log)
    assert "resuming: 5 of 8 chunks already computed" in log

    # 5. resumed to the end; killed after the manifest is written, before the folder is renamed
    rc, log = atlas(out, "store:manifest-written")
    killed(rc, log)
    assert "resuming: 5 of 8 chunks already computed" in log
    assert current(out, "topk") == old["topk"]  # the complete-looking temporary folder is not taken

    # 6. between the last stage and the site
    rc, log = atlas(out, "run:before-render")
    killed(rc, log)
    assert current(out, "topk") == want["topk"] and "resuming: 8 of 8 chunks already computed" in log

    # 7. during the site render: killed once 40 pages or images of this render are on disk
    t0 = time.time()
    proc = start(out)
    site = out / "site"
    while proc.poll() is None:
        fresh = [p for p in site.rglob("*") if p.is_file() and p.stat().st_mtime > t0] if site.is_dir() else []
        if len(fresh) >= 40:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    rc, log = finish(proc)
    killed(rc, log)
    assert "site:" not in log

    # 8. a second run while one holds the folder refuses and touches nothing
    holder = start(out)
    for line in holder.stdout:
        if "[dataset] up to date" in line:
            holder.send_signal(signal.SIGSTOP)  # frozen inside the lock
            break
    before = artifacts(out)
    rc, log = atlas(out)
    assert rc == 2 and "another atlas run is using" in log and f"pid {holder.pid}" in log, log[-2000:]
    assert artifacts(out) == before
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)

    # 9. the same command again: the lock of the killed holder is stale, the result is exact
    rc, log = atlas(out)
    assert rc == 0, log[-3000:]
    assert "took over a stale lock" in log
    got, exp = artifacts(out), artifacts(ref)
    assert sorted(got) == sorted(exp), set(got) ^ set(exp)
    differ = [k for k in exp if got[k] != exp[k]]
    assert not differ, differ
    assert not (out / "stages" / ".partial" / "topk").exists()


def test_store_never_takes_a_partial_stage(tmp_path):
    store = RunStore(tmp_path)
    with store.lock():
        with store.writing("s", "k1", {}) as d:
            (d / "a.json").write_text("[1, 2, 3]")
        assert store.is_current("s", "k1")
        man_path = store.stage_dir("s") / "manifest.json"
        man = read_json(man_path)
        (store.stage_dir("s") / "a.json").write_text("[1]")      # shorter than recorded
        assert store.manifest("s") is None
        (store.stage_dir("s") / "a.json").write_text("[1, 2, 3]")
        assert store.is_current("s", "k1")
        man_path.write_text(json.dumps(man)[:40])                 # a torn manifest
        assert store.manifest("s") is None
        write_json(man_path, {**man, "stage": "other"})           # another stage's manifest
        assert store.manifest("s") is None
        write_json(man_path, man)
        with pytest.raises(RuntimeError):
            with store.writing("s", "k2", {}) as d:
                (d / "a.json").write_text("half")
                raise RuntimeError("stage failed")
        assert store.is_current("s", "k1") and not any((tmp_path / "stages" / ".tmp").iterdir())


def test_second_lock_in_the_same_process_refuses(tmp_path):
    with RunStore(tmp_path).lock():
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            with RunStore(tmp_path).lock():
                pass
    with RunStore(tmp_path).lock():  # released on exit
        pass


def test_a_forked_child_does_not_keep_a_dead_runs_lock(tmp_path):
    """A data-loader worker forked while the lock is held outlives its SIGKILLed parent for
    a few seconds; the folder must be free at once all the same."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from atlas.artifacts.store import RunStore
        with RunStore({str(tmp_path)!r}).lock():
            child = os.fork()
            if child == 0:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)  # let the test read the parent's output to its end
                os.dup2(null, 2)
                time.sleep(20)
                os._exit(0)
            print("child", child, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and "child" in proc.stdout, proc.stderr
    child = int(proc.stdout.split()[1])
    try:
        os.kill(child, 0)  # the child is still alive ...
        with RunStore(tmp_path).lock():  # ... and the folder is free
            pass
    finally:
        os.kill(child, signal.SIGKILL)


def test_render_refuses_while_a_run_holds_the_folder(tmp_path, capsys):
    from atlas import cli
    with RunStore(tmp_path).lock():
        assert cli.main(["render", str(tmp_path)]) == 2
    assert "another atlas run is using" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
