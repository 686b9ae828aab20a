"""The stages of a run, in order. Each entry takes the context and returns a Stage or a
list of Stages; entries are called in order, after the ones before them have run."""
from __future__ import annotations

from atlas.stages import concepts, dataset, dissect, evidence, featvis, figures, maps, thumbs, topk


def factories(ctx) -> list:
    """Every stage declares its inputs (`Stage.deps`); none adds or discovers another."""
    return [dataset.make, topk.make, featvis.make, concepts.make, dissect.make, evidence.make, maps.make,
            thumbs.make, figures.make]
