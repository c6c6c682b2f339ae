"""Settings: one object, from one place.

Precedence, lowest first: built-in defaults, the TOML file
(`<config dir>/config.toml`), `TRANSCRIBE_*` environment variables, then
whatever the caller (the CLI's flags) passes to `Settings.with_overrides`.

`TRANSCRIBE_HOME` moves config, cache and data under one folder, for tests and
for users who want everything in one place; otherwise the platformdirs
locations are used.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import SettingsError
from .languages import language_code

log = logging.getLogger(__name__)

APP_NAME = "transcribe"
HOME_ENV = "TRANSCRIBE_HOME"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    cache_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Paths":
        environ = os.environ if environ is None else environ
        home = environ.get(HOME_ENV)
        if home:
            root = Path(home).expanduser()
            return cls(root / "config", root / "cache", root / "data")
        import platformdirs

        return cls(
            Path(platformdirs.user_config_dir(APP_NAME)),
            Path(platformdirs.user_cache_dir(APP_NAME)),
            Path(platformdirs.user_data_dir(APP_NAME)),
        )


class Secret(str):
    """An API key: usable as a string, never shown by repr, logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class CloudSettings:
    """The `[cloud]` table: consent, and where audio may go when it is given."""

    allow: bool = False
    base_url: str = "https://api.openai.com/v1"
    model: str = "whisper-1"
    api_key_env: str = "OPENAI_API_KEY"  # the variable the key is read from
    # TRANSCRIBE_CLOUD_API_KEY, or the config file's key (only in a private file),
    # else the variable named by api_key_env.
    api_key: Secret | None = field(default=None, repr=False)
    max_upload_bytes: int = 25 * 2**20
    on_low_confidence: bool = True
    low_confidence_logprob: float = -1.0
    connect_timeout: float = 3.0
    offline_ttl_s: float = 60.0  # how long an offline verdict stands
    read_timeout: float = 300.0  # per socket read: a trickling server resets it with each byte
    total_timeout: float = 0.0  # one request, start to end; 0: scaled to the upload (cloud.py)
    max_attempts: int = 4

    @property
    def host(self) -> str:
        return url_host(self.base_url)

    def key(self) -> Secret | None:
        return self.api_key


