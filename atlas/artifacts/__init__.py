"""The artifact contract: the one package that knows the run folder's layout.

`store` owns the folder (atomic stage folders with manifests, the lock, the format
version); one module per artifact kind of ARCHITECTURE.md (`dataset`, `topk`, `featvis`,
`evidence`, `concepts` + `dissect`, `maps`, `thumbs`, `figures`) owns that kind's file names, its
shape checks, its stage name, a typed reader (arrays memory-mapped) and the writer the
stage calls; `Run` opens a run folder for reading. Stages, the renderer, figures, the
archive and the tests go through here; nothing else opens a stage file (a test checks).
Never imports torch.
"""
from atlas.artifacts.checks import ArtifactError
from atlas.artifacts.run import Run, RunNotReadyError
from atlas.artifacts.store import (FORMAT_VERSION, RunFormatError, RunLockedError, RunStore, read_json,
                                   write_json)

__all__ = ["ArtifactError", "FORMAT_VERSION", "Run", "RunFormatError", "RunLockedError", "RunNotReadyError",
           "RunStore", "read_json", "write_json"]
