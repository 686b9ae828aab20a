"""`python -m atlas`: the command line (atlas.cli)."""
from typing import NoReturn

from atlas.cli import end_process, main


def entry(argv: list[str] | None = None) -> NoReturn:
    """Run the command line and end the process with its status (atlas.cli.end_process)."""
    end_process(main(argv))


if __name__ == "__main__":
    entry()
