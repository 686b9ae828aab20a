"""Image sources: the embedded world, image folders, and torchvision data sets.

A source gives every usable image a stable integer id (0..N-1), a label, a class name
list and a short description (its path). Folders are scanned once; files that cannot be
decoded are skipped and reported, never silently dropped.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from atlas.data import world

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_PIXELS = 64_000_000  # larger images are refused as possible decompression bombs


class DataError(ValueError):
    """The data cannot be used; the message names the file or value."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any mode (CMYK, L, P, RGBA, I;16) to 8-bit RGB."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        img = Image.fromarray(np.clip(arr / (65535.0 if hi > 255 else 255.0) * 255, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def open_image(path: Path) -> Image.Image:
    """Decode an image file fully, as RGB; raises DataError with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(f"{img.width}x{img.height} pixels is over the {MAX_PIXELS} limit")
                img.load()
                return to_rgb(img)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataError(f"decompression bomb: {exc}") from exc
    except Image.DecompressionBombWarning as exc:
        raise DataError(f"decompression bomb: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a reason
        raise DataError(f"{type(exc).__name__}: {exc}") from exc


@dataclass
class Source:
    """Base of all sources; subclasses fill the lists and implement `load`."""
    name: str
    class_names: list[str]
    labels: list[int]
    descriptions: list[str]
    skipped: list[dict] = field(default_factory=list)

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

    def subset(self, keep: list[int]) -> "Source":
        raise NotImplementedError(f"{type(self).__name__} has no unusable images to drop")

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
        labels = [world.sample_scene(np.random.default_rng([seed, i])).shape for i in range(count)]
        super().__init__(name=f"world(seed={seed},count={count},size={size})",
                         class_names=list(world.SHAPES), labels=labels,
                         descriptions=[f"world:{seed}:{i}" for i in range(count)])

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(world.render(self.seed, index, self.size)[0])

    def masks(self, index: int) -> dict[str, np.ndarray]:
        return world.render(self.seed, index, self.size)[1]


def _walk_images(root: Path) -> list[Path]:
    """Image files under root, sorted, following no symlinked directories (no loops)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for f in sorted(filenames):
            if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(dirpath) / f)
    return found


def _check(path: Path) -> str | None:
    try:
        if path.is_symlink() and not path.exists():
            return "broken symbolic link"
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        open_image(path)
        return None
    except DataError as exc:
        return str(exc)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


class FolderSource(Source):
    """An image folder: class subfolders (`root/<class>/*.jpg`) or flat (`root/*.jpg`).

    Construction only lists files (cheap, so a resumed run can fingerprint the folder);
    `check()` decodes every file and reports the ones that cannot be used.
    """

    def __init__(self, root: str | Path, limit: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"data folder not found: {root}")
        paths = _walk_images(root)
        if not paths:
            raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
        rels = [p.relative_to(root) for p in paths]
        classes = sorted({r.parts[0] for r in rels if len(r.parts) > 1})
        if limit is not None:
            keep = _spread(list(range(len(paths))), limit)
            paths, rels = [paths[i] for i in keep], [rels[i] for i in keep]
        class_index = {c: i for i, c in enumerate(classes)}
        self.root, self.paths = root, paths
        super().__init__(name=f"folder({root.resolve()})", class_names=classes,
                         labels=[class_index[r.parts[0]] if len(r.parts) > 1 else -1 for r in rels],
                         descriptions=[r.as_posix() for r in rels])

    def fingerprint(self) -> str:
        h = hashlib.sha256(super().fingerprint().encode())
        for p in self.paths:
            try:
                st = p.stat()
                h.update(f"{st.st_size}:{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(b"missing\n")
        return h.hexdigest()

    def check(self, index: int) -> str | None:
        return _check(self.paths[index])

    def load(self, index: int) -> Image.Image:
        return open_image(self.paths[index])

    def subset(self, keep: list[int]) -> "FolderSource":
        out = object.__new__(FolderSource)
        out.root, out.paths = self.root, [self.paths[i] for i in keep]
        Source.__init__(out, name=self.name, class_names=self.class_names,
                        labels=[self.labels[i] for i in keep],
                        descriptions=[self.descriptions[i] for i in keep], skipped=list(self.skipped))
        return out


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
