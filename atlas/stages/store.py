"""The run folder: stage outputs written atomically, each with a manifest.

A stage's outputs live in `RUN/stages/<name>/` with `manifest.json` written last. The
folder is built under a temporary name and renamed into place, so a folder that exists
under its real name is complete. A stage is skipped when its manifest's key (a hash of
the stage's name, version, parameters and the keys of its inputs) matches and every
listed file is there with its recorded size.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

MANIFEST = "manifest.json"


class RunLockedError(RuntimeError):
    """Another atlas process is writing to this run folder."""


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


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary name, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


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

    def stage_dir(self, name: str) -> Path:
        return self.stages_dir / name

    def manifest(self, name: str) -> dict | None:
        """The stage's manifest if the stage is complete on disk, else None."""
        path = self.stage_dir(name) / MANIFEST
        if not path.is_file():
            return None
        try:
            man = read_json(path)
        except (OSError, ValueError):
            return None
        for rel, info in man.get("files", {}).items():
            f = self.stage_dir(name) / rel
            if not f.is_file() or f.stat().st_size != info["bytes"]:
                return None
        return man

    def key(self, name: str) -> str | None:
        man = self.manifest(name)
        return man["key"] if man else None

    def is_current(self, name: str, key: str) -> bool:
        man = self.manifest(name)
        return bool(man) and man.get("key") == key

    def completed(self) -> list[str]:
        """Names of all complete stages (nested names use '/')."""
        if not self.stages_dir.is_dir():
            return []
        out = []
        for m in sorted(self.stages_dir.rglob(MANIFEST)):
            rel = m.parent.relative_to(self.stages_dir)
            if not any(p.startswith(".") for p in rel.parts) and self.manifest(str(rel)):
                out.append(rel.as_posix())
        return out

    def partial_dir(self, name: str, key: str) -> Path:
        """A folder that survives interruption, for chunks of a long stage with this key."""
        d = self.stages_dir / ".partial" / name.replace("/", "__") / key
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextmanager
    def writing(self, name: str, key: str, meta: dict) -> Iterator[Path]:
        """Yield a temporary folder; on success write the manifest and swap it into place."""
        final = self.stage_dir(name)
        tmp = self.stages_dir / ".tmp" / f"{name.replace('/', '__')}.{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        files = {}
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            files[f.relative_to(tmp).as_posix()] = describe_file(f)
        write_json(tmp / MANIFEST, {"stage": name, "key": key, "files": files,
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta})
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = self.stages_dir / ".trash" / f"{name.replace('/', '__')}.{os.getpid()}"
        if final.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            if trash.exists():
                shutil.rmtree(trash)
            final.rename(trash)
        tmp.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self.stages_dir / ".partial" / name.replace("/", "__"), ignore_errors=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder exclusively. The OS drops the lock when the holder dies, so a
        lock file left by a killed run is recognized as stale and taken over."""
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
        stale = path.stat().st_size > 0
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}")
        fh.flush()
        try:
            if stale:
                print(f"note: took over a stale lock in {self.root} (its run had stopped)")
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
