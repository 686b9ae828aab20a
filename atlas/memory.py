"""This process's own memory: figures printed after each stage and after the site, handing
freed heap pages back to the operating system between stages, and the cap on malloc arenas."""
from __future__ import annotations

import os
import resource
import sys


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss: kept across an exec), in MiB:
    printed after each stage, so the stage whose memory grows is seen
    (benchmarks/data_scale.py reads it)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (2 ** 20 if sys.platform == "darwin" else 1024)


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_now_mib() -> float | None:
    """Resident memory now (Linux /proc), in MiB; None elsewhere."""
    return _status_mib("VmRSS")


def image_peak_mib() -> float | None:
    """The peak resident memory of this process image (Linux VmHWM: it starts again at an
    exec, unlike ru_maxrss), so the site line shows what the render itself needed; None
    where /proc does not say."""
    return _status_mib("VmHWM")


def give_back_memory() -> None:
    """Return the heap's free pages to the operating system (glibc's malloc_trim). What a
    stage freed (a large manifest parsed, a chunk's arrays) otherwise stays resident in the
    allocator's free lists, and the next stage's peak stacks on it. A few milliseconds; does
    nothing where the C library has no malloc_trim."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_arenas() -> None:
    """Cap glibc's malloc arenas at the CPUs this process may use (at least 2; glibc's default
    is 8 per CPU). Each thread that allocates while the others hold their arenas gets a new
    one, and what a stage frees in a thread's arena stays resident: the maps stage's peak
    (numba's and openTSNE's threads, the background deletion of chunk folders) varied by
    10-35 MiB from run to run with the default; with the cap, one run in five still peaked
    ~25 MiB higher (notes/data.md).
    Applies to arenas made from now on; nothing where the C library is not glibc."""
    try:
        import ctypes
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 2
    mallopt(M_ARENA_MAX, max(2, cpus))
