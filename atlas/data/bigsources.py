"""Sources that hold ImageNet-sized data: the ImageNet folder layout, torchvision's
`ImageNet`, and WebDataset tar shards.

None of them decodes an image to list it: a folder is walked, a shard's tar headers are
read (the member data is skipped). A file that cannot be decoded is found when the
dataset stage first decodes it and is reported there with its reason, like a bad file in
an image folder.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from array import array
from pathlib import Path

import numpy as np

from atlas.data.names import NameTable, ShownNames
from atlas.data.sources import IMAGE_SUFFIXES, DataError, FolderSource, Source, display_text, open_image

SYNSET = re.compile(r"^n\d{8}$")
MAPPING_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "words.txt")
SPLIT_NAMES = {"train", "val", "test"}


def synset_names(root: Path) -> dict[str, str] | None:
    """synset id -> its first English name, from the mapping files people keep next to an
    ImageNet folder (`LOC_synset_mapping.txt`, `synset_words.txt`, `words.txt`: lines
    `n01440764 tench, Tinca tinca`) or torchvision's `meta.bin`, looked for in `root` and
    the two folders above it; None when there is none."""
    for folder in (root, root.parent, root.parent.parent):
        for name in MAPPING_FILES:
            path = folder / name
            if path.is_file():
                out = {}
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    wnid, _, words = line.strip().partition(" ")
                    if SYNSET.match(wnid):
                        out[wnid] = words.split(",")[0].strip() or wnid
                if out:
                    return out
        meta = folder / "meta.bin"
        if meta.is_file():
            import torch
            try:
                wnid_to_classes = torch.load(meta, weights_only=False)[0]
            except Exception as exc:  # noqa: BLE001 - a damaged meta file is named, not fatal
                raise DataError(f"{meta}: unreadable torchvision ImageNet meta file ({exc})") from exc
            return {w: c[0] if isinstance(c, (tuple, list)) else str(c) for w, c in wnid_to_classes.items()}
    return None


def named_classes(synsets: list[str], names: dict[str, str]) -> list[str]:
    """Display names for synset folders: the English name, with the synset added where two
    synsets share a name (ImageNet has two `crane`s and two `maillot`s)."""
    first = [names.get(s, s) for s in synsets]
    seen: dict[str, int] = {}
    for n in first:
        seen[n] = seen.get(n, 0) + 1
    return [f"{n} ({s})" if seen[n] > 1 else n for n, s in zip(first, synsets)]


def split_folder(root: Path, split: str) -> Path:
    """`root/<split>` when `root` is an ImageNet-style top folder (its subfolders are split
    names: train, val, test) and has that split; otherwise `root` itself."""
    try:
        subs = {p.name for p in root.iterdir() if p.is_dir()}
    except OSError:
        return root
    if subs and subs <= SPLIT_NAMES and split in subs:
        return root / split
    return root


class ImageNetFolder(FolderSource):
    """An image folder in the ImageNet layout: `<split>/<synset>/*.JPEG` (val reorganised
    the same way), class names from a synset mapping file when one is found. Any class
    folder layout works; the names are only mapped when every class folder is a synset."""

    def __init__(self, root: str | Path, split: str = "train", limit: int | None = None):
        root = split_folder(Path(root), split)
        super().__init__(root, limit=limit)
        if self.class_names and all(SYNSET.match(c) for c in self.class_names):
            names = synset_names(root)
            if names:
                self.synsets = list(self.class_names)
                self.class_names = named_classes(self.synsets, names)


class TorchvisionImageNet(Source):
    """torchvision's `ImageNet(data_root, split)` when its meta file (`meta.bin`, or the
    devkit archive it is made from) and the split folder are present; nothing is downloaded.
    Files are read with the same checks as an image folder, so a bad file is skipped with
    its reason instead of stopping the run."""

    def __init__(self, root: str | Path, split: str = "val", limit: int | None = None):
        from torchvision.datasets import ImageNet
        if split not in ("train", "val"):
            raise DataError(f"torchvision ImageNet has splits train and val, not {split!r} (set data_split)")
        try:
            ds = ImageNet(str(root), split=split)
        except (RuntimeError, FileNotFoundError) as exc:
            raise DataError(f"torchvision ImageNet not usable under {root}: {exc} (it needs meta.bin or "
                            f"ILSVRC2012_devkit_t12.tar.gz, and the {split}/ folder or its archive)") from exc
        index = list(range(len(ds.samples)))
        if limit is not None:
            from atlas.data.sources import _spread
            index = _spread(index, limit)
        self.root = Path(ds.split_folder)
        self.rels = NameTable(Path(ds.samples[i][0]).relative_to(self.root).as_posix() for i in index)
        self.synsets = list(ds.wnids)
        names = {w: c[0] for w, c in zip(ds.wnids, ds.classes)}
        super().__init__(name=f"torchvision:ImageNet:{split}", class_names=named_classes(self.synsets, names),
                         labels=np.fromiter((int(ds.samples[i][1]) for i in index), np.int32, len(index)),
                         descriptions=ShownNames(self.rels))

    def load(self, index: int):
        from atlas.data.sources import read_image
        return read_image(self.root / self.rels[index])


LABEL_EXTS = ("cls", "cls.txt", "label", "label.txt", "class", "target")


def shard_paths(spec: str) -> list[Path]:
    """The tar shards named by `spec`: a folder (its `*.tar`, sorted), one file, or a brace
    pattern such as `shards/train-{000000..000146}.tar` (expanded as WebDataset does)."""
    try:
        from braceexpand import braceexpand  # installed with webdataset
    except ImportError as exc:
        raise DataError("WebDataset shards need the webdataset package: pip install 'atlas-neurons[webdataset]'") from exc
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix == ".tar" and p.is_file())
        if not found:
            raise DataError(f"no .tar shards in {path}")
        return found
    paths = [Path(p) for p in braceexpand(spec)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"WebDataset shard not found: {missing[0]}" + (f" (and {len(missing) - 1} more)"
                                                                         if len(missing) > 1 else ""))
    return paths


def is_shard_folder(path: Path) -> bool:
    """A folder of WebDataset shards: `.tar` files and no subfolder or image file beside them."""
    if not path.is_dir():
        return False
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    tars = [e for e in entries if e.name.endswith(".tar") and e.is_file()]
    other = [e for e in entries if e.is_dir() or Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    return bool(tars) and not other


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset's convention: `dir/key.ext.ext2` -> (`dir/key`, `ext.ext2`)."""
    folder, _, base = name.rpartition("/")
    key, _, ext = base.partition(".")
    return (f"{folder}/{key}" if folder else key), ext.lower()


