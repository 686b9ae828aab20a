"""`atlas verify`: check every file of an archive (or an unpacked one) against its manifest.

Every file is read and hashed; a file the manifest lists but the archive lacks is
missing, one it does not list is extra, and one whose sha256 or size differs is changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from atlas.archive.pack import CHUNK, FORMAT, FORMAT_VERSION, INTERNAL, MANIFEST_NAME, ArchiveError, archive_kind


@dataclass
class Report:
    source: str
    expected: int = 0
    verified: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)   # "path (why)"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def lines(self) -> list[str]:
        out = [f"missing: {p}" for p in self.missing] + [f"extra: {p}" for p in self.extra] + \
              [f"changed: {p}" for p in self.changed]
        if self.ok:
            out.append(f"OK: {self.verified} files verified in {self.source}")
        else:
            out.append(f"FAILED: {len(self.changed)} changed, {len(self.missing)} missing, "
                       f"{len(self.extra)} extra ({self.verified} of {self.expected} files intact) in {self.source}")
        return out


def _digest(f: BinaryIO) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    while block := f.read(CHUNK):
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


def _zip_files(path: Path) -> Iterator[tuple[str, str, int, bytes | None]]:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            with zf.open(info) as f:
                if info.filename == MANIFEST_NAME:
                    data = f.read()
                    yield info.filename, "", len(data), data
                else:
                    yield (info.filename, *_digest(f), None)


def _tar_files(path: Path) -> Iterator[tuple[str, str, int, bytes | None]]:
    with tarfile.open(path, "r:*") as tf:
        for member in tf:
            if member.isdir():
                continue
            if not member.isfile():
                yield member.name, "not a regular file", -1, None
                continue
            f = tf.extractfile(member)
            if member.name == MANIFEST_NAME:
                data = f.read()
                yield member.name, "", len(data), data
            else:
                yield (member.name, *_digest(f), None)


def _folder_files(root: Path) -> Iterator[tuple[str, str, int, bytes | None]]:
    """An unpacked archive, or a run folder with a manifest from `atlas archive --in-place`
    (its lock file and the stage store's working folders are not part of it)."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:1] == ("stages",):
            dirnames[:] = [d for d in dirnames if not (len(rel_dir.parts) == 1 and d in INTERNAL)]
        dirnames.sort()
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            if rel == ".lock":
                continue
            path = Path(dirpath) / name
            if rel == MANIFEST_NAME:
                data = path.read_bytes()
                yield rel, "", len(data), data
            elif path.is_symlink() or not path.is_file():
                yield rel, "not a regular file", -1, None
            else:
                with open(path, "rb") as f:
                    yield (rel, *_digest(f), None)


def verify(path: str | Path) -> Report:
    """Check `path` (a .zip, .tar.gz or a folder) against its atlas-manifest.json."""
    path = Path(path)
    if path.is_dir():
        found = _folder_files(path)
    elif path.is_file():
        kind = archive_kind(path)
        found = _zip_files(path) if kind == "zip" else _tar_files(path)
    else:
        raise ArchiveError(f"not found: {path}")
    actual: dict[str, tuple[str, int]] = {}
    duplicates: list[str] = []
    manifest_bytes = None
    try:
        for rel, sha, size, data in found:
            if data is not None:
                manifest_bytes = data
            elif rel in actual:
                duplicates.append(rel)
            else:
                actual[rel] = (sha, size)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{path}: cannot be read as an archive: {exc}") from exc
    if manifest_bytes is None:
        raise ArchiveError(f"{path} has no {MANIFEST_NAME}; it is not an atlas archive")
    try:
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{path}: {MANIFEST_NAME} is not a valid atlas manifest ({exc})") from exc
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(f"{path}: archive format version {version!r}; this atlas reads versions up to "
                           f"{FORMAT_VERSION}: upgrade atlas to verify it")
    report = Report(str(path), expected=len(files))
    for rel in sorted(files):
        if rel not in actual:
            report.missing.append(rel)
            continue
        sha, size = actual[rel]
        want = files[rel]
        if size < 0:
            report.changed.append(f"{rel} ({sha})")
        elif sha != want["sha256"] or size != want["bytes"]:
            report.changed.append(f"{rel} (sha256 {sha[:12]}..., {size} bytes; manifest: "
                                  f"{want['sha256'][:12]}..., {want['bytes']} bytes)")
        else:
            report.verified += 1
    report.extra = sorted(set(actual) - set(files)) + [f"{d} (a second copy)" for d in duplicates]
    return report
