"""Moved to `atlas.artifacts.pictures` (the artifact contract); kept importable here."""
from atlas.artifacts.pictures import *  # noqa: F401,F403
from atlas.artifacts.pictures import __all__  # noqa: F401
