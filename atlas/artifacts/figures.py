"""`stages/figures/<layer>/` (one stage per layer): `<unit>.pdf` and `<unit>.png`, the
one-row figure of each unit, and `meta.json` `{layer, alias, units, formats, dpi, columns,
size_inches}`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atlas.artifacts.checks import file_sha
from atlas.artifacts.store import RunStore, write_json

FORMATS = ("pdf", "png")


def stage(layer: str) -> str:
    return f"figures/{layer}"


def figure_path(out: Path, unit: int, fmt: str) -> Path:
    return Path(out) / f"{unit}.{fmt}"


@dataclass
class Figures:
    files: dict[int, dict[str, Path]] = field(default_factory=dict)  # unit -> {"pdf"|"png": path}
    sha: dict[str, str] = field(default_factory=dict)                # file name -> sha256


def read(store: RunStore, layer: str, units: int) -> Figures:
    """The layer's figure files (empty when the stage has not finished). Also reads the
    older single `figures` stage with one folder per layer."""
    found = Figures()
    for name, folder in ((stage(layer), ""), ("figures", layer)):
        man = store.manifest(name)
        if man is None:
            continue
        d = store.stage_dir(name) / folder
        if not d.is_dir():
            continue
        sha = file_sha(man)
        for f in sorted(d.iterdir()):
            if f.suffix[1:] in FORMATS and f.stem.isdigit() and int(f.stem) < units:
                found.files.setdefault(int(f.stem), {})[f.suffix[1:]] = f
                found.sha[f.name] = sha.get(f"{folder}/{f.name}" if folder else f.name, "")
        break
    return found


def write_meta(out: Path, meta: dict) -> None:
    write_json(Path(out) / "meta.json", meta)
