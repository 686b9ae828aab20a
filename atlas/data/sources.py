"""Image sources: the embedded world, image folders, and torchvision data sets.

A source gives every usable image a stable integer id (0..N-1), a label, a class name
list and a short description (its path). Folders are scanned once; files that cannot be
decoded are skipped and reported, never silently dropped.
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from atlas.data import world
from atlas.data.names import NameTable, ShownNames

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_PIXELS = 64_000_000  # larger images are refused as possible decompression bombs
MAX_ASPECT = 50          # a longer side over 50x the shorter would explode when resized


class DataError(ValueError):
    """The data cannot be used; the message names the file or value."""


def display_text(text: str) -> str:
    """`text` (a file or folder name) safe to store in JSON and show: bytes that were not
    UTF-8 (surrogate escapes from os.listdir) become `\\xNN`, so distinct names stay distinct."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def terminal_text(text: str) -> str:
    """`text` with control characters escaped, so a file name cannot drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any mode (CMYK, L, P, RGBA, I;16, I, F) to 8-bit RGB.
    Transparent pixels are composited onto white."""
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16"):
        img = _gray_to_l(np.asarray(img, dtype=np.float64), 65535.0)
    elif img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0.0
        img = _gray_to_l(arr, 255.0 if top <= 255 else 65535.0 if top <= 65535 else top)
    elif img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        img = _gray_to_l(arr, 1.0 if arr.size and arr.max() <= 1.0 else 255.0)
    if img.mode in ("RGBA", "LA", "P", "PA", "RGBa", "La") or "transparency" in img.info:
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def _gray_to_l(arr: np.ndarray, full_scale: float) -> Image.Image:
    """A grayscale array whose white is `full_scale` as an 8-bit L image."""
    return Image.fromarray(np.clip(np.round(arr / full_scale * 255.0), 0, 255).astype(np.uint8))


def _reason(exc: BaseException, path: Path) -> str:
    """A short reason for a decoder failure, without the (possibly long) path in it."""
    if isinstance(exc, Image.DecompressionBombError):
        return f"decompression bomb: {exc}"
    if isinstance(exc, UnidentifiedImageError):
        return "not a decodable image (unknown format or corrupt header)"
    msg = str(exc).replace(str(path), path.name)
    if isinstance(exc, OSError) and "truncated" in msg.lower():
        return f"truncated image data ({msg})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"unreadable: {exc.strerror}"
    return f"cannot decode ({type(exc).__name__}: {msg})"


def open_image(path, name: str | None = None) -> Image.Image:
    """Decode an image file (a path, or a binary file object such as a tar member's bytes,
    then `name` says what it is) fully, as RGB; raises DataError with the reason.

    Images over MAX_PIXELS are refused from their header, before any pixel is decoded
    (PIL itself refuses twice its own limit at open time)."""
    path = Path(path) if isinstance(path, (str, os.PathLike)) else path
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DataError(f"decompression bomb: {img.width}x{img.height} pixels is over the "
                                f"{MAX_PIXELS} pixel limit")
            if max(img.size) > MAX_ASPECT * max(1, min(img.size)):
                raise DataError(f"extreme aspect ratio {img.width}x{img.height} (over {MAX_ASPECT}:1)")
            img.load()
            return to_rgb(img)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a reason
        raise DataError(_reason(exc, path if isinstance(path, Path) else Path(name or "image"))) from exc


