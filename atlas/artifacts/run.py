"""`Run`: a run folder opened for reading, one typed reader per artifact kind.

Opening checks the run's format version (an older or newer layout is a RunFormatError,
exit code 2) and that the required stages (`dataset`, `topk`) finished. Everything else is
read on first use and cached; a stage that has not finished reads as None."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from atlas.artifacts import concepts, dataset, evidence, featvis, figures, maps, thumbs, topk
from atlas.artifacts.store import RunStore

REQUIRED = ("dataset", "topk")


class RunNotReadyError(FileNotFoundError):
    """The folder has no finished dataset/topk stage (not a run folder, or not run yet)."""


class Run:
    def __init__(self, root: str | Path, require: tuple[str, ...] = REQUIRED):
        self.store = RunStore(root)
        self.root = self.store.root
        self.store.check_format()
        missing = [s for s in require if self.store.manifest(s) is None]
        if missing:
            raise RunNotReadyError(f"{self.root} has no finished {' and '.join(missing)} stage "
                                   "(is it a run folder? run `atlas run` first)")

    @cached_property
    def config(self) -> dict:
        return self.store.read_config()

    @cached_property
    def dataset(self) -> dataset.Dataset:
        """The listed images, with the ones the top-k pass found unusable."""
        return dataset.read(self.store, self.topk.unusable if self.store.manifest("topk") else None)

    @cached_property
    def count(self) -> int:
        """Number of images in the run's data set (images.json alone)."""
        return int(dataset.read_info(self.store)["count"])

    @cached_property
    def topk(self) -> topk.Topk:
        return topk.read(self.store, self.count)

    @cached_property
    def thumbs(self) -> thumbs.Thumbs | None:
        """Thumbnails of the paged images (None before the thumbs stage has run)."""
        return thumbs.read(self.store)

    def featvis(self, layer: str) -> featvis.Featvis | None:
        return featvis.read(self.store, layer, self._units(layer))

    def evidence(self, layer: str) -> evidence.Evidence | None:
        return evidence.read(self.store, layer, self._units(layer), self.topk.layer(layer).ids.shape)

    def figures(self, layer: str) -> figures.Figures:
        return figures.read(self.store, layer, self._units(layer))

    @cached_property
    def maps(self) -> maps.Maps | None:
        return maps.read(self.store, self.count, {e.name: e.units for e in self.topk.layers})

    def concepts(self) -> concepts.Concepts:
        return concepts.read_concepts(self.store)

    def dissection(self) -> concepts.Dissection:
        return concepts.read_dissect(self.store)

    def _units(self, layer: str) -> int:
        entry = self.topk.entry(layer)
        if entry is None:
            raise KeyError(f"{self.root}: no layer {layer!r} in the top-k stage")
        return entry.units
