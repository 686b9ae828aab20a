"""`atlas archive` and `atlas verify` on a small synthetic run folder with a rendered site."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from atlas.archive import MANIFEST_NAME, ArchiveError, pack, pack_in_place, verify
from atlas.archive.provenance import dataset_info
from atlas.cli import main
from atlas.render.build import build_site
from atlas.artifacts import dataset
from atlas.artifacts.store import read_json, write_json
from synthetic import make_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = make_run(tmp_path_factory.mktemp("run") / "run")
    build_site(root)
    return root


@pytest.fixture(params=["zip", "tar.gz"])
def archive(request, run, tmp_path) -> Path:
    return pack(run, tmp_path / f"atlas.{request.param}").path


def _members(path: Path) -> dict[str, bytes]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}


def _rewrite(path: Path, members: dict[str, bytes]) -> None:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for n, data in members.items():
                zf.writestr(n, data)
    else:
        with tarfile.open(path, "w:gz") as tf:
            for n, data in members.items():
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))


def test_fresh_archive_verifies(archive, run):
    report = verify(archive)
    assert report.ok, report.lines()
    expected = 1 + len([p for p in run.rglob("*") if p.is_file() and p.name != ".lock"])  # + README
    assert report.verified == report.expected == expected
    assert report.lines()[-1].startswith(f"OK: {expected} files verified")
    members = _members(archive)
    assert "site/index.html" in members and "README.txt" in members and MANIFEST_NAME in members
    assert "site/index.html" in members["README.txt"].decode()


@pytest.mark.parametrize("damage", ["byte", "remove"])
def test_verify_names_the_damaged_file(archive, damage, capsys):
    members = _members(archive)
    target = "stages/topk/features.conv5/values.npy"
    if damage == "byte":
        blob = bytearray(members[target])
        blob[-1] ^= 0x01
        members[target] = bytes(blob)
    else:
        del members[target]
    _rewrite(archive, members)
    report = verify(archive)
    assert not report.ok
    if damage == "byte":
        assert [c.split(" ")[0] for c in report.changed] == [target] and not report.missing
    else:
        assert report.missing == [target] and not report.changed
    assert main(["verify", str(archive)]) == 1
    out = capsys.readouterr().out
    assert f"{'changed' if damage == 'byte' else 'missing'}: {target}" in out and "FAILED" in out


def test_unpacked_folder(run, tmp_path, capsys):
    archive = pack(run, tmp_path / "a.zip").path
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    assert main(["verify", str(folder)]) == 0
    assert "OK:" in capsys.readouterr().out
    (folder / "site" / "extra.html").write_text("hi")
    (folder / "config.json").unlink()
    report = verify(folder)
    assert report.extra == ["site/extra.html"] and report.missing == ["config.json"]


def test_manifest_records_provenance(archive, run):
    manifest = json.loads(_members(archive)[MANIFEST_NAME])
    prov = manifest["provenance"]
    from atlas import __version__
    assert prov["atlas"]["version"] == __version__ and isinstance(prov["atlas"]["commit"], str)
    assert prov["environment"]["packages"]["torch"] and prov["environment"]["packages"]["torchvision"]
    assert prov["model"]["model"] == "worldnet" and prov["model"]["weights"] == "sha256:" + "a" * 64
    assert prov["config"] == read_json(run / "config.json")
    assert prov["seeds"]["featvis"] == {"features.conv5": 2} and prov["seeds"]["world_seed"] == 2
    assert prov["timings"]["stages"]["topk"] == 4.0 and prov["timings"]["total_seconds"] == pytest.approx(0.1 + 0.1 + 4.0 + 2.5 + 1.5)
    assert prov["dataset"]["fingerprint"] == "f" * 64 and prov["dataset"]["kind"] == "procedural"
    path = "stages/dataset/labels.npy"
    assert manifest["files"][path]["sha256"] == hashlib.sha256((run / path).read_bytes()).hexdigest()


def test_folder_data_set_is_fingerprinted_file_by_file(tmp_path):
    run = make_run(tmp_path / "run")
    data = tmp_path / "images"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "a.png").write_bytes(b"first image")
    folder = run / "stages/dataset"   # the listing of a folder of two images, one since deleted
    dataset.write(folder, {**read_json(folder / "images.json"), "count": 2}, [], [0, 0], ["cat/a.png", "cat/gone.png"])
    man = read_json(folder / "manifest.json")
    for rel, entry in man["files"].items():
        entry["bytes"] = (folder / rel).stat().st_size
    write_json(folder / "manifest.json", man)
    info = dataset_info(run, {"data": str(data)})
    assert info["kind"] == "folder" and info["root"] == str(data)
    assert info["files"][0] == {"path": "cat/a.png", "label": 0, "bytes": 11,
                                "sha256": hashlib.sha256(b"first image").hexdigest()}
    assert info["files"][1]["missing"] and info["files_missing"] == 1


def test_pack_refuses_an_artifact_changed_after_its_stage(tmp_path):
    run = make_run(tmp_path / "run")
    build_site(run)
    values = run / "stages/topk/classifier.fc8/values.npy"
    arr = np.load(values)
    arr[0, 0] += 1
    np.save(values, arr)  # same size, other bytes
    with pytest.raises(ArchiveError, match="classifier.fc8/values.npy changed after stage 'topk'"):
        pack(run, tmp_path / "a.zip")
    assert not list(tmp_path.glob("*a.zip*"))  # nothing half-written is left


def test_pack_errors(run, tmp_path):
    with pytest.raises(ArchiveError, match="use .zip, .tar.gz or .tgz"):
        pack(run, tmp_path / "a.rar")
    bare = make_run(tmp_path / "bare")
    with pytest.raises(ArchiveError, match="render it first"):
        pack(bare, tmp_path / "a.zip")
    with pytest.raises(ArchiveError, match="inside the site/"):
        pack(run, run / "site" / "a.zip")
    with pytest.raises(ArchiveError, match="no atlas-manifest.json"):
        verify(run)


def test_in_place_manifest(tmp_path):
    run = make_run(tmp_path / "run")
    build_site(run)
    pack_in_place(run)
    assert verify(run).ok
    (run / "site" / "index.html").write_text("edited")
    assert [c.split(" ")[0] for c in verify(run).changed] == ["site/index.html"]


def test_copied_folder_keeps_verifying(run, tmp_path):
    """An archive unpacked anywhere verifies: the manifest holds relative paths only."""
    archive = pack(run, tmp_path / "a.tar.gz").path
    moved = tmp_path / "deep" / "place" / archive.name
    moved.parent.mkdir(parents=True)
    shutil.move(archive, moved)
    assert verify(moved).ok