def read_image(path: Path) -> Image.Image:
    """Like open_image, after checks that name what is wrong with the directory entry
    (broken or looping link, not a regular file, empty) and never block on a FIFO."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError("symbolic link loop") from exc
        if os.path.islink(path):
            raise DataError(f"broken symbolic link (points to {display_text(os.readlink(path))})") from exc
        if exc.errno == errno.ENOENT:
            raise DataError("file no longer exists (removed after the folder was listed)") from exc
        raise DataError(f"unreadable: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) \
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file"
        raise DataError(f"not a regular file ({kind})")
    if st.st_size == 0:
        raise DataError("empty file (0 bytes)")
    return open_image(path)


@dataclass
class Source:
    """Base of all sources; subclasses fill the lists and implement `load`.

    Per image a source keeps its label in an int32 array and its description in a compact
    table (data/names.py), never a Python object per image: a source of a million images
    costs a few tens of megabytes in every process that holds it."""
    name: str
    class_names: list[str]
    labels: np.ndarray            # (N,) int32 class index, -1: unlabelled
    descriptions: Sequence[str]   # a NameTable (or a view of one)
    skipped: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if not isinstance(self.descriptions, (NameTable, ShownNames)):
            self.descriptions = NameTable(self.descriptions)
        if len(self.descriptions) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} labels, {len(self.descriptions)} descriptions")

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Image.Image:
        raise NotImplementedError

    def check(self, index: int) -> str | None:
        """Why image `index` cannot be used, or None when it can."""
        try:
            self.load(index)
            return None
        except DataError as exc:
            return str(exc)

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode())
        for d, lab in zip(self.descriptions, self.labels):
            h.update(f"{d}\t{lab}\n".encode())
        return h.hexdigest()


class WorldSource(Source):
    """`count` images of the procedural world drawn from `seed`."""

    def __init__(self, seed: int = 2, count: int = 3000, size: int = 32):
        self.seed, self.size = seed, size
        # labels are cheap without rendering pixels: replay the scene sampling only
        labels = np.fromiter((world.sample_scene(np.random.default_rng([seed, i])).shape for i in range(count)),
                             np.int32, count)
        super().__init__(name=f"world(seed={seed},count={count},size={size})",
                         class_names=list(world.SHAPES), labels=labels,
                         descriptions=NameTable(f"world:{seed}:{i}" for i in range(count)))

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(world.render(self.seed, index, self.size)[0])

    def masks(self, index: int) -> dict[str, np.ndarray]:
        return world.render(self.seed, index, self.size)[1]


def _walk_images(root: Path) -> tuple[NameTable, list[dict]]:
    """Image files under root (their paths relative to it, in a compact table), sorted, and
    the folders that were not scanned, with why.

    Symbolic links to folders outside the data folder are followed; a link back into the
    data folder (a loop, or a second path to a folder already scanned) is reported and not
    followed, so no image is counted twice and no walk runs forever."""
    found = NameTable()
    problems: list[dict] = []
    real_root = root.resolve()
    seen = {_ident(root)}

    def rel(p: str | Path) -> str:
        return display_text(Path(p).relative_to(root).as_posix())

    def onerror(exc: OSError) -> None:
        where = rel(exc.filename) if exc.filename and str(exc.filename).startswith(str(root)) else "."
        problems.append({"path": where + "/", "reason": f"unreadable folder: {exc.strerror or exc}"})

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        keep = []
        for d in sorted(dirnames):
            p = Path(dirpath) / d
            if p.is_symlink():
                why = _link_problem(p, real_root, seen)
                if why:
                    problems.append({"path": rel(p) + "/", "reason": why})
                    continue
            seen.add(_ident(p))
            keep.append(d)
        dirnames[:] = keep
        folder = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if folder == "." else folder + "/"
        for f in sorted(filenames):
            if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES:
                found.append(prefix + f)
    return found, problems


def _ident(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_dev, st.st_ino


def _link_problem(link: Path, real_root: Path, seen: set) -> str | None:
    """Why the symlinked folder `link` must not be followed, or None."""
    try:
        target = link.resolve(strict=True)
        ident = _ident(link)
    except (OSError, RuntimeError) as exc:
        return f"symbolic link cannot be followed ({getattr(exc, 'strerror', None) or exc})"
    if link.parent.resolve() == target or target in link.parent.resolve().parents:
        return "symbolic link loop (points to a folder that contains it); not followed"
    if target == real_root or real_root in target.parents or ident in seen:
        return "symbolic link to a folder scanned elsewhere in the data; not followed twice"
    return None


class FolderSource(Source):
    """An image folder: class subfolders (`root/<class>/*.jpg`) or flat (`root/*.jpg`).

    Construction only lists files (cheap, so a resumed run can fingerprint the folder) and
    records folders it could not scan in `skipped`; `check()` decodes one file and says why
    it cannot be used. Names are kept as shown by `display_text` (valid UTF-8).
    """

    def __init__(self, root: str | Path, limit: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"data folder not found: {root}")
        rels, problems = _walk_images(root)
        if not len(rels):
            why = f"; {problems[0]['path']}: {problems[0]['reason']}" if problems else ""
            raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}{why}")
        if limit is not None and limit < len(rels):
            rels = rels.select(_spread(list(range(len(rels))), limit))
        # the class of a file is its first folder (files at the top have none: -1)
        classes = sorted({r.split("/", 1)[0] for r in rels if "/" in r})
        class_index = {c: i for i, c in enumerate(classes)}
        labels = np.fromiter((class_index[r.split("/", 1)[0]] if "/" in r else -1 for r in rels), np.int32, len(rels))
        self.root, self.rels = root, rels
        super().__init__(name=f"folder({display_text(str(root.resolve()))})",
                         class_names=[display_text(c) for c in classes], labels=labels,
                         descriptions=ShownNames(rels), skipped=problems)

    def path(self, index: int) -> Path:
        """The file of image `index`."""
        return self.root / self.rels[index]

    def fingerprint(self) -> str:
        """The listing's fingerprint plus each file's size and modification time (one `stat`
        a file, hashed in blocks: 1.28M files in a few seconds, benchmarks/listing_scale.py)."""
        h = hashlib.sha256(super().fingerprint().encode())
        root, lines = os.path.join(self.root, ""), []
        for rel in self.rels:
            try:
                st = os.stat(root + rel)
                lines.append(f"{st.st_size}:{st.st_mtime_ns}\n")
            except OSError:
                lines.append("missing\n")
            if len(lines) == 65536:
                h.update("".join(lines).encode())
                lines.clear()
        h.update("".join(lines).encode())
        return h.hexdigest()

    def load(self, index: int) -> Image.Image:
        return read_image(self.path(index))


def _spread(items: list, limit: int) -> list:
    """`limit` items evenly spread over the list (so every class is represented)."""
    if limit >= len(items):
        return items
    idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in idx]


TORCHVISION_SETS = ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "SVHN", "STL10")


class TorchvisionSource(Source):
    """A torchvision data set by class name (downloads when online and `download`)."""

    def __init__(self, dataset: str, root: str | Path, split: str = "test",
                 download: bool = False, limit: int | None = None):
        import torchvision.datasets as tvd
        if dataset not in TORCHVISION_SETS:
            raise DataError(f"unknown torchvision data set {dataset!r}; choose one of: {', '.join(TORCHVISION_SETS)}")
        cls = getattr(tvd, dataset)
        try:
            if dataset in ("SVHN", "STL10"):
                ds = cls(str(root), split=split, download=download)
            else:
                ds = cls(str(root), train=(split == "train"), download=download)
        except RuntimeError as exc:
            raise DataError(f"torchvision {dataset} not found under {root} ({exc}); "
                            f"set data_download = true when online") from exc
        self.ds = ds
        n = len(ds)
        self.index = list(range(n)) if limit is None else _spread(list(range(n)), limit)
        targets = getattr(ds, "targets", None)
        if targets is None:
            targets = getattr(ds, "labels", [ds[i][1] for i in range(n)])
        classes = list(getattr(ds, "classes", [])) or [str(c) for c in sorted(set(int(t) for t in targets))]
        super().__init__(name=f"torchvision:{dataset}:{split}", class_names=classes,
                         labels=[int(targets[i]) for i in self.index],
                         descriptions=[f"{dataset}/{split}/{i}" for i in self.index])

    def load(self, index: int) -> Image.Image:
        return to_rgb(self.ds[self.index[index]][0])
