"""`stages/dataset/`: the listed images, compact: `images.json` (name, fingerprint, class
names, count: no per-image entries), `labels.npy` int32 (N,) (-1: unlabelled), the path
table `paths.bin` (the images' descriptions, UTF-8, one after another) with
`path_offsets.npy` int64 (N+1,), and `skipped.json` (what the listing could not use).

Image ids are positions in this list (source order). Nothing is decoded to list: a file
that turns out unusable is found when the top-k pass first decodes it and is recorded in
`stages/topk/unusable.json` (artifacts/topk.py); `Dataset.unusable` joins the two.
Memory per image when read: 4 B of label and 8 B of offset, memory-mapped; a path is
decoded only when asked for (`desc(i)`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from atlas.artifacts.checks import ArtifactError, file_sha, load_array, save_array
from atlas.artifacts.store import RunStore, read_json, write_json

STAGE = "dataset"
IMAGES, SKIPPED, LABELS, PATHS, OFFSETS = "images.json", "skipped.json", "labels.npy", "paths.bin", "path_offsets.npy"


@dataclass
class Dataset:
    """The data set as the run uses it: `info` is images.json
    (`{name, fingerprint, class_names, count}`), labels and paths memory-mapped."""
    info: dict
    skipped: list                  # the listing's problems, then unusable files, in source order
    labels: np.ndarray             # (N,) int class index (-1: unlabelled), memory-mapped
    offsets: np.ndarray            # (N+1,) int64 into `paths`
    paths: np.ndarray              # uint8 bytes of the path table, memory-mapped
    unusable: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # ids found unusable (topk)
    sha: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Images listed (ids 0..count-1), usable or not."""
        return int(self.info["count"])

    @property
    def class_names(self) -> list[str]:
        return [str(n) for n in self.info.get("class_names") or []]

    def desc(self, i: int) -> str:
        """Image i's description (its path in the data folder, or the source's name for it)."""
        return bytes(self.paths[int(self.offsets[i]):int(self.offsets[i + 1])]).decode("utf-8")

    @cached_property
    def usable(self) -> np.ndarray:
        """(N,) bool: images the top-k pass could decode (all, before it has run)."""
        mask = np.ones(self.count, bool)
        mask[np.asarray(self.unusable, np.int64)] = False
        return mask

    @property
    def usable_count(self) -> int:
        return self.count - len(self.unusable)

    def class_counts(self) -> np.ndarray:
        """(classes + 1,) usable images per class; the last entry counts unlabelled ones."""
        k = len(self.class_names)
        lab = np.asarray(self.labels)[self.usable]
        return np.bincount(np.where(lab < 0, k, lab), minlength=k + 1)


def read_info(store: RunStore) -> dict:
    """images.json alone (cheap: no arrays)."""
    path = store.stage_dir(STAGE) / IMAGES
    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("count"), int):
        raise ArtifactError(f"{path}: expected {{count, class_names, ...}}")
    return info


def skipped_path(store: RunStore) -> Path:
    return store.stage_dir(STAGE) / SKIPPED


def skipped_lists(store: RunStore) -> list[Path]:
    """The files that list what was not used: the listing's (here) and the top-k pass's."""
    return [skipped_path(store), store.stage_dir("topk") / "unusable.json"]


def read_skipped(store: RunStore) -> list:
    """The listing's problems (folders not scanned); see `Dataset.skipped` for all."""
    path = skipped_path(store)
    return read_json(path) if path.is_file() else []


def read(store: RunStore, unusable: list[dict] | None = None) -> Dataset:
    """The dataset stage's artifacts; `unusable` (topk's `unusable.json` rows `{id, path,
    reason}`) adds the files found unusable at first decode."""
    d = store.stage_dir(STAGE)
    info = read_info(store)
    n = int(info["count"])
    offsets = load_array(d / OFFSETS, 1, "int", (n + 1,))
    if not (d / PATHS).is_file():
        raise ArtifactError(f"{d / PATHS}: missing")
    paths = np.memmap(d / PATHS, np.uint8, "r") if (d / PATHS).stat().st_size else np.zeros(0, np.uint8)
    if int(offsets[-1]) != len(paths) or int(offsets[0]) != 0:
        raise ArtifactError(f"{d / OFFSETS}: offsets end at {int(offsets[-1])}, {PATHS} holds {len(paths)} bytes")
    bad = unusable or []
    return Dataset(info=info, skipped=read_skipped(store) + [{"path": r["path"], "reason": r["reason"]} for r in bad],
                   labels=load_array(d / LABELS, 1, "int", (n,)), offsets=offsets, paths=paths,
                   unusable=np.array([int(r["id"]) for r in bad], np.int64), sha=file_sha(store.manifest(STAGE) or {}))


def write(out: Path, info: dict, skipped: list, labels, descriptions) -> None:
    """images.json, labels.npy, the path table and skipped.json into the stage's folder
    `out`; `descriptions` is any iterable of str (written as it is read, in blocks)."""
    out = Path(out)
    labels = np.asarray(labels)
    if len(labels) != info["count"]:
        raise ValueError(f"{len(labels)} labels for {info['count']} images")
    save_array(out / LABELS, labels, np.int32)
    offsets = np.zeros(len(labels) + 1, np.int64)
    at, i = 0, 0
    with open(out / PATHS, "wb") as f:
        block: list[bytes] = []
        for text in descriptions:
            raw = str(text).encode("utf-8")
            block.append(raw)
            at += len(raw)
            i += 1
            offsets[i] = at
            if len(block) >= 65536:
                f.write(b"".join(block))
                block = []
        f.write(b"".join(block))
    if i != len(labels):
        raise ValueError(f"{i} descriptions for {len(labels)} images")
    save_array(out / OFFSETS, offsets)
    write_json(out / IMAGES, {k: v for k, v in info.items() if k != "items"})
    write_json(out / SKIPPED, skipped)
