"""atlas/memory.py: the allocator settings that keep a stage's peak memory the same from run
to run. Each case runs in a fresh interpreter, since glibc's settings last for the process."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Free a 16 MiB array (under glibc's moving threshold this raises it to 16 MiB), then allocate
# 4 MiB and say whether the new array lies inside the heap ([heap] in /proc/self/maps) or in
# a mapping of its own.
PROBE = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
from atlas import memory
if {own}:
    assert memory.own_mappings()
big = np.ones(16 << 20, np.uint8)
del big
small = np.ones(4 << 20, np.uint8)
address = small.__array_interface__["data"][0]
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= address < hi:
            print("heap")
            break
else:
    print("own mapping")
"""


def probe(own: bool) -> str:
    res = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), own=own)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not Path("/proc/self/maps").exists(),
                    reason="glibc and /proc only")
def test_own_mappings_keeps_large_arrays_off_the_heap():
    # without it, glibc's moving threshold puts the 4 MiB array in the heap (what made the maps
    # stage's peak differ from run to run); with it, the array gets its own mapping
    assert probe(own=False) == "heap"
    assert probe(own=True) == "own mapping"
