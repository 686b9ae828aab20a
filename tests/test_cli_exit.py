"""`atlas.cli.end_process`: the command line's exit without the interpreter's teardown."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_exit_code_buffered_output_and_atexit_functions_are_kept():
    out = _run("import atexit, sys\n"
               "from atlas.cli import end_process\n"
               "atexit.register(lambda: print('atexit ran'))\n"
               "print('x' * 100000, end='')\n"          # more than a pipe buffer, unflushed
               "print('to stderr', end='', file=sys.stderr)\n"
               "end_process(3)\n"
               "print('not reached')\n")
    assert out.returncode == 3
    assert out.stdout == "x" * 100000 + "atexit ran\n"
    assert out.stderr == "to stderr"


def test_a_temporary_folder_held_to_the_end_is_removed():
    """As at a normal exit (weakref finalizers run among the atexit functions): the figures'
    lean fonts live in such a folder for the whole process."""
    out = _run("import tempfile\n"
               "from atlas.cli import end_process\n"
               "keep = tempfile.TemporaryDirectory(prefix='atlas-end-process-')\n"
               "open(keep.name + '/f', 'w').write('x')\n"
               "print(keep.name, flush=True)\n"
               "end_process(0)\n")
    assert out.returncode == 0 and out.stdout.strip()
    assert not Path(out.stdout.strip()).exists()


def test_a_running_thread_takes_the_normal_exit_which_joins_it():
    out = _run("import threading, time\n"
               "from atlas.cli import end_process\n"
               "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()\n"
               "end_process(0)\n")
    assert out.returncode == 0 and out.stdout == "thread done\n"


def test_python_m_atlas_exits_with_the_command_code():
    bad = subprocess.run([sys.executable, "-m", "atlas", "layers", "no-such-model"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no-such-model" in bad.stderr