@dataclass(frozen=True)
class WatchSettings:
    """The `[watch]` table: what `transcribe watch` does when given no folders or flags."""

    dirs: tuple[str, ...] = ()
    output_dir: str | None = None  # default: <data dir>/transcripts
    formats: str = "txt"
    settle_s: float = 2.0
    grace_s: float = 30.0
    poll_s: float = 1.0
    remote_poll_s: float = 10.0  # folders on network and FUSE mounts (watcher.py says why)
    cloud_retry_s: float = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Field names are the TOML keys."""

    model: str = "base"
    language: str | None = None
    # Detection chooses among these (codes such as "pt", "en"); empty: any language.
    languages: tuple[str, ...] = ()
    task: str = "transcribe"
    device: str = "auto"
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 5
    initial_prompt: str | None = None
    hotwords: str | None = None
    word_timestamps: bool = False
    split: bool = True  # decode window by window, a long note cut at its pauses (pieces.py)
    max_file_mb: int = 1024
    store: bool = True  # keep every CLI transcript in the store, for `search` and the TUI
    notify: str = "text"  # desktop notifications of finished notes: text, title, off (notify.py)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    paths: Paths = field(default_factory=Paths.from_env, compare=False)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Defaults, then the config file, then `TRANSCRIBE_*` variables."""
        environ = os.environ if environ is None else environ
        paths = Paths.from_env(environ)
        data = _read_toml(paths.config_file)
        if isinstance(data.get("cloud"), dict) and data["cloud"].get("api_key"):
            _refuse_shared_key_file(paths.config_file)
        settings = _settings_from(paths, data, environ)
        key_env = settings.cloud.api_key_env
        if settings.cloud.api_key is None and key_env and environ.get(key_env):
            settings = settings.with_cloud(api_key=environ[key_env])
        return settings

    def with_overrides(self, **values: Any) -> "Settings":
        """A copy with `values` applied; None means "not given" and is skipped.

        Every value is checked here, whichever way it came (flag, variable,
        config.toml, a folder's .transcribe.toml), so a wrong one stops the
        command before any work, as a SettingsError (exit 2)."""
        settings = _merged(self, values, skip=("paths", "cloud", "watch"))
        settings = dataclasses.replace(
            settings, language=language_code(settings.language),
            languages=tuple(_one_language(code) for code in settings.languages))
        settings.validate()
        return settings

    def with_cloud(self, **values: Any) -> "Settings":
        """A copy whose `[cloud]` table has `values` applied."""
        cloud = _merged(self.cloud, values)
        if cloud.max_attempts < 1:
            raise SettingsError("cloud.max_attempts must be at least 1")
        if cloud.total_timeout < 0:
            raise SettingsError("cloud.total_timeout must be 0 (scaled to the upload) or more")
        check_base_url(cloud.base_url)
        _at_least("cloud.max_upload_bytes", cloud.max_upload_bytes, 1)
        for name in ("connect_timeout", "read_timeout"):
            _above_zero(f"cloud.{name}", getattr(cloud, name))
        return dataclasses.replace(self, cloud=cloud)

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 2**20

    def with_watch(self, **values: Any) -> "Settings":
        """A copy whose `[watch]` table has `values` applied."""
        watch = _merged(self.watch, values)
        check_formats(watch.formats.split(","), "watch.formats")
        for name in ("settle_s", "grace_s"):
            _at_least(f"watch.{name}", getattr(watch, name), 0)
        for name in ("poll_s", "remote_poll_s", "cloud_retry_s"):
            _above_zero(f"watch.{name}", getattr(watch, name))
        return dataclasses.replace(self, watch=watch)

    def validate(self) -> None:
        """Refuse any value the engine cannot take, with the values it can."""
        _one_of("task", self.task, TASKS)
        _one_of("device", self.device, DEVICES)
        _one_of("compute_type", self.compute_type, COMPUTE_TYPES)
        _one_of("notify", self.notify, NOTIFY_MODES)
        _at_least("beam_size", self.beam_size, 1)
        _at_least("cpu_threads", self.cpu_threads, 0, "(0: all available)")
        _at_least("max_file_mb", self.max_file_mb, 1)
        if not self.model.strip():
            raise SettingsError("model must be a model name or directory, not empty")


TASKS = ("transcribe", "translate")
DEVICES = ("auto", "cpu", "cuda")
# Every compute type CTranslate2 4.x accepts; it falls back to the nearest one
# the device supports (int8_float16 on a CPU runs as int8).
NOTIFY_MODES = ("text", "title", "off")  # what desktop notifications show (notify.py)
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
                 "int16", "float16", "bfloat16", "float32")


def check_formats(formats: list[str], what: str = "format") -> list[str]:
    """The output formats named in `formats` (blanks dropped, any case: SRT is srt);
    SettingsError for an unknown one."""
    from .writers import FORMATS

    named = [f.strip().lower() for f in formats if f.strip()]
    bad = [f for f in named if f not in FORMATS]
    if bad or not named:
        given = f"{', '.join(map(repr, bad))} is not" if bad else "no format is"
        raise SettingsError(f"{what}: {given} an output format; choose from {','.join(FORMATS)}")
    return named


def url_host(url: str) -> str:
    """The host a URL names, for people to read; the URL itself when it names none (or
    cannot be read: a `[` typed half-way into an IPv6 address)."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def check_base_url(url: str) -> None:
    """SettingsError unless `url` is an http(s) URL with a host (and a port, if any, that
    is a port): the provider's address, as the cloud client will use it."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port
    except ValueError:
        port_ok, parts = False, None
    if parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"cloud.base_url {url!r} is not a provider's address; give one "
                            "such as https://api.openai.com/v1")


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{name} {value!r} is not one of: {', '.join(choices)}")


def _at_least(name: str, value: float, least: float, note: str = "") -> None:
    if value < least:
        raise SettingsError(f"{name} must be {least} or more{' ' + note if note else ''}, "
                            f"not {value}")


def _above_zero(name: str, value: float) -> None:
    if value <= 0:
        raise SettingsError(f"{name} must be more than 0, not {value}")