class WebDatasetSource(Source):
    """Samples of WebDataset tar shards: members grouped by key (`key.jpg`, `key.cls`, ...),
    one image per sample; the label from a `cls`/`label` member (an integer) when present,
    class names from `classes.txt` next to the shards (one per line) when present.

    Listing reads only tar headers and the small label members, never image data; each
    sample keeps (shard, offset, size), so `load` reads one member directly (random access,
    so DataLoader workers and the evidence passes can fetch any image by id)."""

    def __init__(self, spec: str, limit: int | None = None):
        self.shards = shard_paths(spec)
        # compact from the start (arrays and a name table, no Python object per sample)
        shard_of, offsets, sizes, labels, descs = array("i"), array("q"), array("q"), array("i"), NameTable()
        skipped: list[dict] = []
        for s, path in enumerate(self.shards):
            try:
                samples = self._index(path)
            except (tarfile.TarError, OSError) as exc:
                skipped.append({"path": path.name, "reason": f"unreadable tar shard ({exc})"})
                continue
            for key, (member, label, problem) in samples.items():
                if member is None:
                    skipped.append({"path": f"{path.name}:{key}", "reason": problem or "no image member"})
                    continue
                shard_of.append(s)
                offsets.append(member[0])
                sizes.append(member[1])
                descs.append(f"{display_text(path.name)}:{display_text(key)}.{member[2]}")
                labels.append(label)
        if not len(descs):
            why = f"; {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
            raise DataError(f"no image samples in the WebDataset shards {spec}{why}")
        keep = np.arange(len(descs))
        if limit is not None and limit < len(descs):
            keep = np.linspace(0, len(descs) - 1, limit).round().astype(np.int64)  # sources._spread
            descs = descs.select(keep)
        self.shard_of = np.frombuffer(shard_of, np.int32)[keep]
        self.offsets = np.frombuffer(offsets, np.int64)[keep]
        self.sizes = np.frombuffer(sizes, np.int64)[keep]
        labels = np.frombuffer(labels, np.int32)[keep]
        top = int(labels.max(initial=-1))
        names_file = self.shards[0].parent / "classes.txt"
        class_names = [str(c) for c in range(top + 1)]
        if names_file.is_file():
            given = [ln.strip() for ln in names_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
            if len(given) > top:
                class_names = given
        super().__init__(name=f"webdataset({display_text(spec)})", class_names=class_names,
                         labels=labels, descriptions=descs, skipped=skipped)

    @staticmethod
    def _index(path: Path) -> dict[str, tuple]:
        """key -> ((offset, size, ext) of its image member or None, label, problem), in tar order."""
        out: dict[str, list] = {}
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, ext = _split_key(m.name)
                entry = out.setdefault(key, [None, -1, None])
                if "." + ext.split(".")[-1] in IMAGE_SUFFIXES and entry[0] is None:
                    entry[0] = (m.offset_data, m.size, ext)
                elif ext in LABEL_EXTS:
                    raw = tar.extractfile(m).read(64).decode("utf-8", "replace").strip()
                    try:
                        entry[1] = int(raw)
                    except ValueError:
                        entry[2] = f"label {raw!r} in {m.name} is not an integer"
                        entry[0] = None
        return {k: tuple(v) if v[2] is None else (None, v[1], v[2]) for k, v in out.items()}

    def load(self, index: int):
        path = self.shards[int(self.shard_of[index])]
        try:
            with open(path, "rb") as f:
                f.seek(int(self.offsets[index]))
                data = f.read(int(self.sizes[index]))
        except OSError as exc:
            raise DataError(f"unreadable shard {path.name}: {exc.strerror or exc}") from exc
        if len(data) != int(self.sizes[index]):
            raise DataError(f"shard {path.name} is shorter than its header says (truncated)")
        if not data:
            raise DataError("empty file (0 bytes)")
        return open_image(io.BytesIO(data), name=self.descriptions[index])

    def fingerprint(self) -> str:
        h = hashlib.sha256(super().fingerprint().encode())
        for p in self.shards:
            st = os.stat(p)
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

