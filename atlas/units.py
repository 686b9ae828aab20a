"""Which units to analyse: `--units fc8:0-99 conv5:all fc6:3,7,10-12`.

A selection is a list of `LAYER:UNITS` items (LAYER a node name or alias); UNITS is `all`
or comma-separated indices and inclusive ranges `a-b`. A layer that is not named keeps the
shorthand `units_limit` (the first N units; all when unset).
"""
from __future__ import annotations


class UnitsError(ValueError):
    """A unit selection that cannot be read or does not fit the layer; the message says which."""


def parse_units(items: list[str]) -> dict[str, list[int] | None]:
    """{layer name or alias: sorted unit indices, or None for all}."""
    out: dict[str, list[int] | None] = {}
    for item in items:
        layer, sep, spec = item.rpartition(":")
        if not sep or not layer or not spec:
            raise UnitsError(f"{item!r}: expected LAYER:UNITS, e.g. fc8:0-99 or conv5:all")
        if layer in out:
            raise UnitsError(f"{item!r}: layer {layer!r} is named twice")
        if spec == "all":
            out[layer] = None
            continue
        picked: set[int] = set()
        for token in spec.split(","):
            a, dash, b = token.strip().partition("-")
            if not a.isdigit() or (dash and not b.isdigit()):
                raise UnitsError(f"{item!r}: {token!r} is not a unit index or a range a-b")
            lo, hi = int(a), int(b) if dash else int(a)
            if hi < lo:
                raise UnitsError(f"{item!r}: range {token!r} runs backwards")
            picked.update(range(lo, hi + 1))
        out[layer] = sorted(picked)
    return out


def units_for(layer_name: str, alias: str | None, count: int, items: list[str],
              limit: int | None) -> list[int]:
    """The unit indices of one layer (of `count` units) under the selection and the limit."""
    chosen = parse_units(items)
    key = layer_name if layer_name in chosen else alias if alias in chosen else None
    if key is None:
        return list(range(min(count, limit or count)))
    picked = chosen[key]
    if picked is None:
        return list(range(count))
    bad = [u for u in picked if u >= count]
    if bad:
        raise UnitsError(f"--units {key}: unit {bad[0]} is past the layer's {count} units (0..{count - 1})")
    return picked
