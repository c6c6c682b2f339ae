"""An int8 copy of a packaged model's weights, made once.

The packaged models ship float16 weights, which CTranslate2 converts to int8
at every load: about 0.5 s of a cold start, and a load-time peak of memory
holding both. The copy is made with CTranslate2's own quantizer (the
`WhisperSpec` its converters fill), from the `model.bin` format its
`ModelSpec._serialize` writes, into `<models>/<name>-int8-<key>/`, where the
key changes with the source file. It is written to a temporary directory and
renamed into place, under the same lock as the join, so a crash or a second
process never sees half a copy. Anything that goes wrong leaves the float16
weights in use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np

from .models import ResolvedModel, exclusive_lock

log = logging.getLogger(__name__)

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
    """The copy's directory, named after the source file's path, size and mtime."""
    source = Path(model.location) / "model.bin"
    stat = source.stat()
    key = hashlib.sha256(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
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
    from ctranslate2.specs import model_spec, whisper_spec

    spec_name, variables, aliases = read_model_bin(model_bin)
    if spec_name != "WhisperSpec":
        raise ValueError(f"not a Whisper model ({spec_name})")

    def layers(side: str) -> int:
        return len({m.group(0) for name in variables
                    if (m := re.match(rf"{side}/layer_\d+/", name))})

    spec = whisper_spec.WhisperSpec(layers("encoder"), int(variables["encoder/num_heads"]),
                                    layers("decoder"), int(variables["decoder/num_heads"]))
    for name, value in [*variables.items(),
                        *((alias, variables[target]) for alias, target in aliases.items())]:
        scope, key = name.rsplit("/", 1)
        setattr(model_spec.index_spec(spec, scope), key, value)
    # The vocabulary and config.json are copied as they are, so only the weights
    # go through the spec (LanguageModelSpec's own checks want the vocabulary).
    model_spec.LayerSpec.validate(spec)
    spec.optimize(quantization="int8")
    spec._config = None
    model_spec.ModelSpec.save(spec, str(out_dir))


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """The spec name, variables and aliases of a CTranslate2 `model.bin`."""
    data = path.read_bytes()
    offset = 0

    def number(fmt: str) -> int:
        nonlocal offset
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal offset
        size = number("H")
        value = data[offset:offset + size - 1].decode("utf-8")
        offset += size
        return value

    version = number("I")
    if version < 5:
        raise ValueError(f"model.bin version {version} is too old to copy")
    spec_name = string()
    number("I")  # the spec's revision
    variables = {}
    for _ in range(number("I")):
        name = string()
        shape = [number("I") for _ in range(number("B"))]
        dtype = _DTYPES[number("B")]
        if dtype == "bfloat16":
            raise ValueError("bfloat16 weights are not copied")
        size = number("I")
        variables[name] = np.frombuffer(data, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                                        offset=offset).reshape(shape)
        offset += size
    aliases = {}
    for _ in range(number("I")):
        alias = string()
        aliases[alias] = string()
    return spec_name, variables, aliases
