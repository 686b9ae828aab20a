import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # helper modules (synthetic, site_htmlcheck) import by plain name
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def cifar_dir() -> Path:
    if not (CIFAR / "test").is_dir():
        pytest.skip(f"CIFAR-10 image folder not found at {CIFAR}")
    return CIFAR


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory) -> Path:
    """The run folder of `atlas demo --quick`, built once per test session (in a subprocess,
    as a user runs it) and shared by the archive, browser and figure tests. Tests read it;
    one that needs to change a run copies it first."""
    import subprocess
    out = tmp_path_factory.mktemp("quick-demo") / "run"
    res = subprocess.run([sys.executable, "-m", "atlas", "demo", "--quick", "--out", str(out), "--device", "cpu"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1].endswith("index.html")
    return out


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole session (Playwright's sync API allows one running
    instance per thread, so every browser test shares this one)."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is absent (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()
