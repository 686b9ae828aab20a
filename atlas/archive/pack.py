"""`atlas archive`: a run's site, artifacts and provenance in one .zip or .tar.gz.

The archive holds `config.json`, `stages/` and `site/` as they are in the run folder, a
README.txt and, at the top, `atlas-manifest.json`: the provenance record and a sha256 and
size for every other file. Unpacked, `site/index.html` opens in a browser from disk (the
site uses relative links only). Each artifact is checked against its stage's own manifest
while it is packed, so an archive never seals a file that changed after its stage wrote it.
The archive is written under a temporary name and renamed into place.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from atlas import __version__
from atlas.archive import provenance
from atlas.artifacts.store import FORMAT_FILE, FORMAT_VERSION as RUN_FORMAT_VERSION
from atlas.artifacts.store import INTERNAL, MANIFEST, RunStore, write_json

MANIFEST_NAME = "atlas-manifest.json"
README_NAME = "README.txt"
FORMAT, FORMAT_VERSION = "atlas-archive", 1
PACKED = ("config.json", "stages", "site")
STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".gz", ".zip", ".woff2"}
CHUNK = 1 << 20


class ArchiveError(ValueError):
    """A run folder cannot be packed, or a file is not an atlas archive; the message says why."""


def archive_kind(path: str | Path) -> str:
    name = Path(path).name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    raise ArchiveError(f"{path}: the suffix picks the format; use .zip, .tar.gz or .tgz")


def run_files(run_dir: Path) -> list[str]:
    """Relative paths of the files an archive of `run_dir` holds, sorted."""
    RunStore(run_dir).check_format()
    if not (run_dir / "config.json").is_file():
        raise ArchiveError(f"{run_dir} has no config.json; is it a run folder?")
    if not (run_dir / "site" / "index.html").is_file():
        raise ArchiveError(f"{run_dir} has no site/index.html; render it first: atlas render {run_dir}")
    store = RunStore(run_dir)
    missing = [s for s in ("dataset", "topk") if store.manifest(s) is None]
    if missing:
        raise ArchiveError(f"{run_dir} has no finished {' and '.join(missing)} stage")
    out = ["config.json"]
    for top in ("stages", "site"):
        for dirpath, dirnames, filenames in os.walk(run_dir / top):
            rel_dir = Path(dirpath).relative_to(run_dir)
            dirnames[:] = sorted(d for d in dirnames if not (top == "stages" and d in INTERNAL))
            out += [(rel_dir / f).as_posix() for f in filenames]
    return sorted(out)


def stage_files(run_dir: Path) -> dict[str, dict]:
    """For every file a stage manifest lists: {run-relative path: {stage, sha256, bytes}}."""
    return RunStore(run_dir).listed_files()


def readme(provenance_record: dict, n_files: int) -> str:
    model = provenance_record.get("model", {})
    data = provenance_record.get("dataset", {})
    commit = provenance_record["atlas"]["commit"]
    return f"""atlas archive
=============

A neuron atlas of the model {model.get('model', '?')} on {data.get('name', '?')}, made by
atlas {provenance_record['atlas']['version']} (commit {commit}).

To look at it: unpack this archive into a folder of its own and open site/index.html in a
web browser (double-click it, or File > Open). No server and no network are needed; every
link is relative.

  zip:     unzip ARCHIVE.zip -d my-atlas && open my-atlas/site/index.html
  tar.gz:  mkdir my-atlas && tar -xzf ARCHIVE.tar.gz -C my-atlas

What is inside:
  site/                the static site
  stages/              the artifacts the site was rendered from, one folder per stage, each
                       with manifest.json (parameters, input keys, array shapes, checksums)
                       and summary.json (what it did, how long it took)
  stages/figures/      ready-made PDF and PNG figures of units, for papers
  config.json          the resolved configuration of the run
  atlas-manifest.json  provenance (atlas version and commit, torch/torchvision versions,
                       model and weight checksum, data set fingerprint and files, config,
                       seeds, timings) and a sha256 for each of the other {n_files} files

