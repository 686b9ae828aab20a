"""Archives that last: a run's site, artifacts and provenance in one file, and its check."""
from atlas.archive.pack import MANIFEST_NAME, README_NAME, ArchiveError, PackResult, pack, pack_in_place
from atlas.archive.verify import Report, verify

__all__ = ["MANIFEST_NAME", "README_NAME", "ArchiveError", "PackResult", "pack", "pack_in_place",
           "Report", "verify"]
