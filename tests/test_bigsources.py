"""ImageNet-sized sources: the ImageNet folder layout with synset names, WebDataset shards
(a bad member skipped and reported like a bad file in a folder), torchvision ImageNet."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.artifacts import Run
from atlas.config import Config
from atlas.context import make_source
from atlas.data.bigsources import ImageNetFolder, WebDatasetSource, named_classes
from atlas.data.sources import DataError

ROOT = Path(__file__).resolve().parents[1]
SYNSETS = {"n01440764": "tench", "n01443537": "goldfish", "n01484850": "great white shark"}
QUICK = ["--layers", "conv1", "fc8", "--set", "topk=2", "workers=1", "batch_size=4", "priors=[]", "maps=false"]


def picture(i: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (size, size + i % 7, 3), dtype=np.uint8))


def imagenet_tree(root: Path) -> None:
    """`root/{train,val}/<synset>/*.JPEG`, a mapping file, and one truncated JPEG in val."""
    for split in ("train", "val"):
        for s, wnid in enumerate(SYNSETS):
            d = root / split / wnid
            d.mkdir(parents=True)
            for j in range(3):
                picture(10 * s + j).save(d / f"{wnid}_{j}.JPEG", format="JPEG")
    bad = root / "val" / "n01443537" / "n01443537_1.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {n}, other name\n" for w, n in SYNSETS.items()))


def write_shards(folder: Path, bad_key: str | None = None) -> list[Path]:
    import webdataset as wds
    folder.mkdir(parents=True)
    paths = []
    for s in range(2):
        path = folder / f"shard-{s:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for j in range(5):
                key = f"s{s}_{j:03d}"
                buf = io.BytesIO()
                picture(5 * s + j).save(buf, format="JPEG")
                data = buf.getvalue()[:150] if key == bad_key else buf.getvalue()
                sink.write({"__key__": key, "jpg": data, "cls": str((s + j) % 3)})
        paths.append(path)
    (folder / "classes.txt").write_text("cat\ndog\nbird\n")
    return paths


def test_imagenet_layout_lists_without_decoding_and_names_synsets(tmp_path):
    imagenet_tree(tmp_path / "imagenet")
    src = ImageNetFolder(tmp_path / "imagenet", split="val")
    assert len(src) == 9 and src.class_names == ["tench", "goldfish", "great white shark"]
    assert src.descriptions[0] == "n01440764/n01440764_0.JPEG" and src.labels[:4].tolist() == [0, 0, 0, 1]
    with pytest.raises(DataError, match="truncated"):   # found when decoded, not when listed
        src.load(src.descriptions.index("n01443537/n01443537_1.JPEG"))
    assert named_classes(["n1", "n2", "n3"], {"n1": "crane", "n2": "crane", "n3": "tench"}) == \
        ["crane (n1)", "crane (n2)", "tench"]


def test_webdataset_source_reads_members_by_offset(tmp_path):
    write_shards(tmp_path / "shards")
    src = make_source(Config(data=f"webdataset:{tmp_path}/shards/shard-{{000000..000001}}.tar"))
    assert isinstance(src, WebDatasetSource) and len(src) == 10
    assert src.class_names == ["cat", "dog", "bird"] and src.labels[:3].tolist() == [0, 1, 2]
    assert src.descriptions[6] == "shard-000001.tar:s1_001.jpg"
    img = src.load(6)
    want = np.asarray(Image.open(io.BytesIO(_jpeg(picture(6)))).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(img), want)
    with pytest.raises(DataError, match="not found"):
        make_source(Config(data=f"webdataset:{tmp_path}/shards/shard-{{000000..000002}}.tar"))


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def run_atlas(data: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atlas", "run", "--data", data, "--out", str(out), *QUICK, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("kind", ["webdataset", "imagenet"])
def test_end_to_end_with_a_bad_file_reported(tmp_path, kind):
    """A WebDataset source and an ImageNet-layout folder run end to end; the bad file (a
    truncated JPEG member of a shard, a truncated JPEG file) is skipped, reported with its
    reason in skipped.json and the run's output, and every other image is kept."""
    if kind == "webdataset":
        write_shards(tmp_path / "shards", bad_key="s0_003")
        data, bad = str(tmp_path / "shards"), "shard-000000.tar:s0_003.jpg"
        count = 9
    else:
        imagenet_tree(tmp_path / "imagenet")
        data, bad = str(tmp_path / "imagenet"), "n01443537/n01443537_1.JPEG"
        count = 8
    res = run_atlas(data, tmp_path / "out", "data_split=val")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = Run(tmp_path / "out")
    # found at its first decode (the top-k pass), not by the listing; listed with its reason
    assert json.loads((tmp_path / "out" / "stages" / "dataset" / "skipped.json").read_text()) == []
    unusable = run.topk.unusable
    assert [r["path"] for r in unusable] == [bad] and "truncated" in unusable[0]["reason"]
    assert [s["path"] for s in run.dataset.skipped] == [bad]
    assert bad in res.stdout
    assert run.dataset.count == count + 1 and run.dataset.usable_count == count
    bad_id = unusable[0]["id"]
    assert run.dataset.desc(bad_id) == bad and not run.dataset.usable[bad_id]
    assert all(bad_id not in run.topk.layer(e.name).ids for e in run.topk.layers)
    assert bad_id not in run.thumbs.ids
    if kind == "imagenet":
        assert run.dataset.class_names == ["tench", "goldfish", "great white shark"]
    assert (tmp_path / "out" / "site" / "index.html").is_file()


def test_torchvision_imagenet_needs_its_meta_files(tmp_path):
    with pytest.raises(DataError, match="data_root"):
        make_source(Config(data="torchvision:ImageNet"))
    with pytest.raises(DataError, match="meta.bin"):
        make_source(Config(data="torchvision:ImageNet", data_root=str(tmp_path), data_split="val"))
    import torch
    imagenet_tree(tmp_path / "tv")
    torch.save(({w: (n, "x") for w, n in SYNSETS.items()}, []), tmp_path / "tv" / "meta.bin")
    src = make_source(Config(data="torchvision:ImageNet", data_root=str(tmp_path / "tv"), data_split="train"))
    assert len(src) == 9 and src.class_names == ["tench", "goldfish", "great white shark"]
    assert np.asarray(src.load(0)).shape == (40, 40, 3)
