"""Writing the site folder: the SiteWriter and the render cache.

The SiteWriter refuses paths outside the site folder and paths claimed twice, and leaves
a file untouched when its bytes have not changed. The render cache remembers, for every
file the renderer wrote, a fingerprint of its inputs and the file's size and mtime; a
file whose inputs and on-disk state both match is not produced again. A file edited or
deleted by hand no longer matches, so the cache never vouches for a file it did not see.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

CACHE_NAME = ".atlas-render.json"
CACHE_VERSION = 1
_BAD_REL = re.compile(r"^/|\\|(^|/)\.{0,2}(/|$)|\x00")


class SiteWriter:
    """Writes files under one root; refuses paths outside it and writing a path twice;
    leaves a file untouched when its bytes have not changed (incremental re-render).

    Paths are checked lexically (relative, no '.' or '..' parts, no backslashes), and
    every folder written into is checked once, by its real path, to lie inside the root,
    so a symbolic link cannot lead a write outside the site folder either.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._root = str(self.root)
        self._dirs_ok: set[str] = set()
        self.written: set[str] = set()
        self.changed = 0
        self.unchanged = 0

    def path(self, rel: str) -> str:
        """The absolute path of `rel`, which must lie inside the root."""
        if not isinstance(rel, str) or not rel or _BAD_REL.search(rel):
            raise ValueError(f"refusing to write outside the site folder: {rel!r}")
        return f"{self._root}/{rel}"

    def claim(self, rel: str) -> str:
        """Reserve `rel` for this build; a second claim of the same path is an error."""
        p = self.path(rel)
        if rel in self.written:
            raise ValueError(f"site path written twice: {rel}")
        self.written.add(rel)
        return p

    def _folder(self, p: str) -> None:
        d = os.path.dirname(p)
        if d in self._dirs_ok:
            return
        os.makedirs(d, exist_ok=True)
        real = os.path.realpath(d)
        if real != self._root and not real.startswith(self._root + os.sep):
            raise ValueError(f"refusing to write outside the site folder: {d} leads to {real}")
        self._dirs_ok.add(d)

    def put(self, rel: str, data: bytes | str) -> bool:
        """Write `data` at `rel` unless the file already holds it; True if written."""
        return self.put_stat(rel, data)[0]

    def put_stat(self, rel: str, data: bytes | str) -> tuple[bool, os.stat_result]:
        """`put`, and the file's stat afterwards (for a new file taken from the open file:
        no second look-up of the path)."""
        p = self.path(rel)
        blob = data.encode("utf-8") if isinstance(data, str) else data
        self._folder(p)
        try:  # a new file (the common case of a first build): one system call to create it
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            changed = self._replace(p, blob)
            return changed, os.stat(p)
        # an interrupted build leaves a new file out of the cache, so it is redone
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self.changed += 1
        return True, st

    def _replace(self, p: str, blob: bytes) -> bool:
        """An existing file: left alone when it holds `blob`, else replaced atomically, so a
        page being served is never half written."""
        if os.stat(p).st_size == len(blob):
            with open(p, "rb") as f:
                if f.read() == blob:
                    self.unchanged += 1
                    return False
        tmp = f"{os.path.dirname(p)}/.{os.path.basename(p)}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, p)
        self.changed += 1
        return True

    def link(self, rel: str, src: str | os.PathLike) -> bool:
        """Put a copy of file `src` at `rel`: a hard link where the file system allows (no
        bytes copied), else a copy; never a symbolic link (static hosts drop them).
        Returns False when `rel` already is that file or holds the same bytes."""
        p = self.path(rel)
        self._folder(p)
        try:  # a new file: link it in place in one step
            os.link(src, p)
            self.changed += 1
            return True
        except FileExistsError:
            pass
        except OSError:  # another file system, or links not allowed: copied below
            if not os.path.lexists(p):
                shutil.copyfile(src, p)
                self.changed += 1
                return True
        st, ss = os.stat(p), os.stat(src)
        if (st.st_ino, st.st_dev) == (ss.st_ino, ss.st_dev):
            self.unchanged += 1
            return False
        tmp = f"{os.path.dirname(p)}/.{os.path.basename(p)}.{os.getpid()}.tmp"
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, p)
        self.changed += 1
        return True

    def write(self, rel: str, data: bytes | str) -> None:
        """Claim and write in one step."""
        self.claim(rel)
        self.put(rel, data)


class RenderCache:
    """`{rel: [input key, content hash, size, mtime_ns]}` of the last build, in the site folder."""

    def __init__(self, root: Path, fingerprint: str):
        self.path = Path(root) / CACHE_NAME
        self.fingerprint = fingerprint
        self.previous: dict[str, list] = {}
        self.usable: dict[str, list] = {}
        try:
            blob = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            blob = {}
        if isinstance(blob, dict) and blob.get("version") == CACHE_VERSION and isinstance(blob.get("files"), dict):
            self.previous = blob["files"]
            if blob.get("fingerprint") == fingerprint:
                self.usable = self.previous

    def save(self, entries: dict[str, list]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "fingerprint": self.fingerprint, "files": entries},
                                  separators=(",", ":")), encoding="utf-8")
        tmp.replace(self.path)


def remove_stale(writer: SiteWriter, previous: dict[str, list], current: set[str]) -> int:
    """Delete files the last build wrote and this one did not; then their empty folders.
    Only files the renderer itself recorded are ever deleted."""
    removed = 0
    folders = set()
    for rel in previous:
        if rel in current:
            continue
        try:
            p = Path(writer.path(rel))
        except ValueError:
            continue
        if p.is_file() and not p.is_symlink():
            p.unlink()
            removed += 1
            folders.update(q for q in p.parents if writer.root in q.parents)
    for d in sorted(folders, key=lambda q: len(q.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass  # not empty
    return removed
