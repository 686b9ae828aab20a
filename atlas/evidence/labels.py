"""Unit labels that need no concept masks.

- Output units (the model's last layer) are named by the model's classes. Their score is
  the share of the unit's top images that belong to that class (None when the data set
  does not have the class).
- Other units get the dominant class among their top images, scored by its share.
"""
from __future__ import annotations

import numpy as np

from atlas.evidence.stats import top_classes


def class_labels(units: int, model_classes: list[str] | None, data_classes: list[str],
                 labels: np.ndarray, top_ids: np.ndarray) -> list[dict] | None:
    """Labels of an output layer, or None when no class list has one name per unit."""
    names = model_classes if model_classes and len(model_classes) == units else \
        (data_classes if len(data_classes) == units else None)
    if names is None:
        return None
    index = {n: i for i, n in enumerate(data_classes)}
    out = []
    for u in range(units):
        c = index.get(names[u])
        score = None if c is None else round(float((labels[top_ids[u]] == c).mean()), 4)
        out.append({"unit": u, "label": names[u], "score": score, "method": "class"})
    return out


def top_class_labels(top_ids: np.ndarray, labels: np.ndarray, class_names: list[str]) -> list[dict]:
    """The dominant class among each unit's top images, with its share."""
    out = []
    for u in range(top_ids.shape[0]):
        tc = top_classes(top_ids[u], labels, class_names)
        label, score = (tc[0][0], tc[0][1]) if tc else (None, None)
        out.append({"unit": u, "label": label, "score": score, "method": "top-class"})
    return out
