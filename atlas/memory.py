"""This process's own memory: figures printed after each stage and after the site, handing
freed heap pages back to the operating system between stages, the cap on malloc arenas, and
large arrays in mappings of their own once the model's batch loops are over."""
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
    trim = _glibc("malloc_trim")
    if trim:
        trim(0)


def _glibc(name: str):
    """glibc's function `name` (malloc_trim, mallopt), looked up once; None where the C
    library is not glibc."""
    if name not in _GLIBC:
        try:
            import ctypes
            _GLIBC[name] = getattr(ctypes.CDLL("libc.so.6"), name)
        except (OSError, AttributeError):
            _GLIBC[name] = None
    return _GLIBC[name]


_GLIBC: dict = {}
M_ARENA_MAX = -8  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
OWN_MAPPING_BYTES = 1 << 20


def own_mappings(threshold: int = OWN_MAPPING_BYTES) -> bool:
    """From now on, give every allocation of `threshold` bytes or more a mapping of its own
    (glibc's M_MMAP_THRESHOLD, fixed), so an array freed goes back to the operating system at
    once. glibc's default threshold moves: freeing a mapped block raises it to that block's
    size (up to 32 MiB), after which arrays of up to that size are cut from the heap, where
    what is freed between live blocks stays resident. How a stage's transient arrays then
    pack into the heap depends on what ran before and on thread timing: the maps stage's
    peak was 1,262-1,264 MiB in three runs of five and 1,288 in the other two (data_scale's
    N = 3,000 run, load 2-4), with the threshold fixed at 1 MiB 1,257-1,258 in seven of seven
    (notes/data.md). Called by the stages after the model's batch loops (from `maps` on),
    not for the whole process: re-mapping the model's activations on every batch costs time
    (one thread: an AlexNet forward pass at batch 16, 224 px, 15% slower; the image priors'
    steps 20-25% slower). Returns False (nothing done) where the C library is not glibc."""
    mallopt = _glibc("mallopt")
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, int(threshold)))


def limit_arenas() -> None:
    """Cap glibc's malloc arenas at the CPUs this process may use (at least 2; glibc's default
    is 8 per CPU). Each thread that allocates while the others hold their arenas gets a new
    one, and what a stage frees in a thread's arena stays resident: the maps stage's peak
    (numba's and openTSNE's threads, the background deletion of chunk folders) varied by
    10-35 MiB from run to run with the default; with the cap, one run in five still peaked
    ~25 MiB higher, which `own_mappings` removed (notes/data.md).
    Applies to arenas made from now on; nothing where the C library is not glibc."""
    mallopt = _glibc("mallopt")
    if not mallopt:
        return
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 2
    mallopt(M_ARENA_MAX, max(2, cpus))
