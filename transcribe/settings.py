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


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Field names are the TOML keys."""

    model: str = "base"
    language: str | None = None
    task: str = "transcribe"
    device: str = "auto"
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 5
    initial_prompt: str | None = None
    hotwords: str | None = None
    word_timestamps: bool = False
    max_file_mb: int = 1024
    paths: Paths = field(default_factory=Paths.from_env, compare=False)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Defaults, then the config file, then `TRANSCRIBE_*` variables."""
        environ = os.environ if environ is None else environ
        paths = Paths.from_env(environ)
        values: dict[str, Any] = {}
        values.update(_read_toml(paths.config_file))
        values.update(_read_env(environ))
        return cls(paths=paths).with_overrides(**values)

    def with_overrides(self, **values: Any) -> "Settings":
        """A copy with `values` applied; None means "not given" and is skipped."""
        known = {f.name: f for f in dataclasses.fields(self) if f.name != "paths"}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key not in known:
                raise SettingsError(f"unknown setting {key!r}")
            changes[key] = _coerce(key, value, known[key].type)
        settings = dataclasses.replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.task not in ("transcribe", "translate"):
            raise SettingsError(f"task must be 'transcribe' or 'translate', not {self.task!r}")
        if self.beam_size < 1:
            raise SettingsError("beam_size must be at least 1")
        if self.cpu_threads < 0:
            raise SettingsError("cpu_threads must be 0 (automatic) or more")
        if self.language is not None and not self.language.strip():
            raise SettingsError("language must be a language code such as 'en', or unset")


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
    top_level = {k: v for k, v in data.items() if not isinstance(v, dict)}
    known = {f.name for f in dataclasses.fields(Settings)} - {"paths"}
    for key in sorted(set(top_level) - known):
        log.warning("%s: ignoring unknown setting %r", path, key)
    return {k: v for k, v in top_level.items() if k in known}


def _read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(f"TRANSCRIBE_{f.name.upper()}")
        if raw is not None and raw != "" and f.name != "paths":
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
        if type_name == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        return str(value)
    except ValueError:
        raise SettingsError(f"setting {key!r}: {value!r} is not a valid {type_name}") from None