To check that nothing changed since it was packed:  atlas verify ARCHIVE  (or the unpacked
folder); it names every missing, extra or changed file and exits non-zero if there is one.
To re-render the site from the artifacts:  atlas render my-atlas
"""


class _Hashing:
    """Reads a file in chunks, hashing what passes through."""

    def __init__(self, f: BinaryIO):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        block = self.f.read(size)
        self.h.update(block)
        self.n += len(block)
        return block


@dataclass
class PackResult:
    path: Path
    files: int
    bytes: int           # the archive's size
    content_bytes: int   # the packed files' total size
    unchecked: list[str]  # files under stages/ that no stage manifest lists
    seconds: float


def _check_against_stage(rel: str, sha: str, size: int, listed: dict[str, dict]) -> None:
    info = listed.get(rel)
    if info is not None and (info["sha256"] != sha or info["bytes"] != size):
        raise ArchiveError(f"{rel} changed after stage {info['stage']!r} wrote it "
                           f"(sha256 {sha[:12]}..., stage manifest says {info['sha256'][:12]}...); "
                           f"rerun the stage (delete stages/{info['stage']}) before archiving")


def _missing_stage_files(run_dir: Path, listed: dict[str, dict]) -> None:
    gone = [rel for rel in listed if not (run_dir / rel).is_file()]
    if gone:
        raise ArchiveError(f"{len(gone)} file(s) of finished stages are missing, first: {gone[0]}; "
                           "rerun the run to complete them")


def pack(run_dir: str | Path, out: str | Path, hash_data: bool = True) -> PackResult:
    """Write the archive of `run_dir` to `out` (.zip, .tar.gz or .tgz)."""
    t0 = time.time()
    run_dir, out = Path(run_dir), Path(out)
    kind = archive_kind(out)
    if not run_dir.is_dir():
        raise ArchiveError(f"run folder not found: {run_dir}")
    for top in ("stages", "site"):
        if (run_dir / top).resolve() in out.resolve().parents:
            raise ArchiveError(f"{out}: an archive cannot be written inside the {top}/ it packs")
    out.parent.mkdir(parents=True, exist_ok=True)
    with RunStore(run_dir).lock():
        files, listed, record, readme_bytes = _contents(run_dir, hash_data)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            entries = _write(kind, tmp, run_dir, files, listed, readme_bytes, record)
            tmp.replace(out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    unchecked = [rel for rel in files if rel.startswith("stages/") and rel not in listed
                 and not rel.endswith(f"/{MANIFEST}") and rel != f"stages/{FORMAT_FILE}"]
    return PackResult(out, len(entries), out.stat().st_size, sum(e["bytes"] for e in entries.values()),
                      unchecked, round(time.time() - t0, 2))


def manifest_record(record: dict, entries: dict[str, dict]) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "run_format_version": RUN_FORMAT_VERSION,
            "atlas_version": __version__, "provenance": record, "files": entries}


def _write(kind: str, tmp: Path, run_dir: Path, files: list[str], listed: dict[str, dict],
           readme_bytes: bytes, record: dict) -> dict[str, dict]:
    entries: dict[str, dict] = {README_NAME: {"sha256": hashlib.sha256(readme_bytes).hexdigest(),
                                              "bytes": len(readme_bytes)}}
    if kind == "zip":
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            zf.writestr(_zip_info(README_NAME, time.time()), readme_bytes)
            for rel in files:
                path = run_dir / rel
                info = _zip_info(rel, path.stat().st_mtime, path.suffix.lower() in STORED_SUFFIXES)
                with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                    reader = _Hashing(src)
                    while block := reader.read(CHUNK):
                        dst.write(block)
                entries[rel] = _entry(rel, reader, listed)
            manifest = json.dumps(manifest_record(record, entries), indent=1, sort_keys=True).encode()
            zf.writestr(_zip_info(MANIFEST_NAME, time.time()), manifest)
    else:
        with tarfile.open(tmp, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tf:
            _tar_add(tf, README_NAME, readme_bytes)
            for rel in files:
                path = run_dir / rel
                st = path.stat()
                info = tarfile.TarInfo(rel)
                info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), 0o644
                with open(path, "rb") as src:
                    reader = _Hashing(src)
                    tf.addfile(info, reader)
                if reader.n != st.st_size:
                    raise ArchiveError(f"{rel} changed size while it was packed; is a run writing to {run_dir}?")
                entries[rel] = _entry(rel, reader, listed)
            _tar_add(tf, MANIFEST_NAME, json.dumps(manifest_record(record, entries), indent=1,
                                                   sort_keys=True).encode())
    return entries


def _entry(rel: str, reader: _Hashing, listed: dict[str, dict]) -> dict:
    sha = reader.h.hexdigest()
    _check_against_stage(rel, sha, reader.n, listed)
    return {"sha256": sha, "bytes": reader.n}


def _zip_info(name: str, mtime: float, stored: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime(max(mtime, 315532800))[:6])
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tf.addfile(info, io.BytesIO(data))


def _contents(run_dir: Path, hash_data: bool) -> tuple[list[str], dict[str, dict], dict, bytes]:
    """The run's files, the files its stage manifests list, its provenance record and the
    README text (called under the run lock)."""
    files = run_files(run_dir)
    listed = stage_files(run_dir)
    _missing_stage_files(run_dir, listed)
    record = provenance.collect(run_dir, hash_data=hash_data)
    return files, listed, record, readme(record, len(files) + 1).encode("utf-8")


def pack_in_place(run_dir: str | Path, hash_data: bool = True) -> Path:
    """Write README.txt and atlas-manifest.json into the run folder itself (no archive), so
    `atlas verify RUN_DIR` can check it later."""
    run_dir = Path(run_dir)
    with RunStore(run_dir).lock():
        files, listed, record, readme_bytes = _contents(run_dir, hash_data)
        tmp = run_dir / f".{README_NAME}.{os.getpid()}.tmp"
        tmp.write_bytes(readme_bytes)
        tmp.replace(run_dir / README_NAME)
        entries = {README_NAME: {"sha256": hashlib.sha256(readme_bytes).hexdigest(), "bytes": len(readme_bytes)}}
        for rel in files:
            with open(run_dir / rel, "rb") as f:
                reader = _Hashing(f)
                while reader.read(CHUNK):
                    pass
            entries[rel] = _entry(rel, reader, listed)
        write_json(run_dir / MANIFEST_NAME, manifest_record(record, entries))
    return run_dir / MANIFEST_NAME
