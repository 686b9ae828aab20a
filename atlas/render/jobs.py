"""Jobs: one per output file, run in parallel, skipped when their inputs did not change.

A job is a light record (path, maker, argument); the maker knows, for its argument,

- `key(arg)`: a cheap fingerprint of the inputs (e.g. the checksums of the stages a page
  reads, or an array's checksum plus the unit),
- `content(arg)`: an exact fingerprint, computed only when the key changed (the digest of
  a page's context, or a hash of exactly the pixels a PNG encodes),
- `produce(arg)`: the file's bytes, or `source(arg)`: a stage file that already holds them
  (encoded where it was made), which the writer hard-links or copies.

A file is produced only when both fingerprints changed or the file on disk is not the one
the last build wrote. Jobs run in worker processes forked after the data is gathered, so
they share the memory-mapped arrays and the compiled templates.
"""
from __future__ import annotations

import gc
import hashlib
import multiprocessing as mp
import os
import pickle
import zlib
from dataclasses import dataclass
from typing import Any

from atlas.render.writer import SiteWriter

try:
    from isal.isal_zlib import adler32 as _adler32, crc32 as _crc32
except ImportError:  # pragma: no cover (depends on the environment)
    _adler32, _crc32 = zlib.adler32, zlib.crc32


def digest(*parts: Any) -> str:
    """A short hash of plain data (page contexts, keys). Pickle is used for speed: equal
    data built the same way gives equal bytes; were object sharing ever to differ, the
    hash would differ and the page would merely be rendered again, never wrongly kept."""
    return hashlib.blake2b(pickle.dumps(parts, protocol=5), digest_size=12).hexdigest()


def hash_bytes(*arrays: Any) -> str:
    """A fast 64-bit checksum (CRC-32 and Adler-32) of pixel buffers, to notice changed
    inputs; not for security. A miss needs both checksums and the length to collide."""
    crc, adler, n = 0, 1, 0
    for a in arrays:
        view = a if isinstance(a, bytes) else memoryview(a).cast("B")
        crc, adler, n = _crc32(view, crc), _adler32(view, adler), n + len(view)
    return f"{crc:08x}{adler:08x}{n:x}"


class Maker:
    """Produces one kind of file; subclasses override what they need."""
    kind = "file"

    def key(self, arg: Any) -> str:
        raise NotImplementedError

    def content(self, arg: Any) -> str:
        return ""

    def produce(self, arg: Any) -> bytes | str:
        raise NotImplementedError

    def source(self, arg: Any):
        """A file whose bytes are the output, to hard-link (or copy) rather than produce; None
        for files made from data."""
        return None

    def release(self, arg: Any) -> None:
        """Drop anything content() kept for produce()."""


@dataclass(slots=True)
class Job:
    rel: str
    maker: Maker
    arg: Any = None

    @property
    def kind(self) -> str:
        return self.maker.kind


_JOBS: list[Job] = []
_CTX: dict = {}


def _run_one(job: Job, writer: SiteWriter, old: list | None, force: bool) -> tuple[str, list, str]:
    p = writer.path(job.rel)
    on_disk = None
    if old is not None and not force:  # only a file the last build wrote can be kept
        try:
            st = os.stat(p)
            on_disk = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            pass
    maker, arg = job.maker, job.arg
    key = maker.key(arg)
    fresh = not force and old is not None and on_disk is not None and (old[2], old[3]) == on_disk
    if fresh and old[0] == key:
        return job.rel, old, "cached"
    chash = maker.content(arg)
    if fresh and chash and old[1] == chash:
        return job.rel, [key, chash, on_disk[0], on_disk[1]], "cached"
    src = maker.source(arg)
    if src is not None:
        changed = writer.link(job.rel, src)
        st = os.stat(p)
    else:
        changed, st = writer.put_stat(job.rel, maker.produce(arg))
    return job.rel, [key, chash, st.st_size, st.st_mtime_ns], "written" if changed else "same"


def _run_chunk(bounds: tuple[int, int]) -> list[tuple[str, list, str, str]]:
    writer, old, force = _CTX["writer"], _CTX["old"], _CTX["force"]
    out = []
    for i in range(*bounds):
        job = _JOBS[i]
        try:
            rel, entry, status = _run_one(job, writer, old.get(job.rel), force)
        finally:
            job.maker.release(job.arg)
        out.append((rel, entry, status, job.kind))
    return out


def run_jobs(jobs: list[Job], writer: SiteWriter, old: dict[str, list], workers: int = 1,
             force: bool = False, chunk: int = 64) -> tuple[dict[str, list], dict[str, dict[str, int]]]:
    """Run every job (in `workers` forked processes when > 1); returns the new cache entries
    and counts {kind: {written, same, cached}}."""
    global _JOBS, _CTX
    _JOBS, _CTX = jobs, {"writer": writer, "old": old, "force": force}
    chunks = [(i, min(len(jobs), i + chunk)) for i in range(0, len(jobs), chunk)]
    entries: dict[str, list] = {}
    counts: dict[str, dict[str, int]] = {}
    gc_was_on = gc.isenabled()
    gc.disable()  # page contexts are acyclic; collection passes over millions of objects cost seconds
    try:
        if workers > 1 and len(jobs) > chunk and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(workers) as pool:
                for part in pool.imap_unordered(_run_chunk, chunks):
                    _collect(part, entries, counts)
        else:
            for c in chunks:
                _collect(_run_chunk(c), entries, counts)
    finally:
        _JOBS, _CTX = [], {}
        if gc_was_on:
            gc.enable()
    return entries, counts


def _collect(part, entries: dict, counts: dict) -> None:
    for rel, entry, status, kind in part:
        entries[rel] = entry
        bucket = counts.setdefault(kind, {"written": 0, "same": 0, "cached": 0})
        bucket[status] += 1


# Forking the workers and their first touches of the gathered data cost more than they save on a
# small site: the quick demo's 1,755 jobs took 0.62-0.77 s in the process and 0.87-0.97 s in 2 forked
# workers (2026-11-26, 2-core machine, load 1.6; chunks of 64, 256 or 900 jobs alike), so a pool
# pays from about 3,000-3,500 jobs on two cores.
JOBS_PER_WORKER = 2048


def default_workers(jobs: int | None = None) -> int:
    """One worker per CPU the process may use; with `jobs` given, no more than one per
    JOBS_PER_WORKER jobs (1: the jobs run in this process, no pool)."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (not Linux)
        cpus = max(1, os.cpu_count() or 1)
    return cpus if jobs is None else max(1, min(cpus, jobs // JOBS_PER_WORKER))
