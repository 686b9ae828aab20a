"""torch.distributed glue: which rank this process is, from torchrun's environment."""
from __future__ import annotations

import os


def rank_and_size() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