def save_settings(paths: Paths, updates: Mapping[str, Any]) -> Path:
    """Write `updates` into config.toml, keeping every other key; tables are dicts.

    Values of None remove the key. Comments in the file are not kept (tomli-w
    writes TOML, it does not edit it). The file is written atomically and is
    private to the user (it may hold an API key).
    """
    import tomli_w

    from .writers import write_atomic

    path = paths.config_file
    data = _read_toml(path) if path.exists() else {}
    for key, value in updates.items():
        if isinstance(value, Mapping):
            table = dict(data.get(key) or {})
            for sub, sub_value in value.items():
                if sub_value is None:
                    table.pop(sub, None)
                else:
                    table[sub] = list(sub_value) if isinstance(sub_value, tuple) else sub_value
            data[key] = table
        elif value is None:
            data.pop(key, None)
        else:
            data[key] = value
    _settings_from(paths, data)  # a value no command could start with is never saved
    write_atomic(path, tomli_w.dumps(data), mode=0o600)  # it may hold an API key
    return path


def _settings_from(paths: Paths, data: Mapping[str, Any],
                   environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a config file's tables, `TRANSCRIBE_*` variables on top; every value
    checked (SettingsError)."""
    environ = {} if environ is None else environ
    data = dict(data)
    cloud_file = data.pop("cloud", {})
    watch_file = data.pop("watch", {})
    if not isinstance(cloud_file, dict) or not isinstance(watch_file, dict):
        raise SettingsError(f"{paths.config_file}: 'cloud' and 'watch' must be tables")
    settings = Settings(paths=paths).with_overrides(**{**data, **_read_env(Settings, environ)})
    settings = settings.with_cloud(**{**cloud_file,
                                      **_read_env(CloudSettings, environ, "CLOUD_")})
    return settings.with_watch(**{**watch_file, **_read_env(WatchSettings, environ, "WATCH_")})


def _merged(obj: Any, values: Mapping[str, Any], skip: tuple[str, ...] = ()) -> Any:
    known = {f.name: f for f in dataclasses.fields(obj) if f.name not in skip}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key not in known:
            raise SettingsError(f"unknown setting {key!r}")
        changes[key] = _coerce(key, value, known[key].type)
    return dataclasses.replace(obj, **changes)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise SettingsError(f"{path}: cannot read ({e.strerror})") from None
    sections = {"cloud": CloudSettings, "watch": WatchSettings, "": Settings}
    for section, cls in sections.items():
        table = data.get(section, {}) if section else data
        if not isinstance(table, dict):
            continue
        known = {f.name for f in dataclasses.fields(cls)} | set(sections)
        for key in sorted(set(table) - known):
            log.warning("%s: ignoring unknown setting %r", path, f"{section}.{key}".lstrip("."))
            del table[key]
    return data


def _refuse_shared_key_file(path: Path) -> None:
    """An API key may live in the config file only when nobody else can read the file."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise SettingsError(
            f"{path}: refusing the [cloud] api_key in a file others can read "
            f"(mode {mode & 0o777:o}); run `chmod 600 {path}` or set TRANSCRIBE_CLOUD_API_KEY")


def _read_env(cls: type, environ: Mapping[str, str], infix: str = "") -> dict[str, Any]:
    values = {}
    for f in dataclasses.fields(cls):
        raw = environ.get(f"TRANSCRIBE_{infix}{f.name.upper()}")
        if raw is not None and raw != "" and f.name not in ("paths", "cloud", "watch"):
            values[f.name] = raw
    return values


def _coerce(key: str, value: Any, type_name: Any) -> Any:
    """Turn env-var strings (and TOML values) into the field's type."""
    type_name = str(type_name)
    try:
        if type_name == "bool":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if type_name in ("int", "float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value) if type_name == "int" else float(value)
        if type_name.startswith("tuple"):
            if isinstance(value, str):
                separator = "," if key == "languages" else os.pathsep
                value = [v.strip() for v in value.split(separator) if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            return tuple(str(v) for v in value)
        if type_name.startswith("Secret"):
            return Secret(value)
        return str(value)
    except ValueError:
        raise SettingsError(f"setting {key!r}: {value!r} is not a valid {type_name}") from None


def _one_language(value: str) -> str:
    """A code of the `languages` list: as `language`, but "auto" means nothing there."""
    code = language_code(value)
    if code is None:
        raise SettingsError(f"languages: {value!r} is not a language; list codes such as "
                            "'pt', 'en', or leave the list empty to detect any")
    return code
