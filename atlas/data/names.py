"""A compact list of strings for a source's per-image names (paths, descriptions).

A million Python `str` (or `Path`) objects take 80-300 bytes each; a source of ImageNet
train would hold hundreds of megabytes of them in every process. `NameTable` keeps the
strings as one byte buffer with an offset per string (8 bytes), so memory per image is the
name's own bytes plus 8, and a name becomes a `str` only when asked for. File names that
are not valid UTF-8 round-trip (surrogate escapes, as `os.listdir` gives them)."""
from __future__ import annotations

from array import array
from typing import Iterable, Iterator, Sequence


class NameTable(Sequence[str]):
    """An append-only sequence of str stored as UTF-8 bytes (surrogateescape) and offsets."""

    def __init__(self, names: Iterable[str] = ()):
        self._buf = bytearray()
        self._ends = array("q")
        for name in names:
            self.append(name)

    def append(self, name: str) -> None:
        self._buf += name.encode("utf-8", "surrogateescape")
        self._ends.append(len(self._buf))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"name {i} of {len(self)}")
        start = self._ends[i - 1] if i else 0
        return self._buf[start:self._ends[i]].decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        start = 0
        for end in self._ends:
            yield self._buf[start:end].decode("utf-8", "surrogateescape")
            start = end

    def select(self, keep: Sequence[int]) -> "NameTable":
        """A new table of the names at `keep`, in that order."""
        return NameTable(self[int(i)] for i in keep)

    @property
    def nbytes(self) -> int:
        """Memory held by the table (buffer and offsets)."""
        return len(self._buf) + self._ends.itemsize * len(self._ends)


class ShownNames(Sequence[str]):
    """The names of a table as shown and stored in JSON: bytes that are not UTF-8 as `\\xNN`
    (sources.display_text), computed on access, so a folder keeps one table of raw names."""

    def __init__(self, table: NameTable):
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return _shown(self.table[i])

    def __iter__(self) -> Iterator[str]:
        return (_shown(n) for n in self.table)


def _shown(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
