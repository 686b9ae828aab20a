"""Shape and type checks shared by the artifact readers: a file that breaks the contract
is an `ArtifactError` naming the file, never a stack trace further down."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class ArtifactError(ValueError):
    """An artifact breaks the contract (ARCHITECTURE.md); the message names the file."""


def load_array(path: Path, ndim: int, dtype: str | None = None, first: tuple = (), mmap: bool = True) -> np.ndarray:
    """Load a .npy (memory-mapped unless `mmap` is False) and check its rank, dtype kind
    ('uint8' pixels with 3 channels last, 'int', 'float') and leading dimensions (None: any)."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read ({exc})") from exc
    if arr.ndim != ndim:
        raise ArtifactError(f"{path}: expected {ndim} dimensions, got shape {arr.shape}")
    if dtype == "uint8" and arr.dtype != np.uint8:
        raise ArtifactError(f"{path}: expected uint8 pixels, got {arr.dtype}")
    if dtype == "int" and arr.dtype.kind not in "iu":
        raise ArtifactError(f"{path}: expected integers, got {arr.dtype}")
    if dtype == "float" and arr.dtype.kind != "f":
        raise ArtifactError(f"{path}: expected floats, got {arr.dtype}")
    for i, want in enumerate(first):
        if want is not None and arr.shape[i] != want:
            raise ArtifactError(f"{path}: dimension {i} is {arr.shape[i]}, expected {want} (shape {arr.shape})")
    if dtype == "uint8" and arr.shape[-1] != 3:
        raise ArtifactError(f"{path}: expected RGB (last dimension 3), got shape {arr.shape}")
    return arr


def optional_array(path: Path, ndim: int, dtype: str | None = None, first: tuple = (),
                   mmap: bool = True) -> np.ndarray | None:
    """`load_array` when the file exists, else None."""
    return load_array(path, ndim, dtype, first, mmap) if path.is_file() else None


def by_unit(path: Path, rows: list, units: int) -> list[dict | None]:
    """Per-unit JSON records (`{"unit": i, ...}`) as a list indexed by unit, None for a
    unit without a record."""
    out: list[dict | None] = [None] * units
    if not isinstance(rows, list):
        raise ArtifactError(f"{path}: expected a list of per-unit records")
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("unit"), int) or not 0 <= row["unit"] < units:
            raise ArtifactError(f"{path}: bad record {row!r} (needs 'unit' in 0..{units - 1})")
        out[row["unit"]] = row
    return out


def file_sha(manifest: dict) -> dict[str, str]:
    """{file name relative to the stage folder: sha256} from a stage manifest."""
    return {rel: info.get("sha256", "") for rel, info in manifest.get("files", {}).items()}


def save_array(path: Path, arr: np.ndarray, dtype=None) -> None:
    """Write one .npy (into a stage's temporary folder; the store makes the folder atomic)."""
    np.save(path, np.ascontiguousarray(arr if dtype is None else np.asarray(arr).astype(dtype, copy=False)))


def open_array(path: Path, shape: tuple, dtype) -> np.ndarray:
    """A writable memory-mapped .npy for an output filled piece by piece."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
