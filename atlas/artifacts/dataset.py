"""`stages/dataset/`: which images are used (`images.json`), which were not
(`skipped.json`) and their display thumbnails (`thumbs.npy` uint8 (N, t, t, 3))."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, open_array
from atlas.artifacts.store import RunStore, read_json, write_json

STAGE = "dataset"
IMAGES, SKIPPED, THUMBS = "images.json", "skipped.json", "thumbs.npy"
_SCRATCH = "thumbs_all.npy"


@dataclass
class Dataset:
    """The data set as the run uses it: `info` is images.json
    (`{name, fingerprint, class_names, count, source_index, items: [{id, label, desc}]}`)."""
    info: dict
    skipped: list
    thumbs: np.ndarray            # (N, t, t, 3) uint8, memory-mapped
    sha: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.info["count"])

    @property
    def class_names(self) -> list[str]:
        return [str(n) for n in self.info.get("class_names") or []]

    @cached_property
    def labels(self) -> np.ndarray:
        """(N,) int64 class index of each image (-1: unlabelled)."""
        return np.array([it["label"] for it in self.info["items"]], dtype=np.int64)


def read_info(store: RunStore) -> dict:
    """images.json alone (cheap: no arrays)."""
    path = store.stage_dir(STAGE) / IMAGES
    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("count"), int) or not isinstance(info.get("items"), list):
        raise ArtifactError(f"{path}: expected {{count, items, ...}}")
    return info


def skipped_path(store: RunStore) -> Path:
    return store.stage_dir(STAGE) / SKIPPED


def read_skipped(store: RunStore) -> list:
    path = skipped_path(store)
    return read_json(path) if path.is_file() else []


def read_thumbs(store: RunStore, count: int | None = None) -> np.ndarray:
    """thumbs.npy, memory-mapped and checked (N, t, t, 3) uint8."""
    return load_array(store.stage_dir(STAGE) / THUMBS, 4, "uint8", (count,))


def read(store: RunStore) -> Dataset:
    info = read_info(store)
    return Dataset(info=info, skipped=read_skipped(store), thumbs=read_thumbs(store, int(info["count"])),
                   sha=file_sha(store.manifest(STAGE) or {}))


def open_scratch_thumbs(out: Path, count: int, size: int) -> np.ndarray:
    """A writable (count, size, size, 3) array for the thumbnails of every candidate image,
    before it is known which are usable; `write` keeps the usable rows and removes it."""
    return open_array(Path(out) / _SCRATCH, (count, size, size, 3), np.uint8)


def write(out: Path, info: dict, skipped: list, thumbs: np.ndarray) -> None:
    """images.json, skipped.json and thumbs.npy into the stage's folder `out`."""
    out = Path(out)
    if len(thumbs) != info["count"]:
        raise ValueError(f"{len(thumbs)} thumbnails for {info['count']} images")
    final = open_array(out / THUMBS, thumbs.shape, np.uint8)
    for a in range(0, len(thumbs), 4096):  # in blocks: nothing of size images x pixels in memory
        final[a:a + 4096] = thumbs[a:a + 4096]
    final.flush()
    del final
    (out / _SCRATCH).unlink(missing_ok=True)
    write_json(out / IMAGES, info)
    write_json(out / SKIPPED, skipped)
