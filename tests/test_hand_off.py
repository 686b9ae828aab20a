"""`atlas run` renders its site in a fresh image of its own process (pipeline.hand_off_render):
the same process id and lock, but none of torch's memory. Checked on a real `python -m atlas`
process; the lock's hand-over across an exec is checked on its own."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from atlas.artifacts.store import RunLockedError, RunStore

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["run", "--data", "world", "--layers", "conv1", "fc7", "--set", "world_count=60", "batch_size=20",
        "topk=3", "seeds=1", "units_limit=1", "pixel_iters=1", "dgn_iters=1", "fourier_iters=1",
        'priors=["pixel"]', "maps=false"]
SITE_LINE = re.compile(r"^site: .*this process's peak memory (\d+) MiB$", re.M)


def env(**extra: str) -> dict:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **extra}
    e.pop("ATLAS_FAULT", None)
    return e


def atlas(out: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atlas", *ARGS, "--out", str(out)], cwd=ROOT, env=env(**extra),
                          capture_output=True, text=True, timeout=600)


def test_the_site_is_rendered_by_a_fresh_image_without_torch(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    handed, inline = atlas(tmp_path / "a", TMPDIR=str(temp)), atlas(tmp_path / "b", ATLAS_RENDER_INLINE="1")
    for proc in (handed, inline):
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = proc.stdout.strip().splitlines()
        assert lines[-1].endswith("index.html") and Path(lines[-1]).is_file()
    # handed off: the stages' summary first, then the site, rendered by an image that never
    # loaded torch (torch alone is ~700 MiB resident); inline: the same site from the process
    # that ran the stages, whose peak includes theirs
    out = handed.stdout
    assert out.index("\nsummary: ") < out.index("\nsite: ")
    peak_handed = int(SITE_LINE.search(out).group(1))
    peak_inline = int(SITE_LINE.search(inline.stdout).group(1))
    assert peak_handed < 400 < 600 < peak_inline, (peak_handed, peak_inline)
    assert not list(temp.glob("atlas-*"))  # the exit functions ran before the exec (figures' font folder)
    for run in ("a", "b"):
        assert (tmp_path / run / ".lock").read_text() == ""  # released at the end
        with RunStore(tmp_path / run).lock():
            pass
    site = sorted(p.relative_to(tmp_path / "a" / "site").as_posix() for p in (tmp_path / "a" / "site").rglob("*"))
    assert site == sorted(p.relative_to(tmp_path / "b" / "site").as_posix()
                          for p in (tmp_path / "b" / "site").rglob("*"))


def test_an_error_in_the_handed_off_render_names_the_users_command(tmp_path):
    out = tmp_path / "r"
    proc = atlas(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "stages" / "topk" / "manifest.json").unlink()  # the render needs a finished top-k stage
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from atlas.artifacts.store import RunStore
        from atlas.pipeline import hand_off_render
        with RunStore({str(out)!r}).lock() as fd:
            hand_off_render({str(out)!r}, fd, "demo")
    """)], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("atlas demo: error: "), proc.stderr[-2000:]
    assert "topk" in proc.stderr
    with RunStore(out).lock():  # the failed render let the folder go
        pass


def test_the_lock_is_carried_across_the_exec(tmp_path):
    """The image before the exec takes the lock; the image after it still holds it (a second
    lock is refused, naming the same process), then releases it."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from atlas.artifacts.store import RunStore
        if len(sys.argv) == 1:
            with RunStore({str(tmp_path)!r}).lock() as fd:
                os.set_inheritable(fd, True)
                os.execv(sys.executable, [sys.executable, __file__, str(fd), str(os.getpid())])
        fd, pid = int(sys.argv[1]), int(sys.argv[2])
        assert pid == os.getpid()
        with RunStore({str(tmp_path)!r}).adopt_lock(fd):
            try:
                with RunStore({str(tmp_path)!r}).lock():
                    print("not held")
            except Exception as exc:
                print("held:", exc, "| me:", os.getpid())
        with RunStore({str(tmp_path)!r}).lock():
            print("free")
    """)
    path = tmp_path / "child.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    held, free = proc.stdout.strip().splitlines()
    assert held.startswith("held: another atlas run is using") and free == "free"
    assert re.search(r"\(pid (\d+) on ", held).group(1) == held.rsplit(" ", 1)[1]  # the holder is this process


def test_adopting_a_descriptor_that_is_not_the_lock_is_refused(tmp_path):
    store = RunStore(tmp_path)
    with store.lock():
        pass
    other = tmp_path / "other.txt"
    other.write_text("x")
    with open(other) as f, pytest.raises(RunLockedError, match="is not the lock file of"):
        with store.adopt_lock(f.fileno()):
            pass
    fh = open(tmp_path / ".lock")  # the lock file, but this open file holds no lock ...
    try:
        with RunStore(tmp_path).lock():   # ... while another one does
            with pytest.raises(RunLockedError, match="does not hold the lock"):
                with store.adopt_lock(fh.fileno()):
                    pass
    finally:
        if not fh.closed:
            fh.close()
