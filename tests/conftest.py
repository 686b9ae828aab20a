import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # helper modules (synthetic_run, site_htmlcheck) import by plain name
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def cifar_dir() -> Path:
    if not (CIFAR / "test").is_dir():
        pytest.skip(f"CIFAR-10 image folder not found at {CIFAR}")
    return CIFAR
