"""The run folder: stage outputs written atomically, each with a manifest.

A stage's outputs live in `RUN/stages/<name>/` with `manifest.json` written last. The
folder is built under a temporary name and renamed into place, so a folder that exists
under its real name is complete. A stage is skipped when its manifest's key (a hash of
the stage's name, version, parameters and the keys of its inputs) matches and every
listed file is there with its recorded size.
"""
from __future__ import annotations

import ctypes
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

MANIFEST = "manifest.json"
FAULT_ENV = "ATLAS_FAULT"
FORMAT_FILE = "format.json"   # in RUN/stages/: which layout of the artifacts this run has
FORMAT_NAME = "atlas-run"
FORMAT_VERSION = 3            # 2: topk stats/ streamed (no maxact.npy), evidence views/ (no patches.npy); 3: dataset a listing (labels.npy, path table), thumbs stage; bump when a stored artifact changes meaning or layout
INTERNAL = (".tmp", ".trash", ".partial")  # the store's working folders under stages/


class RunLockedError(RuntimeError):
    """Another atlas process is writing to this run folder."""


class RunFormatError(ValueError):
    """The run folder was written by an atlas with another artifact layout; the message
    says which version it has, which this atlas reads, and what to do."""


_fault_counts: dict[str, int] = {}


def fault_point(label: str) -> None:
    """Fault injection for tests: with ATLAS_FAULT="LABEL" or "LABEL:N" in the environment,
    the process kills itself with SIGKILL the N-th time (default: the first) it reaches
    LABEL. Without the variable this is a dictionary lookup. Labels: see ARCHITECTURE.md."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, nth = spec.rpartition(":")
    if not nth.isdigit():
        name, nth = spec, "1"
    if name != label:
        return
    _fault_counts[label] = _fault_counts.get(label, 0) + 1
    if _fault_counts[label] == int(nth):
        print(f"[fault] {FAULT_ENV}={spec}: killing process {os.getpid()}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def stage_key(name: str, version: int, params: dict, inputs: dict[str, str]) -> str:
    blob = json.dumps({"stage": name, "version": version, "params": params, "inputs": inputs},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    """numpy scalars and arrays as plain numbers and lists; anything else as its str."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary name, fsync, rename): a reader sees the old file or
    the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=_json_default, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _syncfs():
    """libc's syncfs(2) where there is one (Linux), else None."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs()


def make_durable(folder: Path, files: Iterable[Path]) -> None:
    """Put `files` (just written under `folder`) on disk, before a rename makes them count.
    Where Linux offers syncfs(2), one call flushes the folder's file system: one journal
    commit (about 5 ms) where an fsync per file costs one each (2-5 ms a file here, seconds
    for a stage or a chunk of a thousand pictures). Elsewhere, or if it fails: fsync each."""
    if _SYNCFS is not None:
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                if _SYNCFS(fd) == 0:
                    return
            finally:
                os.close(fd)
    for f in files:
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """One resumable piece of a long stage (in its partial folder), written atomically: a
    chunk file that exists is complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_chunk(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """The arrays of a chunk written by `save_chunk` (only those whose name starts with
    `prefix`, so a large chunk is read one part at a time)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k.startswith(prefix)}


def describe_file(path: Path) -> dict:
    info: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
        info["shape"], info["dtype"] = list(arr.shape), str(arr.dtype)
    return info


class RunStore:
    """One run folder: its stages, its resolved config and its lock."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.stages_dir = self.root / "stages"
        self._discarding: ThreadPoolExecutor | None = None
        self._discarded = itertools.count()

    def discard(self, path: Path) -> None:
        """Delete a folder the run no longer needs without waiting for it: renamed into
        `.trash` at once (nothing reads it again), then removed by one background thread.
        Unlinking a stage's chunk files costs about 1 ms a file under load: seconds for a
        stage of pictures, on rank 0 while the other ranks wait. `finish_discards` waits for
        the thread; a killed run leaves the folder in `.trash` for `clean_leftovers`."""
        path = Path(path)
        if not path.exists():
            return
        trash = self.stages_dir / ".trash" / f"{path.name}.{os.getpid()}.{next(self._discarded)}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.rename(trash)
        except OSError:  # e.g. another file system mounted inside the run folder: delete in place
            trash = path
        if self._discarding is None:
            self._discarding = ThreadPoolExecutor(1, thread_name_prefix="atlas-discard")
        self._discarding.submit(shutil.rmtree, trash, True)

    def finish_discards(self) -> None:
        """Wait until every folder given to `discard` is deleted."""
        if self._discarding is not None:
            self._discarding.shutdown(wait=True)
            self._discarding = None

    def stage_dir(self, name: str) -> Path:
        return self.stages_dir / name

    def format_version(self) -> int | None:
        """The run's artifact format version: from `stages/format.json`; 1 for a run made
        before the file existed (same layout); None for a folder without stages."""
        path = self.stages_dir / FORMAT_FILE
        if not path.is_file():
            return 1 if self.stages_dir.is_dir() and any(self.stages_dir.iterdir()) else None
        try:
            info = read_json(path)
            version = info["version"]
            if info.get("format") != FORMAT_NAME or not isinstance(version, int):
                raise ValueError(f"format {info.get('format')!r}, version {version!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunFormatError(f"{path}: not an atlas run format record ({exc})") from None
        return version

    def check_format(self) -> None:
        """Refuse a run whose artifacts this atlas cannot read (clear message, exit code 2)."""
        version = self.format_version()
        if version is None or version == FORMAT_VERSION:
            return
        if version > FORMAT_VERSION:
            raise RunFormatError(
                f"{self.root} was written by a newer atlas (run format {version}; this atlas reads "
                f"format {FORMAT_VERSION}); upgrade atlas to read it")
        raise RunFormatError(
            f"{self.root} was written by an older atlas (run format {version}; this atlas reads "
            f"format {FORMAT_VERSION}); rebuild it with `atlas run --out NEW_FOLDER` (or delete "
            f"{self.stages_dir} to recompute in place)")

    def mark_format(self) -> None:
        """Record this atlas's format version (after `check_format`, under the lock)."""
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        path = self.stages_dir / FORMAT_FILE
        if not path.is_file():
            write_json(path, {"format": FORMAT_NAME, "version": FORMAT_VERSION})

    def read_config(self) -> dict:
        """The run's resolved config (`RUN/config.json`), {} when there is none."""
        path = self.root / "config.json"
        return read_json(path) if path.is_file() else {}

    def write_config(self, resolved: dict) -> None:
        write_json(self.root / "config.json", resolved)

    def summary(self, name: str) -> dict:
        """The stage's `summary.json` (what it did, how long it took), {} when absent."""
        path = self.stage_dir(name) / "summary.json"
        return read_json(path) if path.is_file() else {}

    def listed_files(self) -> dict[str, dict]:
        """Every file any stage manifest on disk lists (finished or not, so a packer can name
        what is missing): {run-relative path: {stage, sha256, bytes, ...}}."""
        listed: dict[str, dict] = {}
        if not self.stages_dir.is_dir():
            return listed
        for man_path in self._manifest_paths():
            name = man_path.parent.relative_to(self.stages_dir)
            for rel, info in read_json(man_path).get("files", {}).items():
                listed[f"stages/{name.as_posix()}/{rel}"] = {"stage": name.as_posix(), **info}
        return listed

    def manifest(self, name: str) -> dict | None:
        """The stage's manifest if the stage is complete on disk, else None."""
        path = self.stage_dir(name) / MANIFEST
        if not path.is_file():
            return None
        try:
            man = read_json(path)
        except (OSError, ValueError):
            return None
        if not isinstance(man, dict) or man.get("stage") != name or not isinstance(man.get("files"), dict):
            return None
        base = str(self.stage_dir(name))
        for rel, info in man["files"].items():  # plain strings: stages list thousands of files
            try:
                st = os.stat(f"{base}/{rel}")
            except OSError:
                return None
            if not stat.S_ISREG(st.st_mode) or st.st_size != info["bytes"]:
                return None
        return man

    def key(self, name: str) -> str | None:
        man = self.manifest(name)
        return man["key"] if man else None

    def is_current(self, name: str, key: str) -> bool:
        man = self.manifest(name)
        return bool(man) and man.get("key") == key

    def _manifest_paths(self) -> list[Path]:
        """Every stage manifest under stages/, sorted; the store's working folders (`.tmp`,
        `.trash`, `.partial`, any dot-folder) are not entered: the discard thread may be
        deleting inside `.trash` at that very moment."""
        found = []
        for folder, dirs, files in os.walk(self.stages_dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if MANIFEST in files:
                found.append(Path(folder) / MANIFEST)
        return sorted(found)

    def completed(self) -> list[str]:
        """Names of all complete stages (nested names use '/')."""
        if not self.stages_dir.is_dir():
            return []
        out = []
        for m in self._manifest_paths():
            rel = m.parent.relative_to(self.stages_dir)
            if self.manifest(str(rel)):
                out.append(rel.as_posix())
        return out

    def write_summary(self, out: Path, summary: dict) -> None:
        write_json(Path(out) / "summary.json", summary)

    def partial_dir(self, name: str, key: str) -> Path:
        """A folder that survives interruption, for chunks of a long stage with this key."""
        d = self.stages_dir / ".partial" / name.replace("/", "__") / key
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextmanager
    def writing(self, name: str, key: str, meta: dict) -> Iterator[Path]:
        """Yield a temporary folder; on success write the manifest and swap it into place."""
        final = self.stage_dir(name)
        if not (self.stages_dir / FORMAT_FILE).is_file() and not self.completed():
            self.mark_format()  # a fresh run folder (the pipeline marks it earlier, after its check)
        tmp = self.stages_dir / ".tmp" / f"{name.replace('/', '__')}.{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fault_point("store:files-written")
        paths = sorted(p for p in tmp.rglob("*") if p.is_file())
        make_durable(tmp, paths)
        files = {f.relative_to(tmp).as_posix(): describe_file(f) for f in paths}
        write_json(tmp / MANIFEST, {"stage": name, "key": key, "files": files,
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta})
        fault_point("store:manifest-written")
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = self.stages_dir / ".trash" / f"{name.replace('/', '__')}.{os.getpid()}"
        if final.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            if trash.exists():
                shutil.rmtree(trash)
            final.rename(trash)
            fault_point("store:swap")
        tmp.rename(final)
        _fsync_dir(final.parent)
        shutil.rmtree(trash, ignore_errors=True)
        self.discard(self.stages_dir / ".partial" / name.replace("/", "__"))

    def clean_leftovers(self) -> list[str]:
        """Remove what killed runs left behind: temporary stage folders, replaced stage
        folders and half-written JSON files. Call only while holding the lock. Resumable
        chunks in `.partial` are kept."""
        removed = []
        for d in (self.stages_dir / ".tmp", self.stages_dir / ".trash"):
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    removed.append(p.relative_to(self.root).as_posix())
        for p in sorted(self.root.glob(".*.tmp")):
            p.unlink()
            removed.append(p.name)
        return removed

    @contextmanager
    def lock(self) -> Iterator[int]:
        """Hold the run folder exclusively; yields the lock file's descriptor. The OS drops
        the lock when the holder dies, so a lock file left by a killed run is recognized as
        stale and taken over. Processes forked while it is held (data-loader workers) do not
        keep it alive."""
        if self.root.exists() and not self.root.is_dir():
            raise RunLockedError(f"run folder {self.root} exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            fh.close()
            raise RunLockedError(f"another atlas run is using {self.root} ({holder}); "
                                 "wait for it to finish or choose another --out") from None
        _held_lock_fds.add(fh.fileno())
        stale = path.stat().st_size > 0
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}")
        fh.flush()
        try:
            if stale:
                print(f"note: took over a stale lock in {self.root} (its run had stopped)")
            removed = self.clean_leftovers()
            if removed:
                print(f"note: removed {len(removed)} unfinished temporary item(s) of an interrupted run")
            yield fh.fileno()
        finally:
            _release(fh)

    @contextmanager
    def adopt_lock(self, fd: int) -> Iterator[int]:
        """Go on holding the lock that this process held before it replaced its image (`atlas
        run` renders the site in a fresh image of the same process: pipeline.hand_off).
        `fd` must be this folder's lock file, inherited across the exec; it is released at the
        end as `lock` releases it. Anything else is refused."""
        path = self.root / ".lock"
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            ours = False
        if not ours:
            raise RunLockedError(f"descriptor {fd} is not the lock file of {self.root}")
        try:  # the same open file still holds the lock, so this succeeds at once
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"descriptor {fd} does not hold the lock of {self.root}") from None
        fh = os.fdopen(fd, "a+")
        os.set_inheritable(fd, False)
        _held_lock_fds.add(fd)
        try:
            yield fd
        finally:
            _release(fh)


def _release(fh) -> None:
    """Empty the lock file (no holder recorded) and drop the lock."""
    _held_lock_fds.discard(fh.fileno())
    fh.seek(0)
    fh.truncate()
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


_held_lock_fds: set[int] = set()


def _drop_locks_in_child() -> None:
    """In a forked child, point the lock's descriptor at /dev/null: a flock belongs to the
    open file, so otherwise a child (a data-loader worker) would keep a dead run's lock."""
    if not _held_lock_fds:
        return
    null = os.open(os.devnull, os.O_RDONLY)
    for fd in _held_lock_fds:
        os.dup2(null, fd)
    os.close(null)
    _held_lock_fds.clear()


os.register_at_fork(after_in_child=_drop_locks_in_child)
