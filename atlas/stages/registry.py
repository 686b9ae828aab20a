"""The stages of a run, in order. Each entry takes the context and returns a Stage or a
list of Stages; entries are called in order, after the ones before them have run."""
from __future__ import annotations

from atlas.stages import dataset, evidence, featvis, figures, maps, topk


def factories(ctx) -> list:
    return [dataset.make, topk.make, featvis.make, evidence.make, maps.make,
            figures.make]  # keep last: it shows what the stages before it made
