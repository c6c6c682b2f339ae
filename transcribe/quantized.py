"""An int8 copy of a packaged model's weights, made once.

The packaged models ship float16 weights, which CTranslate2 converts to int8
at every load: about 0.5 s of a cold start, and a load-time peak of memory
holding both. The copy quantizes the weights CTranslate2 quantizes when
it loads float16 weights as int8 (the 2-D weights its `WhisperSpec` marks as
quantizable), the way its converters do, and writes the `model.bin` format its
`ModelSpec._serialize` writes, into `<models>/<name>-int8-<key>/`, where the
key changes with the source file. It is written to a temporary directory and
renamed into place, under the same lock as the join, so a crash or a second
process never sees half a copy. Anything that goes wrong leaves the float16
weights in use.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np

from .models import ResolvedModel, exclusive_lock

log = logging.getLogger(__name__)

# Part of the copy's key: a change to how copies are made makes new ones.
COPY_FORMAT = 2
# CTranslate2's type ids in model.bin (ctranslate2/specs/model_spec.py).
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def int8_location(model: ResolvedModel, models_dir: Path) -> str:
    """Where to load `model` from for int8 compute: the int8 copy when one can be made."""
    if model.source != "package":
        return model.location
    try:
        target = int8_target(model, models_dir)
        if not (target / "model.bin").is_file():
            make_int8_copy(Path(model.location), target)
        return str(target)
    except Exception as e:  # noqa: BLE001 - the float16 weights still load
        log.warning("could not make an int8 copy of model %s (%s: %s); loading its float16 "
                    "weights", model.name, type(e).__name__, e)
        return model.location


def int8_target(model: ResolvedModel, models_dir: Path) -> Path:
    """The copy's directory, named after the source file's size and mtime (which a
    copy of the cache keeps, and a reinstall changes)."""
    stat = (Path(model.location) / "model.bin").stat()
    key = hashlib.sha256(f"{COPY_FORMAT}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return models_dir / f"{model.name}-int8-{key[:12]}"


def make_int8_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if (target / "model.bin").is_file():
            return  # made by another process while we waited
        for stale in target.parent.glob(f"{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a process that died
        log.info("writing an int8 copy of %s to %s", source, target)
        tmp = target.parent / f"{target.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            _quantize(source / "model.bin", tmp)
            for extra in source.iterdir():
                if extra.is_file() and not extra.name.startswith(("model.bin", ".")):
                    shutil.copyfile(extra, tmp / extra.name)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _quantize(model_bin: Path, out_dir: Path) -> None:
    """Write `out_dir/model.bin` with every weight CTranslate2 can quantize in int8.

    Which weights those are comes from CTranslate2's own `WhisperSpec` (a weight
    `w` is quantizable where the spec has a `w_scale`); the quantization is the
    one its converters apply (per row: scale = 127 / max |w|, rounded). Each
    weight is mapped, converted in blocks of rows and written before the next
    one, so converting costs little memory beyond the process's own."""
    from ctranslate2.specs import model_spec, whisper_spec

    version, spec_name, revision, entries, aliases = _index(model_bin)
    if spec_name != "WhisperSpec":
        raise ValueError(f"not a Whisper model ({spec_name})")
    names = [entry[0] for entry in entries]

    def layers(side: str) -> int:
        return len({m.group(0) for name in names if (m := re.match(rf"{side}/layer_\d+/", name))})

    def scalar(name: str) -> int:
        return int(_mapped(model_bin, next(e for e in entries if e[0] == name)))

    spec = whisper_spec.WhisperSpec(layers("encoder"), scalar("encoder/num_heads"),
                                    layers("decoder"), scalar("decoder/num_heads"))
    scaled: set[str] = set()
    model_spec.visit_spec(spec, lambda _, name, __: scaled.add(name.removesuffix("_scale"))
                          if name.endswith("_scale") else None)
    # Only 2-D weights: loading float weights as int8, CTranslate2 leaves the
    # encoder's convolutions unquantized (its converter quantizes them too, and
    # a copy made that way changed the encoder's output). This way a model gives
    # the same output from the copy as from its float16 weights.
    quantized = {name for name, dtype, shape, _ in entries
                 if name in scaled and dtype.startswith("float") and len(shape) == 2}
    with (out_dir / "model.bin").open("wb") as out:
        out.write(struct.pack("I", version))
        _write_string(out, spec_name)
        out.write(struct.pack("I", revision))
        out.write(struct.pack("I", len(entries) + len(quantized)))
        for entry in entries:
            name, dtype, shape, _ = entry
            value = _mapped(model_bin, entry)
            if name in quantized:
                _write_header(out, name, "int8", shape)
                scales = []
                rows = value.reshape(shape[0], -1)
                for first in range(0, shape[0], 4096):
                    weight, scale = _int8(rows[first:first + 4096])
                    out.write(weight.tobytes())
                    scales.append(scale)
                _write_header(out, f"{name}_scale", "float32", [shape[0]])
                out.write(np.concatenate(scales).tobytes())
            else:
                _write_header(out, name, dtype, shape)
                out.write(np.ascontiguousarray(value).tobytes())
            del value
        out.write(struct.pack("I", len(aliases)))
        for alias, target in aliases.items():
            _write_string(out, alias)
            _write_string(out, target)


def _int8(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = rows.astype(np.float32)
    amax = np.abs(rows).max(axis=1)
    amax[amax == 0] = 127.0
    amax = np.maximum(amax, np.float32(127) / np.finfo(np.float32).max)
    scale = (127.0 / amax).astype(np.float32)
    rows *= scale[:, None]
    return np.rint(rows).astype(np.int8), scale


def _write_string(out, string: str) -> None:
    data = string.encode("utf-8")
    out.write(struct.pack("H", len(data) + 1))
    out.write(data + b"\0")


def _write_header(out, name: str, dtype: str, shape: list[int]) -> None:
    _write_string(out, name)
    out.write(struct.pack("B", len(shape)))
    for dim in shape:
        out.write(struct.pack("I", dim))
    out.write(struct.pack("B", _DTYPES.index(dtype)))
    out.write(struct.pack("I", math.prod(shape) * np.dtype(dtype).itemsize))


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """The spec name, variables (mapped from the file) and aliases of a `model.bin`."""
    _, spec_name, _, entries, aliases = _index(path)
    return spec_name, {entry[0]: _mapped(path, entry) for entry in entries}, aliases


def _mapped(path: Path, entry: tuple) -> np.ndarray:
    _, dtype, shape, offset = entry
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))


def _index(path: Path) -> tuple[int, str, int, list[tuple[str, str, list[int], int]],
                                dict[str, str]]:
    """A CTranslate2 `model.bin`'s format version, spec name and revision, its
    variables as (name, dtype, shape, offset), and its aliases."""
    with path.open("rb") as f:
        def number(fmt: str) -> int:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(number("H"))[:-1].decode("utf-8")

        version = number("I")
        if version < 5:
            raise ValueError(f"model.bin version {version} is too old to copy")
        spec_name = string()
        revision = number("I")
        entries = []
        for _ in range(number("I")):
            name = string()
            shape = [number("I") for _ in range(number("B"))]
            dtype = _DTYPES[number("B")]
            if dtype == "bfloat16":
                raise ValueError("bfloat16 weights are not copied")
            size = number("I")
            entries.append((name, dtype, shape, f.tell()))
            f.seek(size, os.SEEK_CUR)
        aliases = {}
        for _ in range(number("I")):
            alias = string()
            aliases[alias] = string()
    return version, spec_name, revision, entries, aliases
