"""Subcommands beyond the core run: each module adds its parser and handler here."""
from __future__ import annotations

import argparse

HANDLERS: dict = {}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the extra subcommands (train-generator, serve, figure, archive, verify...)."""
    for module in _modules():
        module.add_parser(sub)
        HANDLERS.update(module.HANDLERS)


def _modules() -> list:
    from atlas import archive_cli, generator_cli
    from atlas.render import serve
    return [generator_cli, serve, archive_cli]
