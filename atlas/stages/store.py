"""Moved to `atlas.artifacts.store` (the artifact contract owns the run folder); kept so
code written against the old path still imports."""
from atlas.artifacts.store import *  # noqa: F401,F403
from atlas.artifacts.store import _json_default  # noqa: F401
